"""Many toy trials trained at once, vectorized over trials.

Each trial is built exactly as ``Trainer`` builds it (same seed, same initial networks, same
batch stream), then the trials' parameters are stacked along a new leading dimension. One
step runs the forward pass of every trial with ``torch.func.vmap`` over ``functional_call``,
sums the per-trial losses and hands the sums and the stacked parameters to the method. Trials
are independent, so the gradient of a sum with respect to trial k's slice is trial k's own
gradient, and the same holds for every gradient-norm regularizer. The registered rules
therefore work on stacked parameters unchanged, with γ given as one value per trial. Optimizer steps are applied
per trial with each trial's learning rates.

Trials of one batch share task, setting, steps, batch size, evaluation interval, loss and
optimizer; they may differ in method, seed, γ and learning rates. Trials of one method form a
group with its own stacked parameters.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from harness.errors import HarnessInputError
from harness.tasks import Game, get_task
from harness.trainer import TrialOutcome, resolve_device, seed_everything, vanilla_losses
from harness.trial import TrialConfig
from methods import Method, get_method

logger = logging.getLogger(__name__)

BATCHABLE_TASKS = ("gaussian", "mog")
SHARED_FIELDS = ("task", "setting", "steps", "batch_size", "eval_every", "loss", "optimizer", "betas",
                 "task_options", "device")
"""TrialConfig fields that every trial of one batch must share."""

BatchEvalCallback = Callable[[int, dict[str, Any]], None]
"""Called with the trial's index in the batch and its result row."""

BATCH_KEY = "batch"
"""Key of a Ray trial's config whose value is the list of trial configurations trained together."""


def member_id(trial_id: str, index: int) -> str:
    """Return the results id of the batch member at ``index``: the Ray trial id, a dash, the index."""
    return f"{trial_id}-{index}"


def ray_trial_id(results_id: str) -> str:
    """Return the Ray trial id behind a results id; Ray's ids (``hash_00001``) contain no dash."""
    return results_id.split("-", 1)[0]


def trial_members(trial_id: str, config: dict[str, Any]) -> list[tuple[str, TrialConfig]]:
    """Return ``(results id, configuration)`` of every trial a Ray trial trains: itself or its batch."""
    if BATCH_KEY in config:
        return [(member_id(trial_id, index), TrialConfig.from_dict(values))
                for index, values in enumerate(config[BATCH_KEY])]
    return [(trial_id, TrialConfig.from_dict(config))]


def can_share_batch(config: TrialConfig, first: TrialConfig) -> bool:
    """Return whether ``config`` can train in one batch with ``first``."""
    if first.task not in BATCHABLE_TASKS or not supports_batching(get_method(config.method)):
        return False
    return all(getattr(config, name) == getattr(first, name) for name in SHARED_FIELDS)


def check_batchable(configs: Sequence[TrialConfig]) -> None:
    """Raise ``HarnessInputError`` unless ``configs`` can train together in one batch."""
    if not configs:
        raise HarnessInputError("a batch of trials needs at least one trial configuration")
    first = configs[0]
    if first.task not in BATCHABLE_TASKS:
        raise HarnessInputError(
            f"task {first.task} cannot train in batches; batched tasks: {', '.join(BATCHABLE_TASKS)}"
        )
    for config in configs:
        for name in SHARED_FIELDS:
            if getattr(config, name) != getattr(first, name):
                raise HarnessInputError(
                    f"trials of one batch must share {name}: {config.run_name} has "
                    f"{getattr(config, name)!r}, {first.run_name} has {getattr(first, name)!r}"
                )
        if not supports_batching(get_method(config.method)):
            raise HarnessInputError(
                f"method {config.method} changes the discriminator's layers and cannot train in batches"
            )


def supports_batching(method: Method) -> bool:
    """Return whether the rule trains plain stacked parameters, which needs an unchanged discriminator."""
    return type(method).prepare_discriminator is Method.prepare_discriminator


# ---------------------------------------------------------------------------------------------
# Per-trial random streams


@dataclass
class RandomStream:
    """A trial's copy of torch's global RNG state, swapped in while that trial samples."""

    cpu: torch.Tensor
    cuda: torch.Tensor | None

    @classmethod
    def capture(cls, device: torch.device) -> RandomStream:
        cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        return cls(torch.get_rng_state(), cuda)

    def restore(self, device: torch.device) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, device)


# ---------------------------------------------------------------------------------------------
# Stacked optimizers


class StackedOptimizer:
    """SGD, Adam or RMSProp over stacked parameters, with one learning rate per trial.

    The arithmetic follows ``torch.optim``'s single-tensor implementations (and the trainer's
    RMSProp decay 0.9), so each trial's slice moves as its own torch optimizer would move it.
    """

    def __init__(self, name: str, params: list[torch.Tensor], lrs: torch.Tensor,
                 betas: tuple[float, float]) -> None:
        if name not in ("sgd", "adam", "rmsprop"):
            raise HarnessInputError(f"unknown optimizer {name!r}; known optimizers: sgd, adam, rmsprop")
        self.name = name
        self.params = params
        self.lrs = lrs
        self.betas = betas
        self.step_count = 0
        self.state = [
            {"first": torch.zeros_like(p), "second": torch.zeros_like(p)} for p in params
        ]

    @torch.no_grad()
    def step(self, directions: Sequence[torch.Tensor]) -> None:
        self.step_count += 1
        for param, direction, state in zip(self.params, directions, self.state, strict=True):
            lr = per_trial(self.lrs, param)
            if self.name == "sgd":
                param.sub_(lr * direction)
            elif self.name == "rmsprop":
                alpha, eps = 0.9, 1e-8
                state["second"].mul_(alpha).addcmul_(direction, direction, value=1 - alpha)
                param.sub_(lr * direction / state["second"].sqrt().add_(eps))
            else:
                beta1, beta2 = self.betas
                eps = 1e-8
                state["first"].lerp_(direction, 1 - beta1)
                state["second"].mul_(beta2).addcmul_(direction, direction, value=1 - beta2)
                correction1 = 1 - beta1**self.step_count
                correction2 = 1 - beta2**self.step_count
                denominator = (state["second"].sqrt() / math.sqrt(correction2)).add_(eps)
                param.sub_(lr / correction1 * state["first"] / denominator)


def per_trial(values: torch.Tensor, stacked: torch.Tensor) -> torch.Tensor:
    """Reshape one value per trial so it broadcasts over the trailing dimensions of ``stacked``."""
    return values.view(-1, *([1] * (stacked.dim() - 1)))


# ---------------------------------------------------------------------------------------------
# Groups and the batched trainer


@dataclass
class MethodGroup:
    """The trials of one method in a batch, with their stacked parameters and optimizers."""

    method: Method
    indices: list[int]
    """Positions of the group's trials in the batch."""
    games: list[Game]
    streams: list[RandomStream]
    generator: nn.Module
    discriminator: nn.Module
    """Structure-only copies on the meta device; ``functional_call`` supplies the parameters."""
    params_g: dict[str, torch.Tensor]
    params_d: dict[str, torch.Tensor]
    gammas: torch.Tensor
    opt_g: StackedOptimizer
    opt_d: StackedOptimizer
    alive: list[bool] = field(default_factory=list)


class BatchedTrainer:
    """Trains a batch of toy trials in one process; ``run`` reports rows per trial."""

    def __init__(self, configs: Sequence[TrialConfig]) -> None:
        check_batchable(configs)
        self.configs = list(configs)
        first = self.configs[0]
        self.device = resolve_device(first.device)
        self.task = get_task(first.task)
        self.setting = self.task.setting(first.setting)
        self.groups: list[MethodGroup] = []

        saved = RandomStream.capture(self.device)
        by_method: dict[str, list[int]] = {}
        for index, config in enumerate(self.configs):
            by_method.setdefault(config.method, []).append(index)
        for name, indices in by_method.items():
            self.groups.append(self._build_group(get_method(name), indices))
        saved.restore(self.device)

    def _build_group(self, method: Method, indices: list[int]) -> MethodGroup:
        games, streams = [], []
        for index in indices:
            config = self.configs[index]
            # The same calls in the same order as Trainer.__init__, so the networks and the batch
            # stream of each trial are those of its unbatched run.
            seed_everything(config.seed)
            game = self.task.build(self.setting, config.task_options, None, False, self.device)
            games.append(game)
            streams.append(RandomStream.capture(self.device))

        params_g, _ = stack_module_state([game.generator for game in games])
        params_d, _ = stack_module_state([game.discriminator for game in games])
        configs = [self.configs[index] for index in indices]
        first = configs[0]

        def rates(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=self.device)

        return MethodGroup(
            method=method,
            indices=indices,
            games=games,
            streams=streams,
            generator=copy.deepcopy(games[0].generator).to("meta"),
            discriminator=copy.deepcopy(games[0].discriminator).to("meta"),
            params_g=params_g,
            params_d=params_d,
            gammas=rates([c.gamma for c in configs]),
            opt_g=StackedOptimizer(first.optimizer, list(params_g.values()), rates([c.lr_g for c in configs]), first.betas),
            opt_d=StackedOptimizer(first.optimizer, list(params_d.values()), rates([c.lr_d for c in configs]), first.betas),
            alive=[True] * len(indices),
        )

    # one step

    def _batches(self, group: MethodGroup) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw each trial's real and latent batch from its own stream, stacked over trials."""
        batch_size = self.configs[0].batch_size
        reals, latents = [], []
        for game, stream in zip(group.games, group.streams, strict=True):
            stream.restore(self.device)
            reals.append(game.sample_real(batch_size))
            latents.append(game.sample_latent(batch_size))
            captured = RandomStream.capture(self.device)
            stream.cpu, stream.cuda = captured.cpu, captured.cuda
        return torch.stack(reals), torch.stack(latents)

    def _losses(self, group: MethodGroup, reals: torch.Tensor, latents: torch.Tensor):
        config = self.configs[0]

        def trial_losses(params_g, params_d, real, latent):
            fake = functional_call(group.generator, params_g, (latent,))
            logits = functional_call(group.discriminator, params_d, (torch.cat([real, fake]),))
            return vanilla_losses(logits, config.batch_size, config.loss)

        return vmap(trial_losses)(group.params_g, group.params_d, reals, latents)

    def step_group(self, group: MethodGroup) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run one update of every trial in ``group``.

        Return each trial's losses before the update and whether the trial is still finite: its
        losses were finite and so are its parameters after the update.
        """
        reals, latents = self._batches(group)
        losses_g, losses_d = self._losses(group, reals, latents)
        params_g = list(group.params_g.values())
        params_d = list(group.params_d.values())

        dirs_g, dirs_d = group.method.directions(
            losses_g.sum(), losses_d.sum(), params_g, params_d, group.gammas
        )

        group.opt_g.step(dirs_g)
        group.opt_d.step(dirs_d)

        # Per trial, the same test as Trainer.step: finite losses and a finite total norm of
        # the parameters, which also fails when finite parameters overflow the norm.
        norms = torch.stack([
            torch.linalg.vector_norm(param.detach().flatten(1), dim=1) for param in [*params_g, *params_d]
        ])
        finite = torch.isfinite(losses_g.detach()) & torch.isfinite(losses_d.detach())
        finite &= torch.isfinite(torch.linalg.vector_norm(norms, dim=0))
        return losses_g.detach(), losses_d.detach(), finite

    # the loop

    def run(self, on_eval: BatchEvalCallback,
            on_step_end: Callable[[int], None] | None = None) -> list[TrialOutcome]:
        """Train every trial to ``steps``; return one outcome per trial, in batch order.

        ``on_step_end`` is called with the step number after that step's rows are reported.

        Rows match ``Trainer.run``'s, except that ``wall_time_s`` is the batch's elapsed time.
        A diverged trial reports its row at the step it diverged and then stops reporting. The
        batch keeps computing its slice, but no other trial reads it.
        """
        config = self.configs[0]
        outcomes: list[TrialOutcome | None] = [None] * len(self.configs)
        logger.info("batch of %d trials (%s): training %d steps on %s", len(self.configs),
                    ", ".join(f"{len(g.indices)} {g.method.name}" for g in self.groups), config.steps,
                    self.device)
        saved = RandomStream.capture(self.device)
        start = time.perf_counter()

        for step in range(1, config.steps + 1):
            for group in self.groups:
                losses_g, losses_d, finite = self.step_group(group)
                evaluate = step % config.eval_every == 0 or step == config.steps
                for slot, index in enumerate(group.indices):
                    if not group.alive[slot]:
                        continue
                    if not bool(finite[slot]):
                        group.alive[slot] = False
                        self._report_divergence(group, slot, step, start, on_eval)
                        outcomes[index] = TrialOutcome("diverged", step, {})
                    elif evaluate:
                        losses = float(losses_g[slot]), float(losses_d[slot])
                        metrics = self._evaluate(group, slot)
                        status = "finished" if step == config.steps else "running"
                        on_eval(index, self._row(step, start, losses, metrics, status))
                        if step == config.steps:
                            outcomes[index] = TrialOutcome("finished", step, metrics)
            if on_step_end is not None:
                on_step_end(step)

        saved.restore(self.device)
        return [outcome for outcome in outcomes if outcome is not None]

    def _evaluate(self, group: MethodGroup, slot: int) -> dict[str, float]:
        """Copy the trial's slice into its own game and evaluate it with the task's code."""
        game = group.games[slot]
        with torch.no_grad():
            for module, stacked in ((game.generator, group.params_g), (game.discriminator, group.params_d)):
                for name, param in module.named_parameters():
                    param.copy_(stacked[name][slot])
        return game.evaluate()

    def _report_divergence(self, group, slot, step, start, on_eval) -> None:
        config = self.configs[group.indices[slot]]
        logger.warning("trial %s: diverged at step %d (non-finite loss or parameter)", config.run_name, step)
        nan_metrics = {name: float("nan") for name in self.task.metric_names}
        on_eval(group.indices[slot], self._row(step, start, (float("nan"), float("nan")), nan_metrics, "diverged"))

    @staticmethod
    def _row(step, start, losses, metrics, status) -> dict[str, Any]:
        return {
            "step": step,
            "wall_time_s": time.perf_counter() - start,
            "loss_g": losses[0],
            "loss_d": losses[1],
            "status": status,
            **metrics,
        }


def train_batch(configs: Sequence[TrialConfig], on_eval: BatchEvalCallback) -> list[TrialOutcome]:
    return BatchedTrainer(configs).run(on_eval)


def run_batch_trial(configs: list[dict[str, Any]]) -> None:
    """Ray Tune's trainable for a batch: train it and report each step's rows in one result.

    A result contains ``members``, a mapping from the member's index (as a string) to its row
    without non-finite numbers, and the ``step``. A mapping, not a list, because Ray Tune's
    TensorBoard logger warns about lists.
    """
    import os

    from ray import tune

    from harness.sweep import tune_result
    from harness.tracking import device_label

    threads = int(os.environ.get("HARNESS_TRIAL_THREADS", "1"))
    torch.set_num_threads(max(1, threads))
    trainer = BatchedTrainer([TrialConfig.from_dict(values) for values in configs])
    device = device_label(trainer.device)
    pending: dict[str, dict[str, Any]] = {}

    def collect(index: int, row: dict[str, Any]) -> None:
        pending[str(index)] = tune_result(row)

    def report(step: int) -> None:
        if pending:
            tune.report({"step": step, "device": device, "members": dict(pending)})
            pending.clear()

    # NOTE: a batch saves no checkpoints, so a batch that Ray Tune restarts trains from step 0.
    trainer.run(collect, on_step_end=report)
