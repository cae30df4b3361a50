"""CIFAR-10 through ``harness sweep``: the A–F spec's grid, and setting A on the CIFAR-10 subset zip."""

from __future__ import annotations

import math

import pytest
import yaml
from mlflow import MlflowClient

from harness.cli import main
from harness.config import load_spec
from harness.results import load_results
from harness.search import grid_points
from harness.tracking import default_tracking_uri
from methods import method_names
from tests.conftest import CIFAR_ZIP, REPO_ROOT

STEPS = 200


def test_paper_spec_covers_every_setting_and_method():
    spec = load_spec(REPO_ROOT / "sweeps" / "cifar_all_settings.yaml")

    assert spec.grid.settings == [f"cifar10/{name}" for name in "ABCDEF"]
    assert sorted(spec.grid.methods) == sorted(method_names())
    assert len(grid_points(spec)) == 6 * len(method_names())


@pytest.fixture(scope="module")
def subset_sweep(tmp_path_factory, inception_weights):
    if not CIFAR_ZIP.is_file():
        pytest.skip(f"{CIFAR_ZIP} not found: the CIFAR-10 subset ships beside the checkout in ../shared/data")
    folder = tmp_path_factory.mktemp("cifar-sweep")
    spec = {
        "name": "cifar-subset",
        "grid": {"methods": ["simgd"], "settings": ["cifar10/A"], "seeds": [0]},
        "train": {
            "steps": STEPS, "batch_size": 16, "eval_every": STEPS,
            "task_options": {"cifar10": {
                "eval_samples": 10, "eval_reference_samples": 10, "eval_batch_size": 10, "eval_seed": 3,
                "inception_weights": str(inception_weights), "metrics_cache": str(folder / "cache"),
                "sample_grid_size": 16,
            }},
        },
        "data": {"root": str(CIFAR_ZIP)},
        "sweep": {"num_samples": 1, "max_concurrent_trials": 1},
    }
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    output = folder / "out"

    code = main(["sweep", str(path), "--output", str(output)])

    return code, output, inception_weights


@pytest.mark.slow
def test_subset_sweep_finishes(subset_sweep):
    code, output, _ = subset_sweep

    assert code == 0
    rows = load_results(output)
    assert len(rows) == 1
    assert rows.iloc[0]["status"] == "finished"
    assert rows.iloc[0]["step"] == STEPS


@pytest.mark.slow
def test_subset_sweep_metrics_finite(subset_sweep):
    _, output, _ = subset_sweep
    row = load_results(output).iloc[0]

    for name in ("inception_score", "inception_score_std", "fid", "kid", "kid_std"):
        assert math.isfinite(row[name]), f"{name} is {row[name]}"
    assert row["inception_score"] >= 1.0
    assert row["fid"] > 0
    assert row["objective"] == "fid"


@pytest.mark.slow
def test_subset_sweep_protocol_columns(subset_sweep):
    _, output, weights = subset_sweep
    row = load_results(output).iloc[0]

    assert row["eval_sample_count"] == 10
    assert row["eval_reference_count"] == 10
    assert row["eval_seed"] == 3
    assert row["eval_backbone"].startswith(f"inception-v3-compat (weights {weights.name}, sha256 ")
    assert row["eval_reference"].startswith("CIFAR-10 test split")


@pytest.mark.slow
def test_subset_sweep_logs_sample_grid(subset_sweep):
    _, output, _ = subset_sweep
    trial_id = load_results(output).iloc[0]["trial_id"]
    client = MlflowClient(default_tracking_uri(output))
    experiment = client.get_experiment_by_name("cifar-subset")
    [run] = client.search_runs([experiment.experiment_id], filter_string=f"tags.trial_id = '{trial_id}'")

    artifacts = [item.path for item in client.list_artifacts(run.info.run_id, "samples")]

    assert artifacts == [f"samples/step-{STEPS:07d}.png"]
    assert (output / "samples" / trial_id / f"step-{STEPS:07d}.png").is_file()
