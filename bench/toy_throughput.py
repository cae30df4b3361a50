"""Trials per second on a toy setting: one process per trial versus one vectorized batch.

Samples the quick-start search space (γ and lr log-uniform, two seeds) for every batchable rule,
then trains the same trial configurations twice in this process: one after another with
``harness.trainer.train``, and all at once with ``harness.batched.BatchedTrainer``. It prints
one JSON object with both wall times, trials per second and the largest difference of the final
objective between the two runs.

    python bench/toy_throughput.py --setting gaussian/default --configs 3 --steps 800
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch

from harness.batched import BatchedTrainer
from harness.tasks import resolve_setting
from harness.trainer import train
from harness.trial import TrialConfig

METHODS = ("simgd", "conopt", "gen_only", "disc_only", "jare")


def sampled_configs(setting_key: str, configs: int, seeds: list[int], steps: int, batch_size: int,
                    eval_every: int) -> list[TrialConfig]:
    task, setting = resolve_setting(setting_key)
    rng = np.random.default_rng(0)
    trials = []
    for method in METHODS:
        for _ in range(configs):
            gamma = float(math.exp(rng.uniform(math.log(0.1), math.log(10.0))))
            lr = float(math.exp(rng.uniform(math.log(1e-4), math.log(1e-2))))
            for seed in seeds:
                trials.append(TrialConfig(
                    method=method, task=task.name, setting=setting.name, seed=seed, gamma=gamma, lr_g=lr,
                    lr_d=lr, steps=steps, batch_size=batch_size, eval_every=eval_every, loss=setting.loss,
                    optimizer=setting.optimizer, betas=setting.betas, device="cpu",
                ))
    return trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", default="gaussian/default")
    parser.add_argument("--configs", type=int, default=3, help="Sampled configurations per rule.")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--unbatched-limit", type=int,
                        help="Time only this many trials one by one and scale to all; default all.")
    args = parser.parse_args()
    torch.set_num_threads(1)

    trials = sampled_configs(args.setting, args.configs, [0, 1], args.steps, args.batch_size, args.eval_every)
    task, _ = resolve_setting(args.setting)

    batched_finals: dict[int, float] = {}
    start = time.perf_counter()
    BatchedTrainer(trials).run(lambda index, row: batched_finals.__setitem__(index, row.get(task.objective)))
    batched_s = time.perf_counter() - start

    # Every k-th trial, so that each rule is in the timed subset.
    timed = list(range(len(trials)))
    if args.unbatched_limit:
        timed = timed[:: max(1, len(trials) // args.unbatched_limit)][: args.unbatched_limit]
    differences = []
    start = time.perf_counter()
    for index in timed:
        rows: list[dict] = []
        train(trials[index], rows.append)
        differences.append(abs(rows[-1].get(task.objective) - batched_finals[index]))
    unbatched_s = (time.perf_counter() - start) * len(trials) / len(timed)

    print(json.dumps({
        "setting": args.setting,
        "trials": len(trials),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "unbatched_trials_timed": len(timed),
        "unbatched_s": unbatched_s,
        "batched_s": batched_s,
        "unbatched_trials_per_s": len(trials) / unbatched_s,
        "batched_trials_per_s": len(trials) / batched_s,
        "speedup": unbatched_s / batched_s,
        "max_objective_difference": max(differences),
        "load_average_1m": os.getloadavg()[0],
        "torch": torch.__version__,
    }, indent=2))


if __name__ == "__main__":
    main()
