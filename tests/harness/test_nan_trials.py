"""Trials that diverge or report no metric: their status, and what Ray Tune and Optuna receive.

Ray Tune's driver passes each reported result to the scheduler, the search algorithm and its
logger callbacks alike, and the JSON logger writes it to the trial's ``result.json``. So a
``result.json`` without a NaN means the scheduler and the searcher never received one.
"""

import json
import math
import pickle

import optuna
import pytest
import torch
import yaml
from mlflow import MlflowClient

from harness.cli import main
from harness.results import load_results
from harness.tracking import default_tracking_uri

pytestmark = pytest.mark.slow

SEEDS = [0, 1]
NUM_SAMPLES = 2
OBJECTIVE = "distance_to_equilibrium"


def run_sweep(folder, name: str, **train) -> tuple[int, object]:
    raw = {
        "name": name,
        "grid": {"methods": ["jare"], "settings": ["gaussian"], "seeds": SEEDS},
        "search": {"gamma": {"distribution": "loguniform", "low": 0.1, "high": 10.0}},
        "train": {"steps": 40, "eval_every": 10, "lr": 0.01, **train},
        "sweep": {"num_samples": NUM_SAMPLES, "max_concurrent_trials": 2, "max_failures": 0},
    }
    spec = folder / f"{name}.yaml"
    spec.write_text(yaml.safe_dump(raw))
    output = folder / name
    return main(["sweep", str(spec), "--output", str(output)]), output


def reject_constant(name: str):
    raise ValueError(f"result.json contains {name}")


def tune_results(output) -> dict[str, list[dict]]:
    """Return every result Ray Tune received, by trial id, parsed so that a NaN raises."""
    experiment = next((output / "ray").iterdir())
    results = {}
    for path in experiment.glob("*/result.json"):
        lines = path.read_text().splitlines()
        rows = [json.loads(line, parse_constant=reject_constant) for line in lines]
        results[rows[0]["trial_id"]] = rows
    return results


def optuna_trials(output) -> list[optuna.trial.FrozenTrial]:
    experiment = next((output / "ray").iterdir())
    state_file = sorted(experiment.glob("searcher-state-*.pkl"))[-1]
    with open(state_file, "rb") as handle:
        state = pickle.load(handle)
    return state["points"][0].searcher._ot_study.trials


def mlflow_children(output, experiment: str) -> list:
    client = MlflowClient(default_tracking_uri(output))
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


@pytest.fixture(scope="module")
def diverged_sweep(tmp_path_factory):
    # Gradient steps of size 1e30 overflow the parameters within the first evaluation interval.
    return run_sweep(tmp_path_factory.mktemp("nan"), "diverging", lr=1.0e30)


@pytest.fixture(scope="module")
def failed_sweep(tmp_path_factory):
    if torch.cuda.is_available():
        pytest.skip("the failing trials request CUDA, and this machine has it")
    # Every trial raises in its trainer's constructor, before it reports anything.
    return run_sweep(tmp_path_factory.mktemp("failed"), "failing", device="cuda")


def test_diverged_sweep_finishes(diverged_sweep):
    code, output = diverged_sweep
    assert code == 0

    finals = load_results(output).groupby("trial_id").tail(1)
    assert len(finals) == NUM_SAMPLES * len(SEEDS)
    assert (finals["status"] == "diverged").all()
    assert finals[OBJECTIVE].isna().all()


def test_tune_never_receives_nan(diverged_sweep):
    _, output = diverged_sweep
    results = tune_results(output)

    assert len(results) == NUM_SAMPLES * len(SEEDS)
    for trial_id, rows in results.items():
        last = rows[-1]
        assert last["status"] == "diverged", trial_id
        assert OBJECTIVE not in last, trial_id
        assert "loss_g" not in last, trial_id


def test_optuna_told_diverged_configs_failed(diverged_sweep):
    _, output = diverged_sweep
    trials = optuna_trials(output)

    assert len(trials) == NUM_SAMPLES
    for trial in trials:
        assert trial.state == optuna.trial.TrialState.FAIL
        assert trial.values is None


def test_diverged_runs_in_mlflow(diverged_sweep):
    _, output = diverged_sweep
    children = mlflow_children(output, "diverging")

    assert len(children) == NUM_SAMPLES * len(SEEDS)
    for child in children:
        assert child.data.tags["status"] == "diverged"
        assert child.info.status == "FINISHED"
        assert all(math.isfinite(value) for value in child.data.metrics.values())


def test_trials_without_metric_failed(failed_sweep):
    code, output = failed_sweep
    assert code == 0

    results = load_results(output)
    assert results["trial_id"].nunique() == NUM_SAMPLES * len(SEEDS)
    assert (results["status"] == "failed").all()
    assert results["error"].str.contains("RuntimeError: train.device is cuda").all()
    assert (results["step"] == 0).all()
    # No trial reported a row, so the table has no metric column at all.
    assert OBJECTIVE not in results.columns


def test_failed_trials_reach_optuna_and_mlflow(failed_sweep):
    _, output = failed_sweep

    trials = optuna_trials(output)
    assert len(trials) == NUM_SAMPLES
    assert all(t.state == optuna.trial.TrialState.FAIL for t in trials)

    children = mlflow_children(output, "failing")
    assert len(children) == NUM_SAMPLES * len(SEEDS)
    for child in children:
        assert child.data.tags["status"] == "failed"
        assert child.info.status == "FAILED"
        assert child.data.metrics == {}
