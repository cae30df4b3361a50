"""The report's LaTeX table and figures, from a results table built by hand."""

import math

import pandas as pd
import pytest
from PIL import Image

from analysis.curves import plot_gamma_sweeps, plot_training_curves, seed_curves
from analysis.latex import escape, to_latex
from analysis.report import write_report
from analysis.table import comparison_table, summarize
from harness.results import TrialResults, load_results


def add_trial(folder, trial_id, method, config_id, seed, values, gamma, status="finished"):
    static = {"sweep_id": "s1", "config_id": config_id, "task": "gaussian", "setting": "default",
              "method": method, "seed": seed, "gamma": gamma, "lr_g": 0.1, "lr_d": 0.1,
              "objective": "distance_to_equilibrium", "objective_mode": "min"}
    trial = TrialResults(folder, trial_id, static)
    for index, value in enumerate(values, start=1):
        last = index == len(values)
        trial.append({"step": 10 * index, "wall_time_s": 0.5 * index,
                      "status": status if last else "running", "distance_to_equilibrium": value})


@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "results"
    add_trial(folder, "a0", "jare", "c1", 0, [3.0, 2.0, 1.0], gamma=1.0)
    add_trial(folder, "a1", "jare", "c1", 1, [5.0, 4.0, 3.0], gamma=1.0)
    add_trial(folder, "b0", "jare", "c2", 0, [3.0, 1.0, 0.5], gamma=10.0)
    add_trial(folder, "b1", "jare", "c2", 1, [3.0, 1.0, math.nan], gamma=10.0, status="diverged")
    add_trial(folder, "s0", "simgd", "c3", 0, [3.0, 3.0, 3.0], gamma=10.0)
    return tmp_path


def test_seed_curves_mean_and_range(results):
    frame = load_results(results)

    curve = seed_curves(frame[frame["config_id"] == "c1"], "distance_to_equilibrium")

    assert list(curve["step"]) == [10, 20, 30]
    assert list(curve["mean"]) == [4.0, 3.0, 2.0]
    assert list(curve["low"]) == [3.0, 2.0, 1.0]
    assert list(curve["high"]) == [5.0, 4.0, 3.0]
    assert list(curve["wall"]) == [0.5, 1.0, 1.5]


def test_figures_written_as_png(results, tmp_path):
    frame = load_results(results)
    summary = summarize(frame)
    out = tmp_path / "figures"
    out.mkdir()

    curves = plot_training_curves(frame, summary, out)
    gammas = plot_gamma_sweeps(frame, summary, out)

    assert [p.name for p in curves] == ["curves_gaussian_default.png"]
    assert [p.name for p in gammas] == ["gamma_gaussian_default.png"]
    for path in curves + gammas:
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.width > 300


def test_no_gamma_figure_without_gamma_variation(tmp_path):
    folder = tmp_path / "results"
    add_trial(folder, "s0", "simgd", "c3", 0, [3.0, 2.0], gamma=10.0)
    frame = load_results(tmp_path)
    out = tmp_path / "figures"
    out.mkdir()

    assert plot_gamma_sweeps(frame, summarize(frame), out) == []


def test_latex_escapes_and_uses_booktabs(results):
    table = comparison_table(summarize(load_results(results)))

    latex = to_latex(table)

    assert "\\toprule" in latex
    assert "\\midrule" in latex
    assert "\\bottomrule" in latex
    assert "distance\\_to\\_equilibrium $\\downarrow$" in latex
    assert "2.000 $\\pm$ 1.000" in latex
    assert latex.count("\\\\") == 1 + len(table)


@pytest.mark.parametrize("text, expected", [
    ("a_b", "a\\_b"), ("50%", "50\\%"), ("x & y", "x \\& y"), ("1 ± 2", "1 $\\pm$ 2"), ("—", "---"),
])
def test_escape(text, expected):
    assert escape(text) == expected


def test_report_writes_every_file(results):
    report = write_report(results)

    assert report.latex_path.read_text().startswith("% Final objective")
    assert {p.name for p in report.figures} == {
        "curves_gaussian_default.png", "gamma_gaussian_default.png", "toy_gaussian_distance.png",
        "eigenvalues_gaussian_default.png", "factors_gaussian_default.png",
    }
    assert all(p.parent == results / "figures" for p in report.figures)


def test_report_on_partial_results(tmp_path):
    # A sweep still running: trials without a final row still produce a table.
    folder = tmp_path / "results"
    static = {"sweep_id": "s1", "config_id": "c1", "task": "gaussian", "setting": "default", "method": "jare",
              "seed": 0, "gamma": 1.0, "objective": "distance_to_equilibrium", "objective_mode": "min"}
    TrialResults(folder, "t0", static).append({"step": 10, "status": "running", "distance_to_equilibrium": 1.0})

    report = write_report(tmp_path)

    assert "| jare |" in report.markdown
    assert isinstance(pd.read_csv(report.csv_path), pd.DataFrame)
