"""The sweep's search algorithm: the grid crossed with one Optuna search per grid point.

A grid point is a (method, setting) pair. For each, a Ray Tune ``OptunaSearch`` samples
``sweep.num_samples`` configurations of the search space (γ only for rules that use it). Each
sampled configuration runs once per seed as separate Ray trials, and Optuna is told the mean of
the objective over those seeds. A configuration in which any seed diverged or failed is told to
Optuna as a failed trial, so the search never receives a NaN.
"""

from __future__ import annotations

import logging
import math
import pickle
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import optuna
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from harness.batched import BATCH_KEY, can_share_batch, supports_batching
from harness.config import Choice, LogUniform, SweepSpec, Uniform
from harness.tasks import resolve_setting
from harness.trial import TrialConfig
from methods import get_method

logger = logging.getLogger(__name__)


def optuna_distribution(spec) -> optuna.distributions.BaseDistribution:
    if isinstance(spec, LogUniform):
        return optuna.distributions.FloatDistribution(spec.low, spec.high, log=True)
    if isinstance(spec, Uniform):
        return optuna.distributions.FloatDistribution(spec.low, spec.high)
    if isinstance(spec, Choice):
        return optuna.distributions.CategoricalDistribution(spec.values)
    raise TypeError(f"unsupported distribution {spec!r}")


@dataclass
class GridPoint:
    """One (method, setting) pair with its search space and objective."""

    index: int
    method: str
    setting_key: str
    objective: str
    mode: str
    space: dict[str, optuna.distributions.BaseDistribution]
    num_configs: int
    searcher: OptunaSearch | None = None
    sampled: int = 0

    @property
    def exhausted(self) -> bool:
        return self.sampled >= self.num_configs


@dataclass
class PendingConfig:
    point: GridPoint
    seeds_left: int
    objectives: list[float] = field(default_factory=list)
    failed: bool = False


def grid_points(spec: SweepSpec) -> list[GridPoint]:
    points = []
    for method_name in spec.grid.methods:
        method = get_method(method_name)
        for setting_key in spec.grid.settings:
            task, _ = resolve_setting(setting_key)
            space = {
                name: optuna_distribution(dist)
                for name, dist in spec.search.items()
                if name != "gamma" or method.uses_gamma
            }
            # Identical configurations would only repeat work: an empty space runs once.
            num_configs = spec.sweep.num_samples if space else 1
            points.append(
                GridPoint(len(points), method_name, setting_key, task.objective, task.mode, space, num_configs)
            )
    return points


def trial_config(spec: SweepSpec, point: GridPoint, sampled: dict[str, Any], seed: int,
                 sweep_id: str, config_id: str) -> TrialConfig:
    """Combine the spec's training section, the setting's defaults and the sampled values."""
    task, setting = resolve_setting(point.setting_key)
    train = spec.train
    lr_default = sampled.get("lr", train.lr if train.lr is not None else setting.lr)
    default_gamma = train.gamma if train.gamma is not None else get_method(point.method).default_gamma
    return TrialConfig(
        method=point.method,
        task=task.name,
        setting=setting.name,
        seed=seed,
        gamma=float(sampled.get("gamma", default_gamma)),
        lr_g=float(sampled.get("lr_g", train.lr_g if train.lr_g is not None else lr_default)),
        lr_d=float(sampled.get("lr_d", train.lr_d if train.lr_d is not None else lr_default)),
        steps=train.steps or setting.steps,
        batch_size=train.batch_size or setting.batch_size,
        eval_every=min(train.eval_every, train.steps or setting.steps),
        loss=train.loss or setting.loss,
        optimizer=setting.optimizer,
        betas=setting.betas,
        task_options=dict(train.task_options.get(task.name, {})),
        data_root=str(spec.data.root.resolve()) if spec.data.root else None,
        download=spec.data.download,
        device=train.device,
        sweep_id=sweep_id,
        config_id=config_id,
        spectrum_every=train.spectrum_every,
        spectrum_eigenvalues=train.spectrum_eigenvalues,
    )


def total_trials(points: list[GridPoint], seeds: list[int]) -> int:
    return sum(point.num_configs for point in points) * len(seeds)


class GridOptunaSearch(Searcher):
    """Hands Ray Tune the grid's trials, sampling each grid point's configurations with Optuna."""

    def __init__(self, spec: SweepSpec, sweep_id: str) -> None:
        super().__init__()
        self.spec = spec
        self.sweep_id = sweep_id
        self.points = grid_points(spec)
        for point in self.points:
            if point.space:
                point.searcher = OptunaSearch(
                    space=point.space,
                    metric=point.objective,
                    mode=point.mode,
                    sampler=optuna.samplers.TPESampler(seed=spec.sweep.seed + point.index),
                )
        self._queue: deque[TrialConfig] = deque()
        self._pending: dict[str, PendingConfig] = {}
        self._trial_configs: dict[str, list[str]] = {}
        """The configuration ids each Ray trial trains: one, or one per member of a batch."""
        self._next_point = 0

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def save(self, checkpoint_path: str) -> None:
        """Pickle the whole search state: every grid point's Optuna study and the queued seeds.

        Ray Tune calls this with each experiment checkpoint, and ``Tuner.restore`` calls
        ``restore``, so a restored sweep continues the same Optuna studies instead of sampling anew.
        """
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.__dict__, handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            self.__dict__.update(pickle.load(handle))
        logger.info("search restored: %d of %d configurations sampled, %d waiting for seeds",
                    sum(p.sampled for p in self.points), sum(p.num_configs for p in self.points),
                    len(self._pending))

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if not self._queue and not self._sample_next():
            return Searcher.FINISHED
        config = self._queue.popleft()
        batch = [config, *self._batch_partners(config)]
        self._trial_configs[trial_id] = [member.config_id for member in batch]
        if len(batch) == 1:
            return config.to_dict()
        return {BATCH_KEY: [member.to_dict() for member in batch]}

    def _batch_partners(self, first: TrialConfig) -> list[TrialConfig]:
        """Take up to ``sweep.batch_trials − 1`` more trials that can train in one batch with ``first``.

        Queued trials come first. Then Optuna samples further configurations of the grid points
        on the same setting, several before any of them has a result, so a larger batch leaves
        fewer configurations that TPE chooses from earlier results.
        """
        partners: list[TrialConfig] = []
        if self.spec.sweep.batch_trials == 1 or not can_share_batch(first, first):
            return partners
        setting_key = f"{first.task}/{first.setting}"
        while len(partners) < self.spec.sweep.batch_trials - 1:
            if not self._queue and not self._sample_next(batch_setting=setting_key):
                break
            if not can_share_batch(self._queue[0], first):
                break
            partners.append(self._queue.popleft())
        return partners

    def _sample_next(self, batch_setting: str | None = None) -> bool:
        """Queue the per-seed trials of the next configuration, round-robin over grid points.

        With ``batch_setting`` only grid points on that setting whose rule trains in batches count.
        """
        for offset in range(len(self.points)):
            point = self.points[(self._next_point + offset) % len(self.points)]
            if point.exhausted:
                continue
            if batch_setting is not None and (
                point.setting_key != batch_setting or not supports_batching(get_method(point.method))
            ):
                continue
            self._next_point = (point.index + 1) % len(self.points)

            config_id = f"p{point.index}c{point.sampled}"
            point.sampled += 1
            sampled = point.searcher.suggest(config_id) if point.searcher else {}
            self._pending[config_id] = PendingConfig(point, seeds_left=len(self.spec.grid.seeds))
            for seed in self.spec.grid.seeds:
                self._queue.append(trial_config(self.spec, point, sampled, seed, self.sweep_id, config_id))
            return True
        return False

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        config_ids = self._trial_configs.pop(trial_id, None)
        if config_ids is None:
            return
        if isinstance(config_ids, str):
            # A search state saved before batched trials existed stores one id per trial.
            config_ids = [config_ids]
        if result is None or "members" not in result:
            for config_id in config_ids:
                self._complete_member(config_id, result, error)
            return
        # A batch's last result contains the rows of the members that reached the last step. A
        # member missing there diverged earlier and counts as failed.
        for index, config_id in enumerate(config_ids):
            self._complete_member(config_id, result["members"].get(str(index)), error)

    def _complete_member(self, config_id: str, result: dict | None, error: bool) -> None:
        """Count one seed's trial of configuration ``config_id``; tell Optuna after its last seed."""
        pending = self._pending.get(config_id)
        if pending is None:
            return

        value = None if (error or result is None) else result.get(pending.point.objective)
        finished = result is not None and result.get("status") == "finished"
        if error or not finished or not _is_finite_number(value):
            pending.failed = True
        else:
            pending.objectives.append(float(value))

        pending.seeds_left -= 1
        if pending.seeds_left > 0:
            return
        del self._pending[config_id]
        searcher = pending.point.searcher
        if searcher is None:
            return
        if pending.failed:
            searcher.on_trial_complete(config_id, None, error=True)
        else:
            mean = sum(pending.objectives) / len(pending.objectives)
            searcher.on_trial_complete(config_id, {pending.point.objective: mean})


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
