"""``harness train``: one trial without Ray, recorded in Parquet and a real MLflow store."""

import io
import math
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch
import yaml
from mlflow import MlflowClient
from PIL import Image

from harness.artifacts import SCATTER_FILE, point_density, write_toy_samples
from harness.cli import main
from harness.results import load_results
from harness.tasks import get_task
from harness.tracking import default_tracking_uri, git_commit
from harness.trainer import Trainer
from harness.trial import TrialConfig
from tests.conftest import REPO_ROOT

QUICKSTART = REPO_ROOT / "sweeps" / "quickstart.yaml"
CHILD_TAGS = ("method", "task", "setting", "gamma", "seed", "git_commit", "harness_version", "device")


def run_cli(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A jare trial taken from the quick-start spec, with options choosing one grid point."""
    output = tmp_path_factory.mktemp("train") / "out"
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        code = run_cli("train", QUICKSTART, "--method", "jare", "--setting", "gaussian", "--seed", 1,
                       "--steps", 60, "--eval-every", 20, "--gamma", 1.0, "--lr", 0.05, "--device", "cpu",
                       "--output", output, "--progress-every", 0)
    return code, output, stdout.getvalue()


def mlflow_runs(output, experiment_name="quickstart"):
    client = MlflowClient(default_tracking_uri(output))
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def test_train_exits_zero(trained):
    code, output, _ = trained
    assert code == 0
    assert (output / "spec.yaml").is_file()


def test_train_rows_match_direct_trainer(trained):
    _, output, _ = trained
    results = load_results(output).sort_values("step")

    # The quick-start spec gives batch 64; the options give the rest.
    config = TrialConfig(method="jare", task="gaussian", setting="default", seed=1, gamma=1.0, lr_g=0.05,
                         lr_d=0.05, steps=60, batch_size=64, eval_every=20, loss="saturating", optimizer="sgd",
                         betas=(0.5, 0.999), device="cpu")
    rows = []
    Trainer(config).run(rows.append)

    assert list(results["step"]) == [20, 40, 60]
    assert list(results["status"]) == ["running", "running", "finished"]
    assert list(results["distance_to_equilibrium"]) == [row["distance_to_equilibrium"] for row in rows]
    assert list(results["loss_d"]) == [row["loss_d"] for row in rows]
    assert (results["batch_size"] == 64).all()


def test_train_mlflow_parent_and_child(trained):
    _, output, _ = trained
    client, parents, children = mlflow_runs(output)

    assert len(parents) == 1
    assert len(children) == 1
    parent, child = parents[0], children[0]
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.info.status == "FINISHED"
    assert child.info.status == "FINISHED"
    assert child.info.run_name == "jare/gaussian-default/seed1"

    spec_file = client.download_artifacts(parent.info.run_id, "spec.yaml", str(output.parent))
    assert yaml.safe_load(open(spec_file)) == yaml.safe_load((output / "spec.yaml").read_text())


def test_train_child_tags(trained):
    _, output, _ = trained
    _, _, (child,) = mlflow_runs(output)
    tags = child.data.tags

    for name in CHILD_TAGS:
        assert name in tags, f"child run lacks tag {name}"
    assert (tags["method"], tags["task"], tags["setting"]) == ("jare", "gaussian", "default")
    assert (tags["gamma"], tags["seed"]) == ("1.0", "1")
    assert tags["device"] == "cpu"
    assert tags["git_commit"] == git_commit()
    assert tags["status"] == "finished"


def test_train_metrics_match_results(trained):
    _, output, _ = trained
    client, _, (child,) = mlflow_runs(output)
    results = load_results(output).sort_values("step")

    history = client.get_metric_history(child.info.run_id, "distance_to_equilibrium")

    assert [m.step for m in history] == [20, 40, 60]
    assert [m.value for m in history] == list(results["distance_to_equilibrium"])
    assert child.data.params["lr_g"] == "0.05"


def test_train_logs_sample_scatter(trained):
    _, output, _ = trained
    client, _, (child,) = mlflow_runs(output)

    names = [artifact.path for artifact in client.list_artifacts(child.info.run_id)]
    assert SCATTER_FILE in names
    local = client.download_artifacts(child.info.run_id, SCATTER_FILE, str(output.parent))
    with Image.open(local) as image:
        assert image.format == "PNG"
        assert image.size[0] > 500


def test_train_prints_plain_progress(trained):
    _, output, printed = trained
    lines = printed.splitlines()

    progress = [line for line in lines if line.startswith("step ")]
    assert len(progress) == 60  # --progress-every 0 prints every step
    assert progress[-1].startswith("step 60/60 (100%): loss_g ")
    assert "distance_to_equilibrium" in progress[-1]
    assert "\x1b" not in printed
    assert "\r" not in printed

    final = load_results(output).sort_values("step").iloc[-1]
    assert "trial jare/gaussian-default/seed1 finished at step 60" in printed
    assert f"distance_to_equilibrium {final['distance_to_equilibrium']:.4g}" in printed


def test_diverging_trial_recorded(tmp_path, capsys):
    output = tmp_path / "out"

    code = run_cli("train", "--method", "conopt", "--setting", "gaussian", "--lr", 1e30, "--steps", 50,
                   "--eval-every", 25, "--device", "cpu", "--output", output)

    assert code == 0
    printed = capsys.readouterr().out
    assert "trial conopt/gaussian-default/seed0 diverged at step" in printed
    final = load_results(output).sort_values("step").iloc[-1]
    assert final["status"] == "diverged"
    assert final["step"] < 50
    _, _, (child,) = mlflow_runs(output, "train")
    assert child.data.tags["status"] == "diverged"
    # A diverged generator has no samples to plot.
    assert not list((output / "samples").rglob(SCATTER_FILE))


def test_custom_store_keeps_artifacts_beside_it(tmp_path, monkeypatch):
    store = tmp_path / "store" / "mlflow.db"
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    monkeypatch.chdir(workdir)

    code = run_cli("train", "--method", "simgd", "--setting", "gaussian", "--steps", 5, "--device", "cpu",
                   "--output", tmp_path / "out", "--set", f"tracking.mlflow_uri=sqlite:///{store}")

    assert code == 0
    assert [p.name for p in (store.parent / "mlflow-artifacts").rglob("*.png")] == [SCATTER_FILE]
    assert not (workdir / "mlruns").exists()


@pytest.mark.parametrize("args, message", [
    ([], "--method and --setting are required"),
    (["--method", "jare"], "--method and --setting are required"),
    (["--method", "nosuch", "--setting", "gaussian"], "grid.methods"),
    (["--method", "jare", "--setting", "gaussian", "--steps", -5], "train.steps"),
    (["--method", "jare", "--setting", "gaussian", "--device", "tpu"], "train.device"),
    (["--method", "jare", "--setting", "gaussian", "--progress-every", -1], "invalid --progress-every -1.0"),
    ([QUICKSTART], "grid.methods has 6 entries (simgd, conopt, gen_only, disc_only, jare, sngan)"),
    ([QUICKSTART, "--method", "jare"], "grid.settings has 2 entries (gaussian/default, mog/r2)"),
    ([QUICKSTART, "--method", "jare", "--setting", "mog"], "grid.seeds has 2 entries (0, 1) but harness train runs one trial; pick one with --seed"),
    (["--method", "jare", "--setting", "cifar10"], "data.root is not set"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
    output = tmp_path / "out"

    code = run_cli("train", *args, "--output", output)

    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not output.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_without_device_rejected(tmp_path, capsys):
    output = tmp_path / "out"

    code = run_cli("train", "--method", "jare", "--setting", "gaussian", "--device", "cuda", "--output", output)

    assert code == 2
    assert "train.device is cuda but no CUDA device is available here" in capsys.readouterr().err
    assert not output.exists()


def test_output_holding_a_run_rejected(tmp_path, capsys):
    output = tmp_path / "out"
    (output / "results").mkdir(parents=True)

    code = run_cli("train", "--method", "jare", "--setting", "gaussian", "--output", output)

    assert code == 2
    assert "already contains a run" in capsys.readouterr().err
    assert not (output / "spec.yaml").exists()


def test_mog_scatter_keeps_training_rng(tmp_path):
    task = get_task("mog")
    game = task.build(task.setting("r2"), {}, None, False, torch.device("cpu"))
    torch.manual_seed(5)
    before = torch.get_rng_state()

    paths = write_toy_samples(game, tmp_path, "mog test")

    assert torch.equal(torch.get_rng_state(), before)
    assert paths == [tmp_path / SCATTER_FILE]
    with Image.open(paths[0]) as image:
        assert image.format == "PNG"


def test_scatter_skipped_for_non_finite_generator(tmp_path):
    task = get_task("gaussian")
    game = task.build(task.setting("default"), {}, None, False, torch.device("cpu"))
    with torch.no_grad():
        game.generator.phi.fill_(math.nan)

    assert write_toy_samples(game, tmp_path, "nan test") == []
    assert not (tmp_path / SCATTER_FILE).exists()


def test_point_density_peaks_at_cluster():
    rng = np.random.default_rng(0)
    cluster = rng.normal(0.0, 0.1, size=(200, 2))
    points = np.concatenate([cluster, [[5.0, 5.0]]])

    density = point_density(points)

    assert density.shape == (201,)
    assert density[:200].min() > density[200]


def test_point_density_degenerate_inputs():
    line = np.stack([np.arange(10.0), 2 * np.arange(10.0)], axis=1)

    assert point_density(line) is None  # all points on one line: singular covariance
    assert point_density(np.zeros((2, 2))) is None
