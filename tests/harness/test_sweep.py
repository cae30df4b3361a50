"""Real sweeps end to end: a local Ray instance, Optuna, an MLflow SQLite store and Parquet."""

import math

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from harness.cli import main
from harness.results import load_results
from harness.tracking import default_tracking_uri
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

SPEC = {
    "name": "sweep-test",
    "grid": {"methods": ["simgd", "jare"], "settings": ["gaussian"], "seeds": [0, 1]},
    "search": {"gamma": {"distribution": "loguniform", "low": 0.1, "high": 10.0}},
    "train": {"steps": 30, "eval_every": 10, "lr": 0.01},
    "sweep": {"num_samples": 2, "max_concurrent_trials": 2},
}


def run_cli(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    output = folder / "out"

    code = run_cli("sweep", spec, "--output", output)

    return code, spec, output


def test_sweep_exits_zero(finished_sweep):
    code, _, output = finished_sweep
    assert code == 0
    assert (output / "spec.yaml").is_file()
    assert (output / "mlflow.db").is_file()


def test_every_trial_in_results(finished_sweep):
    _, _, output = finished_sweep
    results = load_results(output)
    trials = results.drop_duplicates("trial_id")

    # simgd ignores γ, so its search space is empty and it runs one configuration.
    assert len(trials) == 2 * 1 + 2 * 2
    assert sorted(trials.groupby("method").size().items()) == [("jare", 4), ("simgd", 2)]
    assert set(results["step"]) == {10, 20, 30}
    assert (results.groupby("trial_id")["step"].count() == 3).all()
    finals = results[results["step"] == 30]
    assert (finals["status"] == "finished").all()
    assert finals["distance_to_equilibrium"].map(math.isfinite).all()


def test_each_configuration_runs_every_seed(finished_sweep):
    _, _, output = finished_sweep
    trials = load_results(output).drop_duplicates("trial_id")
    jare = trials[trials["method"] == "jare"]

    for _, group in jare.groupby("config_id"):
        assert sorted(group["seed"]) == [0, 1]
        assert group["gamma"].nunique() == 1
    gammas = jare.drop_duplicates("config_id")["gamma"]
    assert gammas.nunique() == 2
    assert gammas.between(0.1, 10.0).all()
    assert (trials[trials["method"] == "simgd"]["gamma"] == 10.0).all()  # train.gamma default


def test_mlflow_parent_and_children(finished_sweep):
    _, _, output = finished_sweep
    client = MlflowClient(default_tracking_uri(output))
    experiment = client.get_experiment_by_name("sweep-test")
    runs = client.search_runs([experiment.experiment_id])

    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert len(children) == 6
    parent_id = parents[0].info.run_id
    assert all(r.data.tags["mlflow.parentRunId"] == parent_id for r in children)
    assert parents[0].info.status == "FINISHED"

    child = children[0]
    for tag in ("method", "task", "setting", "seed"):
        assert tag in child.data.tags
    assert child.data.tags["task"] == "gaussian"
    assert child.data.params["steps"] == "30"
    history = client.get_metric_history(child.info.run_id, "distance_to_equilibrium")
    assert [m.step for m in history] == [10, 20, 30]
    assert child.info.run_name.startswith(child.data.tags["method"] + "/gaussian-default/seed")


def test_report_prints_table(finished_sweep, capsys):
    _, _, output = finished_sweep
    capsys.readouterr()

    assert run_cli("report", output) == 0

    printed = capsys.readouterr().out
    assert "| simgd |" in printed
    assert "| jare |" in printed
    assert (output / "report.csv").is_file()


def test_second_sweep_into_same_output_rejected(finished_sweep, capsys):
    _, spec, output = finished_sweep
    before = sorted(p.name for p in (output / "results").iterdir())

    assert run_cli("sweep", spec, "--output", output) == 2

    assert "already contains a sweep" in capsys.readouterr().err
    assert sorted(p.name for p in (output / "results").iterdir()) == before


def test_diverging_trials_do_not_stop_sweep(tmp_path):
    spec = tmp_path / "spec.yaml"
    raw = {**SPEC, "name": "diverge", "grid": {"methods": ["conopt"], "settings": ["gaussian"], "seeds": [0]},
           "train": {"steps": 200, "eval_every": 50, "lr": 1.0e30}}
    spec.write_text(yaml.safe_dump(raw))

    code = run_cli("sweep", spec, "--output", tmp_path / "out")

    assert code == 0
    finals = load_results(tmp_path / "out").groupby("trial_id").tail(1)
    assert len(finals) == 2
    assert (finals["status"] == "diverged").all()
    assert (finals["step"] < 200).all()
    assert finals["distance_to_equilibrium"].isna().all()


def test_cifar_setting_a_every_method(tmp_path, cifar_zip, inception_weights):
    output = tmp_path / "cifar"
    # Ten images per evaluation keep the Inception network's CPU time to seconds per trial.
    options = (f"{{cifar10: {{eval_samples: 10, eval_reference_samples: 10, inception_weights: {inception_weights}, "
               f"metrics_cache: {tmp_path / 'cache'}}}}}")

    code = run_cli(
        "sweep", REPO_ROOT / "sweeps" / "cifar_all_settings.yaml", "--output", output,
        "--set", f"data.root={cifar_zip}", "--set", "train.steps=2", "--set", "train.batch_size=8",
        "--set", "train.eval_every=2", "--set", "grid.seeds=[0]", "--set", "sweep.num_samples=1",
        "--set", "grid.settings=[cifar10/A]", "--set", f"train.task_options={options}",
    )

    assert code == 0
    finals = load_results(output).groupby("trial_id").tail(1)
    assert sorted(finals["method"]) == sorted(["simgd", "conopt", "gen_only", "disc_only", "jare", "sngan"])
    assert (finals["status"] == "finished").all()
    assert finals["fid"].map(math.isfinite).all()
    assert (finals["eval_sample_count"] == 10).all()
    assert isinstance(finals, pd.DataFrame)
