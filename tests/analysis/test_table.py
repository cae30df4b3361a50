"""The Table-1-style comparison on a results table with hand-computed answers."""

import math

import pytest

from analysis.report import write_report
from analysis.table import comparison_table, summarize
from harness.errors import HarnessInputError
from harness.results import TrialResults, load_results


def add_trial(folder, trial_id, method, config_id, seed, value, status="finished", gamma=1.0,
              task="gaussian", setting="default", metric="distance_to_equilibrium", mode="min"):
    static = {"sweep_id": "s1", "config_id": config_id, "task": task, "setting": setting,
              "method": method, "seed": seed, "gamma": gamma, "lr_g": 0.1, "lr_d": 0.1,
              "objective": metric, "objective_mode": mode}
    trial = TrialResults(folder, trial_id, static)
    trial.append({"step": 10, "status": "running", metric: 99.0})
    trial.append({"step": 20, "status": status, metric: value})


@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "results"
    # jare: config A (γ=1) has mean 2.0; config B (γ=10) has mean 0.5 → best is B.
    add_trial(folder, "j1", "jare", "a", 0, 1.0, gamma=1.0)
    add_trial(folder, "j2", "jare", "a", 1, 3.0, gamma=1.0)
    add_trial(folder, "j3", "jare", "b", 0, 0.4, gamma=10.0)
    add_trial(folder, "j4", "jare", "b", 1, 0.6, gamma=10.0)
    # conopt: config c would be best but one seed diverged, so config d counts.
    add_trial(folder, "c1", "conopt", "c", 0, 0.1, gamma=5.0)
    add_trial(folder, "c2", "conopt", "c", 1, math.nan, status="diverged", gamma=5.0)
    add_trial(folder, "c3", "conopt", "d", 0, 2.0, gamma=0.5)
    add_trial(folder, "c4", "conopt", "d", 1, 2.0, gamma=0.5)
    # simgd: everything diverged.
    add_trial(folder, "s1", "simgd", "e", 0, math.nan, status="diverged")
    # mog column with the opposite direction.
    add_trial(folder, "m1", "jare", "f", 0, 0.9, task="mog", setting="r2",
              metric="high_quality_fraction", mode="max")
    add_trial(folder, "m2", "jare", "g", 0, 0.7, task="mog", setting="r2",
              metric="high_quality_fraction", mode="max")
    return tmp_path


def row(summary, method, task="gaussian"):
    return summary[(summary["method"] == method) & (summary["task"] == task)].iloc[0]


def test_best_config_mean_and_std(results):
    summary = summarize(load_results(results))

    jare = row(summary, "jare")
    assert jare["mean"] == pytest.approx(0.5)
    assert jare["std"] == pytest.approx(0.1)  # population std of 0.4 and 0.6
    assert jare["gamma"] == 10.0
    assert jare["seeds"] == 2
    assert jare["diverged"] == 0


def test_diverged_config_not_picked_but_counted(results):
    summary = summarize(load_results(results))

    conopt = row(summary, "conopt")
    assert conopt["mean"] == pytest.approx(2.0)
    assert conopt["gamma"] == 0.5
    assert conopt["diverged"] == 1
    assert conopt["trials"] == 4


def test_all_diverged_gives_empty_cell(results):
    table = comparison_table(summarize(load_results(results)))

    cell = table.loc["simgd"].iloc[0]
    assert cell.startswith("—")
    assert "1/1 div." in cell


def test_max_mode_picks_highest(results):
    summary = summarize(load_results(results))

    assert row(summary, "jare", task="mog")["mean"] == pytest.approx(0.9)


def test_table_layout(results):
    table = comparison_table(summarize(load_results(results)))

    assert list(table.index) == ["simgd", "conopt", "jare"]
    assert list(table.columns) == [
        "gaussian/default distance_to_equilibrium ↓",
        "mog/r2 high_quality_fraction ↑",
    ]
    assert table.loc["jare", "gaussian/default distance_to_equilibrium ↓"] == "0.500 ± 0.100"
    assert table.loc["conopt", "mog/r2 high_quality_fraction ↑"] == ""


def test_report_writes_markdown_and_csv(results):
    report = write_report(results)

    assert report.markdown_path == results / "report.md"
    assert "| jare |" in report.markdown_path.read_text()
    assert "0.500 ± 0.100" in report.markdown
    csv = report.csv_path.read_text()
    assert csv.splitlines()[0].startswith("method,task,setting,metric")


def test_report_on_missing_folder(tmp_path):
    with pytest.raises(HarnessInputError, match="not found"):
        write_report(tmp_path / "nothing")


def test_unknown_metric(results):
    with pytest.raises(HarnessInputError, match="no values"):
        summarize(load_results(results), metric="fid")
