"""The SLURM launcher: one submitit job per sweep, with its own Ray cluster inside the allocation.

The job runs one task per node. The first task starts a Ray head, runs the sweep driver in a
subprocess that joins the head by its explicit address, and stops the head when the driver
ends; every other task starts a Ray worker that joins the head. Each job picks its own block of
Ray ports (derived from the SLURM job id) and its own Ray temporary folder, so sweeps that share
nodes never meet.

The submitted callable is checkpointable: on preemption or at its time limit submitit requeues
the job, and the requeued job restores the Tune experiment from the sweep's storage path, as
``harness sweep --resume`` does after a local crash. A job that SLURM itself requeues (node
failure, ``scontrol requeue``) restores the same way.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from harness.config import SweepSpec
from harness.errors import HarnessInputError

logger = logging.getLogger(__name__)

SLURM_DIRNAME = "slurm"
FIRST_PORT = 20000
PORT_BLOCK = 200
PORT_BLOCKS = 60
"""Ray port blocks of 200 ports from 20000 up, below Linux's default ephemeral range (32768+)."""
WORKER_PORTS = (20, PORT_BLOCK - 1)
"""Offsets of the first and last port in a block that Ray hands to worker processes."""
MAX_SOCKET_PATH = 107
"""Longest Unix socket path Linux accepts (``sun_path`` holds 108 bytes with the final NUL)."""
END_GRACE_S = 30
"""Seconds a job must stay ended without a result file before ``wait`` reports it failed."""
REQUEUE_WAIT_S = 180
"""Seconds the first task waits, after its driver died of a signal, before it reports a failure."""
HEAD_EXIT_GRACE_S = 60
"""Seconds the driver may run on after its Ray head exited before the first task stops it."""
RAY_STARTED_LINE = b"Ray runtime started."
"""The line ``ray start`` (Ray 2.x) prints once its node is up."""
SINGLE_NODE_SETTING = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
FINISHED_STATES = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
                   "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT"}
"""SLURM job states after which the job runs no more, unless it is requeued."""
NEVER_RUNNABLE_REASONS = {
    "BadConstraints": "its constraints match no node",
    "InvalidAccount": "its account is invalid",
    "InvalidQOS": "its QOS is invalid",
    "PartitionConfig": "it requests more CPUs, nodes or GPUs than the partition has",
    "PartitionNodeLimit": "it requests more nodes than the partition allows",
    "PartitionTimeLimit": "its time limit exceeds the partition's",
}
"""Pending reasons of a job that SLURM accepted but will never start while the cluster's limits stay."""
ADMISSION_WAIT_S = 10
"""Seconds ``submit`` waits for the scheduler's first look at a new job."""


# Submission, on the machine that runs ``harness sweep``.


def check_slurm(spec: SweepSpec) -> None:
    """Raise ``HarnessInputError`` when no SLURM cluster answers or the partition is unknown."""
    for command in ("sbatch", "scancel", "sinfo", "squeue", "scontrol", "srun"):
        if shutil.which(command) is None:
            raise HarnessInputError(
                f"--launcher slurm needs SLURM, but {command} is not on PATH; run on a SLURM login node, "
                "or use --launcher local"
            )
    result = _slurm_command(["sinfo", "--noheader", "--format=%P"])
    if result.returncode != 0:
        raise HarnessInputError(
            f"--launcher slurm: the SLURM controller did not respond (sinfo: {_first_line(result.stderr)}); "
            "check that slurmctld is running, or use --launcher local"
        )
    partitions = [name.strip() for name in result.stdout.split()]
    known = [name.rstrip("*") for name in partitions]
    partition = spec.slurm.partition
    if partition is not None and partition not in known:
        raise HarnessInputError(
            f"slurm.partition: unknown partition {partition!r}; this cluster has {', '.join(known) or 'none'}"
        )
    if partition is None and not any(name.endswith("*") for name in partitions):
        raise HarnessInputError(
            f"slurm.partition is not set and the cluster has no default partition; "
            f"set it with --partition, one of {', '.join(known) or 'none'}"
        )


def submit(spec: SweepSpec, output: Path, sweep_id: str):
    """Submit the sweep as one SLURM job and return submitit's job handle.

    Raises ``HarnessInputError`` with sbatch's message when SLURM rejects the job.
    """
    slurm = spec.slurm
    executor = submitit.SlurmExecutor(folder=output / SLURM_DIRNAME, max_num_timeout=slurm.max_requeues)
    parameters: dict[str, Any] = {
        "job_name": slurm.job_name or f"harness-{spec.name}",
        "nodes": slurm.nodes,
        "ntasks_per_node": 1,
        "cpus_per_task": slurm.cpus_per_task,
        "time": slurm.time_min,
        "signal_delay_s": slurm.signal_delay_s,
        "additional_parameters": {"requeue": True, **slurm.sbatch_args},
    }
    if slurm.partition:
        parameters["partition"] = slurm.partition
    if slurm.gpus_per_node:
        parameters["gpus_per_node"] = slurm.gpus_per_node
    if slurm.mem_gb:
        # SlurmExecutor copies the value into --mem verbatim, and sbatch reads a bare number as
        # megabytes and rejects a fractional one. SLURM's G suffix means 1024 M.
        parameters["mem"] = f"{round(slurm.mem_gb * 1024)}M"
    if slurm.setup:
        parameters["setup"] = list(slurm.setup)
    executor.update_parameters(**parameters)
    try:
        job = executor.submit(SweepJob(spec, output, sweep_id))
    except (submitit.core.utils.FailedJobError, subprocess.CalledProcessError) as error:
        raise HarnessInputError(f"SLURM rejected the sweep job: {_sbatch_message(error)}") from None
    _cancel_if_never_runnable(job.job_id)
    return job


def _cancel_if_never_runnable(job_id: str) -> None:
    """Cancel the new job and raise ``HarnessInputError`` when SLURM would keep it pending forever.

    Unless ``EnforcePartLimits`` is set, sbatch accepts a job that requests more than the
    partition has (too many CPUs or nodes), and the job then stays pending forever.
    """
    deadline = time.monotonic() + ADMISSION_WAIT_S
    while True:
        result = _slurm_command(["squeue", "--noheader", "--jobs", job_id, "--format=%T %r"])
        state, _, reason = result.stdout.strip().partition(" ")
        if state != "PENDING" or reason != "None" or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # "None": the scheduler has not looked at the job yet
    cause = NEVER_RUNNABLE_REASONS.get(reason)
    if reason.endswith("PerJobLimit"):
        cause = "it exceeds a per-job limit of its QOS or association"
    if state != "PENDING" or cause is None:
        return
    _slurm_command(["scancel", job_id])
    raise HarnessInputError(
        f"SLURM rejected the sweep job: job {job_id} can never start because {cause} "
        f"(pending reason {reason}), so it was cancelled; request fewer resources or another partition "
        "(sinfo --long shows the limits)"
    )


def wait(job, poll_s: float = 5.0) -> dict[str, Any]:
    """Wait for the sweep job and return what its first task returned.

    The job's state comes from squeue and scontrol, because submitit reads it with sacct, which
    fails on clusters without accounting. Raises ``RuntimeError`` when the job ends without
    a result.
    """
    last_state = None
    ended_at = None
    while not job.paths.result_pickle.exists():
        state = job_state(job.job_id)
        if state != last_state:
            logger.info("SLURM job %s: %s", job.job_id, state or "no longer known to SLURM")
            last_state = state
        if state is None or state in FINISHED_STATES:
            # A preempted job can come back as PENDING, and the result file can lag behind the
            # state on a shared file system, so only a lasting end state counts.
            ended_at = ended_at or time.monotonic()
            if time.monotonic() - ended_at > END_GRACE_S:
                raise RuntimeError(
                    f"SLURM job {job.job_id} ended as {state or 'unknown'} without a result; "
                    f"see its log {job.paths.stderr}"
                )
        else:
            ended_at = None
        time.sleep(poll_s)
    return job.result()


def job_state(job_id: str) -> str | None:
    """Return the job's SLURM state, or None when SLURM no longer knows the job."""
    result = _slurm_command(["squeue", "--noheader", "--jobs", job_id, "--format=%T"])
    state = result.stdout.strip()
    if result.returncode == 0 and state:
        return state.splitlines()[0]
    # A finished job leaves squeue but stays in scontrol for MinJobAge seconds.
    result = _slurm_command(["scontrol", "show", "job", "--oneliner", job_id])
    for field in result.stdout.split():
        if field.startswith("JobState="):
            return field.removeprefix("JobState=")
    return None


# Inside the job.


@dataclass(frozen=True)
class RayPorts:
    """The ports of one Ray node: a block of ``PORT_BLOCK`` ports from ``first``."""

    first: int

    def start_arguments(self) -> list[str]:
        return [
            f"--node-manager-port={self.first + 1}",
            f"--object-manager-port={self.first + 2}",
            f"--dashboard-agent-listen-port={self.first + 4}",
            f"--dashboard-agent-grpc-port={self.first + 5}",
            f"--runtime-env-agent-port={self.first + 6}",
            f"--metrics-export-port={self.first + 7}",
            f"--min-worker-port={self.first + WORKER_PORTS[0]}",
            f"--max-worker-port={self.first + WORKER_PORTS[1]}",
        ]

    @property
    def gcs(self) -> int:
        return self.first


def free_ports(job_id: str) -> RayPorts:
    """Return the first free port block on this node, starting at the one the job id selects.

    Two jobs whose ids select the same block, or a port taken by another program, move the
    later job on to the next free block.
    """
    number = int("".join(ch for ch in job_id if ch.isdigit()) or 0)
    for offset in range(PORT_BLOCKS):
        block = (number + offset) % PORT_BLOCKS
        ports = RayPorts(FIRST_PORT + block * PORT_BLOCK)
        if all(_port_is_free(port) for port in range(ports.first, ports.first + PORT_BLOCK)):
            return ports
    raise RuntimeError(f"no free block of {PORT_BLOCK} ports between {FIRST_PORT} and "
                       f"{FIRST_PORT + PORT_BLOCKS * PORT_BLOCK} for Ray")


def ray_temp_dir(job_id: str) -> Path:
    """Return a Ray temporary folder for the job, short enough for Ray's Unix socket paths."""
    # Ray puts sockets at <temp>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store (about 70 characters).
    candidate = Path(tempfile.gettempdir()) / f"hr-{job_id}"
    if len(str(candidate)) + 70 > MAX_SOCKET_PATH:
        candidate = Path("/tmp") / f"hr-{job_id}"
    return candidate


class SweepJob(submitit.helpers.Checkpointable):
    """The callable that submitit runs once per task of the sweep's job."""

    def __init__(self, spec: SweepSpec, output: Path, sweep_id: str) -> None:
        self.spec = spec
        self.output = output
        self.sweep_id = sweep_id

    def __call__(self) -> dict[str, Any]:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        environment = submitit.JobEnvironment()
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
        rendezvous = self.output / SLURM_DIRNAME / f"ray-{environment.job_id}-{restarts}.json"
        logger.info("sweep %s: task %d of %d on %s, SLURM job %s, run %d", self.sweep_id, environment.global_rank,
                    environment.num_tasks, environment.hostname, environment.job_id, restarts + 1)
        if environment.global_rank == 0:
            return self._run_head(environment.job_id, environment.num_nodes, rendezvous)
        self._run_worker(environment.job_id, rendezvous)
        return {}

    def checkpoint(self):
        """Return the resubmission submitit writes before it requeues the job.

        Everything the sweep needs lives in its output folder and storage path, so the job
        restarts with the same arguments and restores from there.
        """
        logger.warning("sweep %s: requeueing the SLURM job; the next run restores the experiment", self.sweep_id)
        return submitit.helpers.DelayedSubmission(self)

    def _run_head(self, job_id: str, nodes: int, rendezvous: Path) -> dict[str, Any]:
        # Every sweep's cluster has its own token, so a driver or node of another sweep that
        # reaches these ports cannot join.
        ray_environment = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        if nodes == 1:
            # A single-node sweep keeps Ray on the loopback interface, like a local one: with
            # this Ray setting off, Ray takes 127.0.0.1 as the node's address.
            ray_environment[SINGLE_NODE_SETTING] = "0"
            node_ip = "127.0.0.1"
        else:
            node_ip = _node_ip_address()
        ports = free_ports(job_id)
        temp_dir = ray_temp_dir(job_id)
        address = f"{node_ip}:{ports.gcs}"
        head_log = self.output / SLURM_DIRNAME / f"ray-head-{job_id}.log"
        # A requeued job appends to the same log, so only what this run writes counts.
        head_log_start = head_log.stat().st_size if head_log.exists() else 0
        head = _start_ray(
            ["--head", f"--port={ports.gcs}", f"--node-ip-address={node_ip}", f"--temp-dir={temp_dir}",
             "--include-dashboard=false", *ports.start_arguments()],
            self.spec, ray_environment, head_log,
        )
        try:
            _wait_for_head(head, head_log, head_log_start)
            _write_private(rendezvous, json.dumps({"address": address, "token": ray_environment["RAY_AUTH_TOKEN"]}))
            logger.info("sweep %s: Ray head at %s, temporary folder %s", self.sweep_id, address, temp_dir)
            driver = subprocess.Popen(
                [sys.executable, "-m", "harness.slurm", str(self.output), address],
                env={**os.environ, **ray_environment},
                preexec_fn=_ignore_preemption_signal,
            )
            _run_driver(driver, head, head_log)
        finally:
            rendezvous.with_suffix(".done").touch()
            _stop(head)
            shutil.rmtree(temp_dir, ignore_errors=True)
        if driver.returncode < 0:
            # SLURM ends every process of a job it preempts or requeues with SIGTERM, and
            # submitit's handler requeues the job on the signal that follows. Raising now would
            # record the job as failed before that, so give the requeue time to stop this task.
            logger.warning("sweep %s: the driver was ended by signal %d; waiting %d s for SLURM to requeue "
                           "or end the job", self.sweep_id, -driver.returncode, REQUEUE_WAIT_S)
            time.sleep(REQUEUE_WAIT_S)
        if driver.returncode != 0:
            raise RuntimeError(f"the sweep driver exited with code {driver.returncode}; see the job's log")
        return json.loads((self.output / SWEEP_RESULT_FILE).read_text())

    def _run_worker(self, job_id: str, rendezvous: Path) -> None:
        deadline = time.monotonic() + 600
        while not rendezvous.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not write {rendezvous} within 600 s")
            time.sleep(2)
        head = json.loads(rendezvous.read_text())
        ports = free_ports(job_id)
        worker = _start_ray(
            [f"--address={head['address']}", f"--node-ip-address={_node_ip_address()}", *ports.start_arguments()],
            self.spec, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": head["token"]},
            self.output / SLURM_DIRNAME / f"ray-worker-{job_id}-{socket.gethostname()}.log",
        )
        try:
            while worker.poll() is None and not rendezvous.with_suffix(".done").exists():
                time.sleep(2)
        finally:
            _stop(worker)


SWEEP_RESULT_FILE = "slurm-result.json"


def drive(output: Path, address: str) -> int:
    """Run or restore the sweep in ``output`` on the Ray cluster at ``address`` (the job's driver)."""
    from harness.config import load_spec
    from harness.sweep import SWEEP_FILE, execute_sweep

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = load_spec(output / "spec.yaml")
    sweep_id = json.loads((output / SWEEP_FILE).read_text())["sweep_id"]
    summary = execute_sweep(spec, output, sweep_id, ray_address=address)
    result = {"sweep_id": summary.sweep_id, "trials": summary.trials, "counts": summary.counts,
              "seconds": summary.seconds}
    (output / SWEEP_RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return 0


# helpers


def _start_ray(arguments: list[str], spec: SweepSpec, ray_environment: dict[str, str],
               log_path: Path) -> subprocess.Popen:
    """Start ``ray start --block`` so the Ray processes stay children of this task.

    SLURM then signals and ends them with the task, and stopping the command stops its node.
    Trial processes inherit ``ray_environment``.
    """
    resources = [f"--num-cpus={spec.slurm.cpus_per_task}", f"--num-gpus={spec.slurm.gpus_per_node}"]
    environment = {**os.environ, **ray_environment,
                   "HARNESS_TRIAL_THREADS": str(max(1, int(spec.sweep.cpus_per_trial)))}
    ray = Path(sys.executable).with_name("ray")
    command = [str(ray), "start", "--block", "--disable-usage-stats", *resources, *arguments]
    logger.info("starting %s", " ".join(command))
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                preexec_fn=_ignore_preemption_signal)


def _wait_for_head(head: subprocess.Popen, log_path: Path, log_start: int, timeout_s: float = 300) -> None:
    """Wait until ``ray start --head`` reports its node started, which it writes to ``log_path``.

    An open GCS port is not enough: Ray (2.x) starts the GCS first, and the node can still fail
    its startup afterwards, for example when an overloaded machine delays the raylet.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start --head exited with code {head.returncode} during startup; see {log_path}")
        with open(log_path, "rb") as log:
            log.seek(log_start)
            if RAY_STARTED_LINE in log.read():
                return
        time.sleep(1)
    raise RuntimeError(f"the Ray head did not start within {timeout_s:.0f} s; see {log_path}")


def _run_driver(driver: subprocess.Popen, head: subprocess.Popen, head_log: Path) -> None:
    """Wait for the driver, and stop it when the Ray head exits under it.

    A driver whose cluster is gone would retry its connection for minutes before it fails.
    """
    while driver.poll() is None:
        if head.poll() is None:
            time.sleep(2)
            continue
        # When SLURM requeues or cancels the job, its signal ends the head and the driver
        # together, and SLURM kills what is left after KillWait; the grace covers both.
        try:
            driver.wait(HEAD_EXIT_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            logger.error("the Ray head exited with code %d while the driver ran; stopping the driver (see %s)",
                         head.returncode, head_log)
            driver.terminate()
            driver.wait()
            raise RuntimeError(f"the Ray head exited with code {head.returncode} during the sweep; see {head_log}; "
                               "resume the sweep with --resume") from None


def _stop(process: subprocess.Popen, timeout_s: float = 30) -> None:
    """Stop a ``ray start --block`` command, which takes its Ray processes down with it."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        logger.warning("ray start (pid %d) did not stop within %.0f s; killing it", process.pid, timeout_s)
        process.kill()
        process.wait()


def _ignore_preemption_signal() -> None:
    # SLURM sends the preemption and time-limit signal (USR2) to every process of the job, and
    # its default action ends a process. Only submitit's handler in the task should act on it,
    # so the Ray processes and the driver keep running until the requeue stops the job.
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file that only its owner can read, since it holds the cluster's token."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")


def _node_ip_address() -> str:
    from ray.util import get_node_ip_address

    return get_node_ip_address()


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True


def _slurm_command(command: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, 1, "", f"{command[0]} timed out after 60 s")


def _sbatch_message(error: Exception) -> str:
    """Return sbatch's error lines, e.g. "Memory specification can not be satisfied; Batch job ..."."""
    text = str(getattr(error, "stderr", "") or error)
    lines = [line.strip().removeprefix("sbatch: error: ") for line in text.splitlines() if "error" in line.lower()]
    return "; ".join(lines) if lines else _first_line(text)


def _first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else "no message"


if __name__ == "__main__":
    sys.exit(drive(Path(sys.argv[1]), sys.argv[2]))
