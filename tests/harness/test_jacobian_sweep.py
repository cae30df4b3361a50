"""Spectra logged during a real sweep reach the results table and MLflow; the spec checks its fields."""

import math

import pytest
import yaml
from mlflow import MlflowClient

from harness.cli import main
from harness.config import validate_spec
from harness.errors import HarnessInputError
from harness.results import load_results
from harness.tracking import default_tracking_uri

SPEC = {
    "name": "spectrum-test",
    "grid": {"methods": ["simgd", "jare"], "settings": ["gaussian/mu2"], "seeds": [0]},
    "train": {"steps": 30, "eval_every": 10, "spectrum_every": 20, "lr": 0.01, "gamma": 2.0},
    "sweep": {"num_samples": 1, "max_concurrent_trials": 2},
}


def test_spectrum_every_must_divide_by_eval_every():
    raw = {**SPEC, "train": {**SPEC["train"], "spectrum_every": 15}}

    with pytest.raises(HarnessInputError) as error:
        validate_spec(raw)

    assert "spectrum_every (15) must be a multiple of eval_every (10)" in str(error.value)


def test_spectrum_every_rejects_batched_trials():
    raw = {**SPEC, "sweep": {**SPEC["sweep"], "batch_trials": 4}}

    with pytest.raises(HarnessInputError) as error:
        validate_spec(raw)

    assert "set sweep.batch_trials to 1" in str(error.value)


def test_spectrum_every_defaults_to_none():
    raw = {**SPEC, "train": {"steps": 30}}

    assert validate_spec(raw).train.spectrum_every is None


@pytest.mark.slow
def test_sweep_logs_spectrum(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    output = tmp_path / "out"

    assert main(["sweep", str(spec), "--output", str(output)]) == 0

    results = load_results(output)
    logged = results.dropna(subset=["jacobian_conditioning_factor"])
    # Every 20 steps and at the last step, 30.
    assert sorted(logged.groupby("method")["step"].apply(list).to_dict().items()) == [
        ("jare", [20, 30]), ("simgd", [20, 30])]
    assert results[results["step"] == 10]["jacobian_conditioning_factor"].isna().all()
    for value in logged["jacobian_max_abs_eigenvalue"]:
        assert math.isfinite(value)
        assert value > 0

    client = MlflowClient(default_tracking_uri(output))
    runs = client.search_runs([client.get_experiment_by_name("spectrum-test").experiment_id])
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert len(children) == 2
    for run in children:
        history = client.get_metric_history(run.info.run_id, "jacobian_conditioning_factor")
        assert sorted(metric.step for metric in history) == [20, 30]
