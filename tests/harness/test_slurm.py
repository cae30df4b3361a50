"""Sweeps through a real SLURM cluster: submitit jobs, a Ray cluster per job, requeue and restore.

``scripts/start-slurm.sh`` starts a single-node cluster on this machine (CI runs it); the tests
that need one skip where ``sinfo`` finds no usable node.
"""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import submitit
import yaml
from mlflow import MlflowClient

from harness import slurm
from harness.cli import main
from harness.results import SCHEMA, load_results
from harness.tracking import default_tracking_uri
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

JOB_TIMEOUT_S = 300


def slurm_unreachable_reason() -> str | None:
    if shutil.which("sinfo") is None:
        return "no SLURM cluster: sinfo is not on PATH (scripts/start-slurm.sh installs and starts one)"
    result = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True, timeout=30)
    states = result.stdout.split()
    if result.returncode != 0 or not states:
        return f"no SLURM cluster reachable: sinfo failed ({result.stderr.strip() or 'no nodes'})"
    if not {"idle", "mix", "alloc"} & {state.rstrip("*") for state in states}:
        return f"no usable SLURM node: sinfo shows {', '.join(states)}"
    return None


@pytest.fixture(scope="module")
def cluster():
    reason = slurm_unreachable_reason()
    if reason:
        pytest.skip(reason)


def write_spec(folder: Path, name: str, **sections) -> Path:
    raw = {
        "name": name,
        "grid": {"methods": ["simgd", "jare"], "settings": ["gaussian"], "seeds": [0, 1]},
        "search": {"gamma": {"distribution": "loguniform", "low": 0.1, "high": 10.0}},
        "train": {"steps": 40, "eval_every": 20, "lr": 0.01},
        "sweep": {"num_samples": 2, "max_concurrent_trials": 1},
    }
    raw.update(sections)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def submit_detached(spec: Path, output: Path, capsys, *options: str) -> str:
    """Submit a sweep with --detach and return its SLURM job id."""
    capsys.readouterr()
    code = main(["sweep", str(spec), "--output", str(output), "--launcher", "slurm", "--cpus-per-task", "1",
                 "--detach", *options])
    printed = capsys.readouterr().out
    assert code == 0, printed
    return re.search(r"submitted SLURM job (\d+)", printed).group(1)


def wait_for_job(output: Path, job_id: str) -> dict:
    job = submitit.SlurmJob(folder=output / "slurm", job_id=job_id)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not job.paths.result_pickle.exists():
        assert time.monotonic() < deadline, f"SLURM job {job_id} did not finish within {JOB_TIMEOUT_S} s"
        release_requeued(job_id)
        time.sleep(1)
    return slurm.wait(job, poll_s=1)


def release_requeued(job_id: str) -> None:
    """Start a requeued job now: SLURM delays its start by a BeginTime."""
    reason = subprocess.run(["squeue", "--noheader", "--jobs", job_id, "--format=%T %r"],
                            capture_output=True, text=True).stdout.split()
    if reason == ["PENDING", "BeginTime"]:
        subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)


def trial_rows_written(output: Path) -> int:
    try:
        return load_results(output)["trial_id"].nunique()
    except Exception:  # no file yet, or one being replaced
        return 0


def children_of(client: MlflowClient, experiment: str) -> tuple[list, list]:
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def test_quickstart_on_slurm(cluster, tmp_path, capsys):
    output = tmp_path / "quickstart"

    code = main([
        "sweep", str(REPO_ROOT / "sweeps" / "quickstart.yaml"), "--output", str(output),
        "--launcher", "slurm", "--cpus-per-task", "2", "--mem-gb", "1.5", "--time-min", "20",
        "--set", "train.steps=60", "--set", "train.eval_every=30", "--set", "grid.seeds=[0]",
        "--set", "sweep.num_samples=1",
    ])

    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"results: {output}" in printed
    results = load_results(output)
    assert results["trial_id"].nunique() == 12
    assert set(results["method"]) == {"simgd", "conopt", "gen_only", "disc_only", "jare", "sngan"}
    assert set(results["task"] + "/" + results["setting"]) == {"gaussian/default", "mog/r2"}
    assert set(SCHEMA.names) <= set(results.columns)
    assert {"distance_to_equilibrium", "high_quality_fraction"} <= set(results.columns)
    finals = results.sort_values("step").groupby("trial_id").tail(1)
    assert set(finals["status"]) <= {"finished", "diverged"}
    assert (finals["step"] == 60).sum() >= 1

    parents, children = children_of(MlflowClient(default_tracking_uri(output)), "quickstart")
    assert len(parents) == 1
    assert parents[0].info.status == "FINISHED"
    assert len(children) == 12
    assert main(["report", str(output)]) == 0
    assert "| jare |" in capsys.readouterr().out


def test_requeued_job_records_every_trial_once(cluster, tmp_path, capsys):
    steps = list(range(300, 1201, 300))
    spec = write_spec(tmp_path, "requeue", train={"steps": steps[-1], "eval_every": steps[0], "lr": 0.01})
    output = tmp_path / "requeue"
    job_id = submit_detached(spec, output, capsys)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while trial_rows_written(output) < 2:
        assert time.monotonic() < deadline, "no trial reported within the time limit"
        time.sleep(0.5)

    subprocess.run(["scontrol", "requeue", job_id], check=True)
    result = wait_for_job(output, job_id)

    job = subprocess.run(["scontrol", "show", "job", "--oneliner", job_id], capture_output=True, text=True).stdout
    assert "Restarts=1" in job
    assert "restoring the Tune experiment" in (output / "sweep.log").read_text()
    assert result["counts"] == {"finished": 6, "diverged": 0, "failed": 0}
    results = load_results(output)
    assert results["trial_id"].nunique() == 6
    assert not results.duplicated(["trial_id", "step"]).any()
    for trial_id, rows in results.groupby("trial_id"):
        assert sorted(rows["step"]) == steps, trial_id

    client = MlflowClient(default_tracking_uri(output))
    parents, children = children_of(client, "requeue")
    assert len(parents) == 1
    assert len(children) == 6
    assert {r.data.tags["trial_id"] for r in children} == set(results["trial_id"])
    for child in children:
        history = client.get_metric_history(child.info.run_id, "distance_to_equilibrium")
        assert sorted(m.step for m in history) == steps


def test_two_sweeps_at_once(cluster, tmp_path, capsys):
    store = f"sqlite:///{tmp_path / 'shared-mlflow.db'}"
    train = {"steps": 300, "eval_every": 100, "lr": 0.01}
    outputs = {name: tmp_path / name for name in ("first", "second")}
    jobs = {
        name: submit_detached(write_spec(tmp_path, name, train=train), output, capsys,
                              "--set", f"tracking.mlflow_uri={store}")
        for name, output in outputs.items()
    }

    both_running = False
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not both_running and time.monotonic() < deadline:
        states = [slurm.job_state(job_id) for job_id in jobs.values()]
        both_running = states == ["RUNNING", "RUNNING"]
        if any(state not in ("PENDING", "RUNNING", "CONFIGURING") for state in states):
            break
        time.sleep(0.5)
    results = {name: wait_for_job(outputs[name], job_id) for name, job_id in jobs.items()}

    assert both_running
    for name, result in results.items():
        assert result["counts"] == {"finished": 6, "diverged": 0, "failed": 0}, name
    addresses = {
        name: json.loads(next((output / "slurm").glob("ray-*.json")).read_text())["address"]
        for name, output in outputs.items()
    }
    assert addresses["first"] != addresses["second"]

    client = MlflowClient(store)
    for name in outputs:
        parents, children = children_of(client, name)
        assert len(parents) == 1, name
        assert len(children) == 6, name
        finals = [client.get_run(c.info.run_id).data.metrics["distance_to_equilibrium"] for c in children]
        assert all(math.isfinite(value) for value in finals), name


def test_unknown_partition_rejected(cluster, tmp_path, capsys):
    spec = write_spec(tmp_path, "partition")

    code = main(["sweep", str(spec), "--output", str(tmp_path / "out"), "--launcher", "slurm",
                 "--partition", "no-such-partition"])

    assert code == 2
    assert "unknown partition 'no-such-partition'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("option", "value", "cause"), [
    # sbatch itself rejects these.
    ("--mem-gb", "1000", "Memory specification can not be satisfied"),
    ("--gpus-per-node", "1", "Invalid generic resource"),
    # sbatch accepts this one, and the job would stay pending for good.
    ("--cpus-per-task", "100000", "pending reason PartitionConfig"),
])
def test_job_slurm_rejects_reported(option, value, cause, cluster, tmp_path, capsys):
    spec = write_spec(tmp_path, f"rejected{option}")

    code = main(["sweep", str(spec), "--output", str(tmp_path / "out"), "--launcher", "slurm", option, value])

    error = capsys.readouterr().err
    assert code == 2
    assert "SLURM rejected the sweep job" in error
    assert cause in error
    assert not (tmp_path / "out").exists()
    pending = subprocess.run(["squeue", "--noheader", "--states=PENDING", f"--name=harness-rejected{option}"],
                             capture_output=True, text=True, check=True).stdout
    assert pending == ""


def python_process(code: str, log: Path | None = None) -> subprocess.Popen:
    """Start a Python process in place of ``ray start`` or the driver."""
    output = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-c", code], stdout=output)


def test_head_waits_for_started_line(tmp_path):
    log = tmp_path / "ray-head.log"
    log.write_text("Ray runtime started.\n")  # from the job's previous run
    start = log.stat().st_size
    head = python_process("import time; time.sleep(2); print('Ray runtime started.', flush=True); time.sleep(60)", log)

    began = time.monotonic()
    slurm._wait_for_head(head, log, start)

    assert time.monotonic() - began >= 1.5
    head.kill()
    head.wait()


def test_head_startup_failure_reported(tmp_path):
    log = tmp_path / "ray-head.log"
    log.write_text("Ray runtime started.\n")  # from the job's previous run
    head = python_process("import sys; sys.exit(1)", log)

    with pytest.raises(RuntimeError, match="exited with code 1 during startup"):
        slurm._wait_for_head(head, log, log.stat().st_size)


def test_driver_stopped_when_head_exits(tmp_path, monkeypatch):
    monkeypatch.setattr(slurm, "HEAD_EXIT_GRACE_S", 1)
    head = python_process("import sys; sys.exit(3)")
    driver = python_process("import time; time.sleep(120)")

    with pytest.raises(RuntimeError, match="Ray head exited with code 3 during the sweep"):
        slurm._run_driver(driver, head, tmp_path / "ray-head.log")

    assert driver.returncode == -signal.SIGTERM


def test_driver_ending_with_head_not_stopped(tmp_path):
    head = python_process("import sys; sys.exit(0)")
    driver = python_process("import time; time.sleep(3)")

    slurm._run_driver(driver, head, tmp_path / "ray-head.log")

    assert driver.returncode == 0


def test_missing_slurm_reported(tmp_path, capsys, monkeypatch):
    spec = write_spec(tmp_path, "noslurm")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))

    code = main(["sweep", str(spec), "--output", str(tmp_path / "out"), "--launcher", "slurm"])

    assert code == 2
    assert "sbatch is not on PATH" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_gpu_trials_need_gpu_nodes(tmp_path, capsys):
    spec = write_spec(tmp_path, "gpus")

    code = main(["sweep", str(spec), "--output", str(tmp_path / "out"), "--launcher", "slurm",
                 "--set", "sweep.gpus_per_trial=1"])

    assert code == 2
    assert "slurm.gpus_per_node is 0" in capsys.readouterr().err


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody can create files in, root included where chattr works."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
            pytest.skip("root can write any folder here, and chattr +i is not available")
        yield folder
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)


@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_unwritable_results_folder_rejected(launcher, read_only_folder, tmp_path, capsys):
    spec = write_spec(tmp_path, "unwritable")

    code = main(["sweep", str(spec), "--output", str(tmp_path / "out"), "--launcher", launcher,
                 "--set", f"tracking.results_dir={read_only_folder / 'results'}"])

    assert code == 2
    error = capsys.readouterr().err
    assert "cannot write tracking.results_dir" in error
    assert str(read_only_folder) in error
    assert not (tmp_path / "out").exists()
