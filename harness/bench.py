"""Step timing of the update rules, side by side with straightforward reference implementations.

``reference_directions`` is the obvious autograd version of each rule: both players' gradients
with ``create_graph=True``, then one ``torch.autograd.grad`` per regularizer term. It shares no
code with ``methods/``, so the equality tests can hold the registered rules against it, and the
timing shows what the registered rules save or cost over it.

``run_bench`` times ``Trainer.step`` for each method and a reference step (the same networks,
batches, losses and optimizers with the reference directions) in one process, interleaved
repeat by repeat, so that a change in machine load affects every column alike.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

from harness.errors import HarnessInputError
from harness.tasks import get_task
from harness.trainer import Trainer, game_losses
from harness.trial import TrialConfig
from methods import UnknownMethodError, get_method

REGULARIZED = ("conopt", "gen_only", "disc_only", "jare")
UNREGULARIZED = ("simgd", "sngan")


# ---------------------------------------------------------------------------------------------
# Reference rules


def reference_directions(
    name: str,
    loss_g: torch.Tensor,
    loss_d: torch.Tensor,
    params_g: Sequence[torch.Tensor],
    params_d: Sequence[torch.Tensor],
    gamma: float,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Return the rule's ``(d_φ, d_θ)`` computed the straightforward way, detached.

    ``name`` is a registered method; SN-GAN's spectral normalization lives in its
    discriminator, so its directions are SimGD's.
    """
    if name not in (*REGULARIZED, *UNREGULARIZED):
        raise HarnessInputError(f"no reference implementation for method {name!r}")
    regularized = name in REGULARIZED

    g_phi = _grad(loss_g, params_g, create_graph=regularized)
    g_theta = _grad(loss_d, params_d, create_graph=regularized)
    if not regularized:
        return _detach(g_phi), _detach(g_theta)

    half_norm_phi = 0.5 * sum(g.pow(2).sum() for g in g_phi)
    half_norm_theta = 0.5 * sum(g.pow(2).sum() for g in g_theta)
    zeros_phi = [torch.zeros_like(p) for p in params_g]
    zeros_theta = [torch.zeros_like(p) for p in params_d]

    if name == "conopt":
        consensus = half_norm_phi + half_norm_theta
        reg_phi = _grad(consensus, params_g)
        reg_theta = _grad(consensus, params_d)
    elif name == "gen_only":
        reg_phi, reg_theta = _grad(half_norm_theta, params_g), zeros_theta
    elif name == "disc_only":
        reg_phi, reg_theta = zeros_phi, _grad(half_norm_phi, params_d)
    else:
        reg_phi = _grad(half_norm_theta, params_g)
        reg_theta = _grad(half_norm_phi, params_d)

    d_phi = [(g + gamma * r).detach() for g, r in zip(g_phi, reg_phi, strict=True)]
    d_theta = [(g + gamma * r).detach() for g, r in zip(g_theta, reg_theta, strict=True)]
    return d_phi, d_theta


def _grad(scalar: torch.Tensor, params: Sequence[torch.Tensor], create_graph: bool = False) -> list[torch.Tensor]:
    if not scalar.requires_grad:
        return [torch.zeros_like(p) for p in params]
    grads = torch.autograd.grad(scalar, params, create_graph=create_graph, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]


def _detach(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [t.detach() for t in tensors]


def reference_step(trainer: Trainer) -> tuple[float, float] | None:
    """Run one simultaneous update of ``trainer``'s networks with the reference directions.

    Return the losses, or None when a loss or a parameter is not finite, as ``Trainer.step`` does.
    """
    config = trainer.config
    loss_g, loss_d = game_losses(trainer.game, config.batch_size, config.loss)

    d_phi, d_theta = reference_directions(
        config.method, loss_g, loss_d, trainer.params_g, trainer.params_d, config.gamma
    )

    for param, direction in zip([*trainer.params_g, *trainer.params_d], [*d_phi, *d_theta], strict=True):
        param.grad = direction
    trainer.opt_g.step()
    trainer.opt_d.step()

    finite = all(bool(torch.isfinite(p).all()) for p in [*trainer.params_g, *trainer.params_d])
    losses = float(loss_g.detach()), float(loss_d.detach())
    return losses if finite and all(map(math.isfinite, losses)) else None


# ---------------------------------------------------------------------------------------------
# Timing


@dataclass(frozen=True)
class BenchConfig:
    """What ``run_bench`` times: one setting, several methods, steps per repeat and repeats."""

    task: str
    setting: str
    methods: tuple[str, ...]
    steps: int = 20
    """Timed steps per repeat, for each method and for its reference."""
    batch_size: int | None = None
    """Samples per batch; None takes the setting's default."""
    repeats: int = 5
    warmup: int = 3
    """Untimed steps per method and reference before the first repeat."""
    gamma: float = 10.0
    device: str = "cpu"
    data_root: str | None = None
    seed: int = 0
    task_options: dict[str, Any] = field(default_factory=dict)
    """Overrides of the setting's options, as ``train.task_options.<task>`` of a spec."""


@dataclass
class Timing:
    seconds_per_step: list[float] = field(default_factory=list)
    diverged: bool = False

    @property
    def ms_per_step(self) -> float:
        return 1000.0 * statistics.median(self.seconds_per_step)


def trial_config_for(config: BenchConfig, method: str) -> TrialConfig:
    """Return a trial with the setting's optimizer, learning rate and loss for ``method``."""
    task = get_task(config.task)
    setting = task.setting(config.setting)
    return TrialConfig(
        method=method,
        task=task.name,
        setting=setting.name,
        seed=config.seed,
        gamma=config.gamma,
        lr_g=setting.lr,
        lr_d=setting.lr,
        steps=config.warmup + config.steps * config.repeats,
        batch_size=config.batch_size or setting.batch_size,
        eval_every=10**9,
        loss=setting.loss,
        optimizer=setting.optimizer,
        betas=setting.betas,
        data_root=config.data_root,
        device=config.device,
        task_options=dict(config.task_options),
    )


def check_bench_config(config: BenchConfig) -> None:
    """Raise ``HarnessInputError`` naming the option for anything ``run_bench`` cannot time."""
    task = get_task(config.task)
    setting = task.setting(config.setting)
    if not config.methods:
        raise HarnessInputError("--methods is empty; name at least one method, e.g. simgd,jare")
    for name in config.methods:
        try:
            get_method(name)
        except UnknownMethodError as error:
            raise HarnessInputError(f"--methods: {error}") from None
    if "simgd" not in config.methods:
        raise HarnessInputError("--methods must include simgd, which every ratio is measured against")
    for option, value in (("--steps", config.steps), ("--repeats", config.repeats)):
        if value < 1:
            raise HarnessInputError(f"{option} is {value}; expected an integer >= 1")
    if config.warmup < 0:
        raise HarnessInputError(f"--warmup is {config.warmup}; expected an integer >= 0")
    if config.batch_size is not None and config.batch_size < 1:
        raise HarnessInputError(f"--batch-size is {config.batch_size}; expected an integer >= 1")
    if config.gamma < 0:
        raise HarnessInputError(f"--gamma is {config.gamma}; expected a number >= 0")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise HarnessInputError("--device cuda: no CUDA device is available; use --device cpu")
    task.validate_options(setting, config.task_options)
    if task.needs_data:
        from pathlib import Path

        if config.data_root is None:
            raise HarnessInputError(f"task {task.name} needs image data; pass --data-root PATH")
        task.check_data(setting, Path(config.data_root), False)


def run_bench(config: BenchConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time every method's ``Trainer.step`` and its reference step; return the JSON-ready result.

    Each repeat runs ``steps`` steps of every method and then of its reference, in that order,
    and each column is the median over repeats of the mean time per step. Methods and
    references share the trainer, so both time the same networks, batches and optimizers.
    """
    check_bench_config(config)
    device = torch.device(config.device)
    trainers = {name: Trainer(trial_config_for(config, name)) for name in config.methods}
    harness_times = {name: Timing() for name in config.methods}
    reference_times = {name: Timing() for name in config.methods}

    def timed(step: Callable[[], Any], timing: Timing, count: int, record: bool) -> None:
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(count):
            # Both step kinds return None once a loss or a parameter is not finite.
            if step() is None:
                timing.diverged = True
        _synchronize(device)
        if record:
            timing.seconds_per_step.append((time.perf_counter() - start) / count)

    for name, trainer in trainers.items():
        timed(trainer.step, harness_times[name], config.warmup, record=False)
        timed(partial(reference_step, trainer), reference_times[name], config.warmup, record=False)

    for repeat in range(config.repeats):
        for name, trainer in trainers.items():
            timed(trainer.step, harness_times[name], config.steps, record=True)
            timed(partial(reference_step, trainer), reference_times[name], config.steps, record=True)
        if progress:
            progress(f"repeat {repeat + 1} of {config.repeats} done")

    return bench_result(config, harness_times, reference_times)


def bench_result(config: BenchConfig, harness_times: dict[str, Timing], reference_times: dict[str, Timing]) -> dict[str, Any]:
    simgd_ms = harness_times["simgd"].ms_per_step
    reference_simgd_ms = reference_times["simgd"].ms_per_step
    methods = {}
    reference = {}
    for name in config.methods:
        ms = harness_times[name].ms_per_step
        reference_ms = reference_times[name].ms_per_step
        methods[name] = {
            "ms_per_step": ms,
            "ratio_to_simgd": ms / simgd_ms,
            "ratio_to_reference": ms / reference_ms,
            "diverged": harness_times[name].diverged,
        }
        reference[name] = {
            "ms_per_step": reference_ms,
            "ratio_to_simgd": reference_ms / reference_simgd_ms,
            "diverged": reference_times[name].diverged,
        }
    batch_size = config.batch_size or get_task(config.task).setting(config.setting).batch_size
    return {
        "task": config.task,
        "setting": config.setting,
        "batch_size": batch_size,
        "gamma": config.gamma,
        "steps": config.steps,
        "repeats": config.repeats,
        "methods": methods,
        "reference": reference,
        "machine": machine_info(torch.device(config.device)),
    }


def machine_info(device: torch.device) -> dict[str, Any]:
    """Return what a reader needs to compare timings: CPU, threads, load, versions, GPU."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": os.getloadavg()[0],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def format_table(result: dict[str, Any]) -> str:
    """Return the result as a Markdown table: harness and reference columns per method."""
    machine = result["machine"]
    lines = [
        f"{result['task']}/{result['setting']}, batch {result['batch_size']}, γ = {result['gamma']:g}, "
        f"median of {result['repeats']} repeats of {result['steps']} steps, {machine['device']}, "
        f"{machine['torch_threads']} threads, load {machine['load_average_1m']:.2f}",
        "",
        "| method | ms/step | × SimGD | reference ms/step | reference × SimGD | harness / reference |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, values in result["methods"].items():
        reference = result["reference"][name]
        note = " (diverged)" if values["diverged"] else ""
        lines.append(
            f"| {name}{note} | {values['ms_per_step']:.2f} | {values['ratio_to_simgd']:.2f} | "
            f"{reference['ms_per_step']:.2f} | {reference['ratio_to_simgd']:.2f} | "
            f"{values['ratio_to_reference']:.2f} |"
        )
    return "\n".join(lines)
