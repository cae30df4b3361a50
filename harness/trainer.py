"""The generic training loop: one loop for every task and every update rule.

Each step draws a real batch and a latent batch, computes both players' losses from one
discriminator pass, asks the method for update directions and applies one optimizer step to
each player, simultaneously. The loop never looks at which method or task it runs.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from harness.checkpoint import check_identity, network_identity, read_checkpoint, write_checkpoint
from harness.tasks import Game, get_task
from harness.trial import TrialConfig
from methods import get_method

logger = logging.getLogger(__name__)

EvalCallback = Callable[[dict[str, Any]], None]
StepCallback = Callable[[int, float, float], None]
"""Called after each successful step with the step number, ``L_G`` and ``L_D``."""


@dataclass
class TrialOutcome:
    status: str
    """finished or diverged."""
    step: int
    metrics: dict[str, float]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is cuda but no CUDA device is available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(name: str, params: list[nn.Parameter], lr: float, betas: tuple[float, float]):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas)
    if name == "rmsprop":
        # alpha 0.9 is TensorFlow's RMSProp decay, which the reference implementations used.
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9)
    raise ValueError(f"unknown optimizer {name!r}; known optimizers: sgd, adam, rmsprop")


def game_losses(game: Game, batch_size: int, loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(L_G, L_D)`` of the vanilla GAN objective on fresh batches.

    ``L_D = E softplus(−D(x)) + E softplus(D(G(z)))`` is the discriminator's cross-entropy.
    ``saturating`` gives the zero-sum ``L_G = −L_D``; ``nonsaturating`` gives
    ``L_G = E softplus(−D(G(z)))``. Real and generated samples share one discriminator pass.
    """
    real = game.sample_real(batch_size)
    fake = game.generator(game.sample_latent(batch_size))

    logits = game.discriminator(torch.cat([real, fake]))
    return vanilla_losses(logits, batch_size, loss)


def vanilla_losses(logits: torch.Tensor, batch_size: int, loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(L_G, L_D)`` from the logits of ``batch_size`` real samples followed by as many fakes."""
    logits_real, logits_fake = logits[:batch_size], logits[batch_size:]

    loss_d = F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean()
    if loss == "saturating":
        loss_g = -loss_d
    else:
        loss_g = F.softplus(-logits_fake).mean()
    return loss_g, loss_d


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def _all_finite(tensors: list[torch.Tensor]) -> bool:
    return bool(torch.isfinite(torch.nn.utils.get_total_norm(tensors)))


class Trainer:
    """Trains one trial; ``run`` calls ``on_eval`` with a result row at each evaluation."""

    def __init__(self, config: TrialConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.task = get_task(config.task)
        self.setting = self.task.setting(config.setting)
        self.method = get_method(config.method)

        seed_everything(config.seed)
        data_root = Path(config.data_root) if config.data_root else None
        self.game = self.task.build(
            self.setting, config.task_options, data_root, config.download, self.device
        )
        self.game.discriminator = self.method.prepare_discriminator(self.game.discriminator)

        self.params_g = trainable_parameters(self.game.generator)
        self.params_d = trainable_parameters(self.game.discriminator)
        self.opt_g = make_optimizer(config.optimizer, self.params_g, config.lr_g, config.betas)
        self.opt_d = make_optimizer(config.optimizer, self.params_d, config.lr_d, config.betas)
        self.steps_done = 0
        """Steps already taken; ``run`` continues after them, so a loaded checkpoint resumes there."""
        self.elapsed_s = 0.0
        """Training seconds before the current ``run``, carried over by checkpoints."""
        self.samples_dir: Path | None = None
        """Folder for a PNG grid of generated images at each evaluation and for the game's
        end-of-trial files (``Game.write_artifacts``); None writes none."""

    def save_checkpoint(self, path: Path) -> None:
        """Write both networks, both optimizers, every RNG state and the step count to ``path``."""
        numpy_state = np.random.get_state()
        state = {
            "steps_done": self.steps_done,
            "elapsed_s": self.elapsed_s,
            "generator": self.game.generator.state_dict(),
            "discriminator": self.game.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng_torch": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            # Stored as plain values and tensors so the file loads with weights_only=True.
            "rng_numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].copy()), *numpy_state[2:]],
            "rng_python": random.getstate(),
            "identity": self.identity(),
        }
        write_checkpoint(state, path)

    def write_sample_grid(self, step: int) -> Path | None:
        """Write the game's sample grid to ``samples_dir/step-NNNNNNN.png`` and return the path.

        Returns None without ``samples_dir`` or for a game without images. The grid comes from
        the evaluation noise, so training RNG is untouched.
        """
        if self.samples_dir is None:
            return None
        grid = self.game.sample_grid()
        if grid is None:
            return None
        path = self.samples_dir / f"step-{step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid.permute(1, 2, 0).cpu().numpy()).save(path)
        return path

    def write_artifacts(self) -> dict[str, str]:
        """Write the game's end-of-trial files into ``samples_dir``; return their paths by file name."""
        if self.samples_dir is None:
            return {}
        title = f"{self.config.run_name}, step {self.steps_done}"
        return {path.name: str(path) for path in self.game.write_artifacts(self.samples_dir, title)}

    def identity(self) -> dict[str, Any]:
        """Return what a checkpoint of this trial must match: task, setting, rule, tensor shapes."""
        return network_identity(self.config.task, self.config.setting, self.config.method,
                                self.game.generator, self.game.discriminator)

    def load_checkpoint(self, path: Path) -> None:
        """Restore what ``save_checkpoint`` wrote; ``run`` then continues after its step.

        Raises:
            CheckpointError: the file is unreadable or belongs to another task, setting, rule or
                network shape. Nothing of the trainer changes then.
        """
        state = read_checkpoint(path, map_location=self.device)
        check_identity(path, state["identity"], self.identity())
        self.game.generator.load_state_dict(state["generator"])
        self.game.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        torch.set_rng_state(state["rng_torch"].cpu())
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
        name, keys, *rest = state["rng_numpy"]
        np.random.set_state((name, keys.numpy(), *rest))
        random.setstate(state["rng_python"])
        self.steps_done = int(state["steps_done"])
        self.elapsed_s = float(state["elapsed_s"])

    def step(self) -> tuple[float, float] | None:
        """Run one simultaneous update; return the losses, or None when anything diverged."""
        config = self.config
        loss_g, loss_d = game_losses(self.game, config.batch_size, config.loss)
        if not bool(torch.isfinite(loss_g) & torch.isfinite(loss_d)):
            return None

        dirs_g, dirs_d = self.method.directions(
            loss_g, loss_d, self.params_g, self.params_d, config.gamma
        )

        for param, direction in zip([*self.params_g, *self.params_d], [*dirs_g, *dirs_d]):
            param.grad = direction
        self.opt_g.step()
        self.opt_d.step()

        if not _all_finite([*self.params_g, *self.params_d]):
            return None
        return float(loss_g.detach()), float(loss_d.detach())

    def run(self, on_eval: EvalCallback, on_step: StepCallback | None = None) -> TrialOutcome:
        config = self.config
        logger.info("trial %s: training steps %d to %d on %s", config.run_name, self.steps_done + 1,
                    config.steps, self.device)
        start = time.perf_counter() - self.elapsed_s
        metrics: dict[str, float] = {}

        for step in range(self.steps_done + 1, config.steps + 1):
            losses = self.step()
            self.steps_done = step
            self.elapsed_s = time.perf_counter() - start

            if losses is None:
                logger.warning("trial %s: diverged at step %d (non-finite loss or parameter)", config.run_name, step)
                on_eval(self._row(step, start, (float("nan"), float("nan")), self._nan_metrics(), "diverged"))
                return TrialOutcome("diverged", step, {})

            if step % config.eval_every == 0 or step == config.steps:
                metrics = self.game.evaluate()
                if config.spectrum_every and (step % config.spectrum_every == 0 or step == config.steps):
                    analysis_start = time.perf_counter()
                    metrics = {**metrics, **self.spectrum_metrics()}
                    # The spectrum is analysis, not training: its seconds stay out of wall_time_s.
                    start += time.perf_counter() - analysis_start
                status = "finished" if step == config.steps else "running"
                row = self._row(step, start, losses, metrics, status)
                grid = self.write_sample_grid(step)
                if grid is not None:
                    row["sample_grid"] = str(grid)
                if status == "finished":
                    row["artifacts"] = self.write_artifacts()
                on_eval(row)

            if on_step is not None:
                on_step(step, *losses)

        return TrialOutcome("finished", config.steps, metrics)

    def spectrum_metrics(self) -> dict[str, float]:
        """Return ζ, τ, max |λ| and min |λ| of the update-field Jacobian at the current parameters.

        The field is the one this trial trains with: its rule, γ, loss and batch size. Training
        state is left as it was; a Jacobian that is not finite gives NaN values and a warning.
        """
        from harness.jacobian import SPECTRUM_COLUMNS, JacobianError, training_spectrum

        config = self.config
        try:
            spectrum = training_spectrum(self.method, self.game, config.gamma, config.batch_size, config.loss,
                                         config.spectrum_eigenvalues, seed=config.seed)
        except JacobianError as error:
            logger.warning("trial %s: no Jacobian spectrum at step %d: %s", config.run_name, self.steps_done, error)
            return dict.fromkeys(SPECTRUM_COLUMNS, float("nan"))
        return spectrum.metrics()

    def _nan_metrics(self) -> dict[str, float]:
        return {name: float("nan") for name in self.task.metric_names}

    def _row(self, step, start, losses, metrics, status) -> dict[str, Any]:
        return {
            "step": step,
            "wall_time_s": time.perf_counter() - start,
            "loss_g": losses[0],
            "loss_d": losses[1],
            "status": status,
            **metrics,
        }


def train(config: TrialConfig, on_eval: EvalCallback) -> TrialOutcome:
    return Trainer(config).run(on_eval)
