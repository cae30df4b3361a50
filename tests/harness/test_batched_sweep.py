"""A real sweep whose Ray trials each train a batch of toy trials (``sweep.batch_trials``)."""

from __future__ import annotations

import pytest
import yaml
from mlflow import MlflowClient

from harness.cli import main
from harness.results import load_results
from harness.tracking import default_tracking_uri
from harness.trainer import train
from harness.trial import TrialConfig

pytestmark = pytest.mark.slow

SPEC = {
    "name": "batched-sweep-test",
    "grid": {"methods": ["simgd", "jare", "sngan"], "settings": ["gaussian"], "seeds": [0, 1]},
    "search": {"gamma": {"distribution": "loguniform", "low": 0.1, "high": 10.0},
               "lr": {"distribution": "loguniform", "low": 0.003, "high": 0.03}},
    "train": {"steps": 20, "eval_every": 10, "device": "cpu"},
    "sweep": {"num_samples": 2, "max_concurrent_trials": 2, "batch_trials": 8},
}


@pytest.fixture(scope="module")
def batched_sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batched-sweep")
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    output = folder / "out"

    code = main(["sweep", str(spec), "--output", str(output)])

    return code, output


def test_batched_sweep_records_every_trial(batched_sweep):
    code, output = batched_sweep
    results = load_results(output)
    trials = results.drop_duplicates("trial_id")

    assert code == 0
    # Three rules, two sampled configurations each, two seeds.
    assert len(trials) == 3 * 2 * 2
    assert (results.groupby("trial_id")["step"].apply(sorted).map(tuple) == (10, 20)).all()
    assert (results[results["step"] == 20]["status"] == "finished").all()
    # simgd and jare share batches; sngan trials run alone, one Ray trial each.
    batched = trials[trials["trial_id"].str.contains("-")]
    assert set(batched["method"]) == {"simgd", "jare"}
    assert len(batched) == 8
    assert set(trials[trials["method"] == "sngan"]["trial_id"].str.contains("-")) == {False}


def test_batched_sweep_matches_unbatched(batched_sweep):
    _, output = batched_sweep
    results = load_results(output)
    finals = results[results["step"] == 20]

    for _, row in finals[finals["trial_id"].str.contains("-")].iterrows():
        config = TrialConfig(
            method=row["method"], task="gaussian", setting="default", seed=int(row["seed"]), gamma=row["gamma"],
            lr_g=row["lr_g"], lr_d=row["lr_d"], steps=20, batch_size=int(row["batch_size"]), eval_every=10,
            loss=row["loss"], optimizer=row["optimizer"], betas=(0.5, 0.999), device="cpu",
        )
        rows: list[dict] = []
        train(config, rows.append)
        assert row["distance_to_equilibrium"] == pytest.approx(rows[-1]["distance_to_equilibrium"], rel=1e-4)


def test_batched_sweep_one_mlflow_run_per_trial(batched_sweep):
    _, output = batched_sweep
    client = MlflowClient(default_tracking_uri(output))
    experiment = client.get_experiment_by_name(SPEC["name"])
    runs = client.search_runs([experiment.experiment_id], max_results=100)

    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert len(children) == 12
    assert {run.data.tags["status"] for run in children} == {"finished"}
