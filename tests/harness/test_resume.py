"""Sweeps that survive their driver: SIGKILL halfway through, then ``harness sweep --resume``."""

import os
import pickle
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from mlflow import MlflowClient

from harness.cli import main
from harness.results import load_results
from harness.tracking import default_tracking_uri
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

SEEDS = [0, 1]
NUM_SAMPLES = 4
TRIALS = NUM_SAMPLES * len(SEEDS)
STEPS = list(range(200, 1201, 200))
SPEC = {
    "name": "resume-test",
    "grid": {"methods": ["jare"], "settings": ["gaussian"], "seeds": SEEDS},
    "search": {"gamma": {"distribution": "loguniform", "low": 0.1, "high": 10.0}},
    "train": {"steps": STEPS[-1], "eval_every": STEPS[0], "lr": 0.01},
    "sweep": {"num_samples": NUM_SAMPLES, "max_concurrent_trials": 2},
}


def finished_trials(output) -> int:
    try:
        results = load_results(output)
    except Exception:  # no file yet, or one being replaced
        return 0
    return int((results["status"] == "finished").sum())


def searcher_state(experiment):
    """Load the search state Ray Tune saved with the experiment."""
    files = sorted(experiment.glob("searcher-state-*.pkl"))
    assert files, f"no searcher state in {experiment}"
    with open(files[-1], "rb") as handle:
        return pickle.load(handle)


@pytest.fixture(scope="module")
def resumed_sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    output = folder / "out"

    # The driver runs in its own process group, so one SIGKILL takes down it and its Ray processes.
    driver = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "sweep", str(spec), "--output", str(output)],
        cwd=REPO_ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while finished_trials(output) < TRIALS // 2 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    finished_before = finished_trials(output)

    code = main(["sweep", str(spec), "--output", str(output), "--resume"])

    return code, output, finished_before


def test_driver_killed_halfway(resumed_sweep):
    _, _, finished_before = resumed_sweep
    assert 0 < finished_before < TRIALS


def test_resume_exits_zero(resumed_sweep):
    code, output, _ = resumed_sweep
    assert code == 0
    assert "restoring the Tune experiment" in (output / "sweep.log").read_text()


def test_every_trial_exactly_once(resumed_sweep):
    _, output, _ = resumed_sweep
    results = load_results(output)

    assert results["trial_id"].nunique() == TRIALS
    assert not results.duplicated(["trial_id", "step"]).any()
    for trial_id, rows in results.groupby("trial_id"):
        assert sorted(rows["step"]) == STEPS, trial_id
    finals = results[results["step"] == STEPS[-1]]
    assert (finals["status"] == "finished").all()


def test_configurations_come_from_optuna(resumed_sweep):
    _, output, _ = resumed_sweep
    trials = load_results(output).drop_duplicates("trial_id")
    sweep_id = trials["sweep_id"].iloc[0]
    state = searcher_state(output / "ray" / sweep_id)
    study = state["points"][0].searcher._ot_study

    assert len(study.trials) == NUM_SAMPLES
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert trials["config_id"].nunique() == NUM_SAMPLES
    for _, group in trials.groupby("config_id"):
        assert sorted(group["seed"]) == SEEDS
    sampled = sorted(round(t.params["gamma"], 12) for t in study.trials)
    assert sorted(round(g, 12) for g in trials.drop_duplicates("config_id")["gamma"]) == sampled


def test_mlflow_runs_exactly_once(resumed_sweep):
    _, output, _ = resumed_sweep
    client = MlflowClient(default_tracking_uri(output))
    experiment = client.get_experiment_by_name("resume-test")
    runs = client.search_runs([experiment.experiment_id])

    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["trials_finished"] == str(TRIALS)
    assert len(children) == TRIALS
    assert len({r.data.tags["trial_id"] for r in children}) == TRIALS
    for child in children:
        assert child.info.status == "FINISHED"
        history = client.get_metric_history(child.info.run_id, "distance_to_equilibrium")
        assert sorted(m.step for m in history) == STEPS


def test_resume_without_sweep_rejected(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))

    assert main(["sweep", str(spec), "--output", str(tmp_path / "none"), "--resume"]) == 2

    assert "nothing to resume" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_resume_with_other_spec_rejected(resumed_sweep, tmp_path, capsys):
    _, output, _ = resumed_sweep
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "train": {**SPEC["train"], "lr": 0.02}}))
    before = sorted(p.name for p in (output / "results").iterdir())

    assert main(["sweep", str(spec), "--output", str(output), "--resume"]) == 2

    assert "the spec differs" in capsys.readouterr().err
    assert sorted(p.name for p in (output / "results").iterdir()) == before
