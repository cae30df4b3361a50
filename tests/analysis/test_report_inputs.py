"""``harness report`` on missing, empty, partial and unwritable results: a message, never a traceback."""

import pytest

from harness.cli import main
from harness.results import TrialResults

STATIC = {"sweep_id": "s1", "config_id": "c1", "task": "gaussian", "setting": "default", "method": "jare",
          "seed": 0, "gamma": 1.0, "lr_g": 0.1, "lr_d": 0.1, "objective": "distance_to_equilibrium",
          "objective_mode": "min"}


def report(folder, capsys) -> tuple[int, str, str]:
    code = main(["report", str(folder)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def running_trial(results, trial_id, **static) -> None:
    trial = TrialResults(results, trial_id, {**STATIC, **static})
    trial.append({"step": 10, "wall_time_s": 0.1, "status": "running", "distance_to_equilibrium": 2.0})


def finished_trial(results, trial_id, value, **static) -> None:
    trial = TrialResults(results, trial_id, {**STATIC, **static})
    trial.append({"step": 10, "wall_time_s": 0.1, "status": "running", "distance_to_equilibrium": 2.0})
    trial.append({"step": 20, "wall_time_s": 0.2, "status": "finished", "distance_to_equilibrium": value})


def test_missing_folder(tmp_path, capsys):
    code, _, err = report(tmp_path / "nowhere", capsys)

    assert code == 2
    assert f"results folder not found: {tmp_path / 'nowhere'}" in err
    assert "Traceback" not in err


def test_empty_output_folder(tmp_path, capsys):
    code, _, err = report(tmp_path, capsys)

    assert code == 2
    assert f"no results in {tmp_path}" in err
    assert "run `harness sweep` first" in err
    assert not (tmp_path / "report.md").exists()


def test_empty_results_folder(tmp_path, capsys):
    (tmp_path / "results").mkdir()

    code, _, err = report(tmp_path, capsys)

    assert code == 2
    assert f"no results in {tmp_path / 'results'}" in err


def test_unreadable_trial_file(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t0.parquet").write_bytes(b"not parquet")

    code, _, err = report(tmp_path, capsys)

    assert code == 2
    assert f"cannot read results file {tmp_path / 'results' / 't0.parquet'}" in err
    assert "Traceback" not in err


def test_only_running_trials_reported_as_unfinished(tmp_path, capsys):
    running_trial(tmp_path / "results", "t0")

    code, out, _ = report(tmp_path, capsys)

    assert code == 0
    assert "| jare | — |" in out
    assert "1 of 1 trials have not ended (still running, or stopped by a crash)" in out
    assert "not ended" in (tmp_path / "report.md").read_text()


def test_partial_sweep_reports_ended_trials(tmp_path, capsys):
    results = tmp_path / "results"
    finished_trial(results, "a0", 0.5, method="simgd", config_id="c1")
    running_trial(results, "b0", config_id="c2")

    code, out, _ = report(tmp_path, capsys)

    assert code == 0
    assert "| simgd | 0.500 ± 0.000 |" in out
    assert "| jare | — |" in out
    assert "1 of 2 trials have not ended" in out


def test_trial_failed_before_first_evaluation(tmp_path, capsys):
    # Such a trial has one row at step 0 and no metric column at all.
    TrialResults(tmp_path / "results", "t0", STATIC).mark_last("failed", "RuntimeError: out of memory")

    code, out, err = report(tmp_path, capsys)

    assert code == 0, err
    assert "| jare | — (1 failed) |" in out
    assert "have not ended" not in out


def test_finished_sweep_has_no_unfinished_note(tmp_path, capsys):
    finished_trial(tmp_path / "results", "a0", 0.25)

    code, out, _ = report(tmp_path, capsys)

    assert code == 0
    assert "| jare | 0.250 ± 0.000 |" in out
    assert "have not ended" not in out


def test_report_from_one_trial_file(tmp_path, capsys):
    finished_trial(tmp_path / "results", "a0", 0.25)

    code, out, _ = report(tmp_path / "results" / "a0.parquet", capsys)

    assert code == 0
    assert (tmp_path / "report.md").is_file()


@pytest.mark.parametrize("blocked", ["report.md", "figures"])
def test_unwritable_report_file(tmp_path, capsys, blocked):
    finished_trial(tmp_path / "results", "a0", 0.25)
    # A folder where the report writes a file, or a file where it makes a folder, fails the
    # write even for root, which ignores permission bits.
    if blocked == "figures":
        (tmp_path / blocked).write_text("")
    else:
        (tmp_path / blocked).mkdir()

    code, _, err = report(tmp_path, capsys)

    assert code == 2
    assert f"cannot write the report into {tmp_path}" in err
    assert "Traceback" not in err
