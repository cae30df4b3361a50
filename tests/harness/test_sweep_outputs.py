"""What a real sweep shows and records: its progress lines, MLflow tags and artifacts."""

import io
import math
from contextlib import redirect_stdout

import pytest
import yaml
from mlflow import MlflowClient
from PIL import Image

from harness.artifacts import SCATTER_FILE
from harness.cli import main
from harness.results import load_results
from harness.tracking import default_tracking_uri, git_commit

pytestmark = pytest.mark.slow

SPEC = {
    "name": "outputs-test",
    "grid": {"methods": ["simgd", "jare"], "settings": ["gaussian", "mog"], "seeds": [0]},
    "train": {"steps": 20, "eval_every": 10, "lr": 0.01, "batch_size": 16, "device": "cpu",
              "task_options": {"mog": {"eval_samples": 200}}},
    "sweep": {"num_samples": 1, "max_concurrent_trials": 2},
}
CHILD_TAGS = ("method", "task", "setting", "gamma", "seed", "git_commit", "harness_version", "device")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outputs")
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    output = folder / "out"

    stdout = io.StringIO()
    with redirect_stdout(stdout):
        code = main(["sweep", str(spec), "--output", str(output)])

    client = MlflowClient(default_tracking_uri(output))
    experiment = client.get_experiment_by_name("outputs-test")
    runs = client.search_runs([experiment.experiment_id])
    return code, output, stdout.getvalue(), client, runs


def children(runs):
    return [run for run in runs if "mlflow.parentRunId" in run.data.tags]


def test_sweep_finishes(sweep):
    code, output, _, _, runs = sweep
    assert code == 0
    assert len(children(runs)) == 4


def test_progress_lines_plain_and_final(sweep):
    _, output, printed, _, _ = sweep
    lines = [line for line in printed.splitlines() if line.startswith("trials ")]

    assert lines[0].startswith("trials 0/4 done (0 finished, 0 diverged, 0 failed), 0 running, 4 pending")
    assert lines[-1].startswith("trials 4/4 done (4 finished, 0 diverged, 0 failed), 0 running, 0 pending; best: ")
    assert "\x1b" not in printed

    # The best result per setting is the best final objective in the results table.
    finals = load_results(output).sort_values("step").groupby("trial_id").tail(1)
    gaussian = finals[finals["task"] == "gaussian"].sort_values("distance_to_equilibrium").iloc[0]
    mog = finals[finals["task"] == "mog"].sort_values("high_quality_fraction", ascending=False).iloc[0]
    assert f"gaussian/default distance_to_equilibrium {gaussian['distance_to_equilibrium']:.4g}" in lines[-1]
    assert f"mog/r2 high_quality_fraction {mog['high_quality_fraction']:.4g}" in lines[-1]


def test_every_child_has_tags(sweep):
    _, output, _, _, runs = sweep
    trials = load_results(output).drop_duplicates("trial_id").set_index("trial_id")

    for run in children(runs):
        tags = run.data.tags
        for name in CHILD_TAGS:
            assert name in tags, f"{run.info.run_name} lacks tag {name}"
        trial = trials.loc[tags["trial_id"]]
        assert tags["method"] == trial["method"]
        assert (tags["task"], tags["setting"]) == (trial["task"], trial["setting"])
        assert int(tags["seed"]) == trial["seed"]
        assert math.isclose(float(tags["gamma"]), trial["gamma"])
        assert tags["device"] == "cpu"
        assert tags["git_commit"] == git_commit()
        assert run.info.run_name == f"{trial['method']}/{trial['task']}-{trial['setting']}/seed{trial['seed']}"


def test_parent_holds_resolved_spec(sweep):
    _, output, _, client, runs = sweep
    (parent,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]

    local = client.download_artifacts(parent.info.run_id, "spec.yaml", str(output.parent))

    assert yaml.safe_load(open(local)) == yaml.safe_load((output / "spec.yaml").read_text())
    assert yaml.safe_load(open(local))["train"]["steps"] == 20


def test_every_child_has_sample_scatter(sweep):
    _, output, _, client, runs = sweep

    for run in children(runs):
        names = [artifact.path for artifact in client.list_artifacts(run.info.run_id)]
        assert SCATTER_FILE in names, f"{run.info.run_name} has no {SCATTER_FILE}"
        local = client.download_artifacts(run.info.run_id, SCATTER_FILE, str(output.parent / run.info.run_id))
        with Image.open(local) as image:
            assert image.format == "PNG"
