"""Harness overhead on one trial: the share of wall time outside the training steps.

Trains one trial with ``Trainer.run`` and, at each evaluation, does with the row what a sweep's
trial and driver do. It saves a trainer checkpoint, as ``run_trial`` does for every row but the
last, and hands the row to a real ``SweepTracker``, which appends it to Parquet and logs it to
a SQLite MLflow store. Prints one JSON object with the seconds spent in training steps, in the
task's evaluation, in checkpoints and in tracking, and each one's share of the wall time.
Ray Tune's own reporting is not included.

    python bench/overhead.py --setting mog/r2 --method jare --steps 1000 --eval-every 500
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

from harness.sweep import CHECKPOINT_FILE, tune_result
from harness.tasks import resolve_setting
from harness.tracking import SweepTracker, default_tracking_uri
from harness.trainer import Trainer
from harness.trial import TrialConfig


class Stopwatch:
    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1
        return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", default="mog/r2")
    parser.add_argument("--method", default="jare")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--batch-size", type=int, help="Default the setting's batch size.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)

    task, setting = resolve_setting(args.setting)
    config = TrialConfig(
        method=args.method, task=task.name, setting=setting.name, seed=0, gamma=1.0, lr_g=setting.lr,
        lr_d=setting.lr, steps=args.steps, batch_size=args.batch_size or setting.batch_size,
        eval_every=args.eval_every, loss=setting.loss, optimizer=setting.optimizer, betas=setting.betas,
        device="cpu", sweep_id="overhead", config_id="p0c0",
    )

    with tempfile.TemporaryDirectory(prefix="harness-overhead-") as folder:
        output = Path(folder)
        spec_file = output / "spec.yaml"
        spec_file.write_text("name: overhead\n")
        tracker = SweepTracker(default_tracking_uri(output), "overhead", output / "results", "overhead",
                               spec_file, artifact_root=output / "mlflow-artifacts")
        trainer = Trainer(config)
        evaluation, checkpoints, tracking = Stopwatch(), Stopwatch(), Stopwatch()
        trainer.game.evaluate = evaluation.wrap(trainer.game.evaluate)
        save = checkpoints.wrap(trainer.save_checkpoint)
        record = tracking.wrap(tracker.record_result)

        def on_eval(row: dict) -> None:
            if row["status"] == "running":
                with tempfile.TemporaryDirectory(dir=folder) as checkpoint_folder:
                    save(Path(checkpoint_folder) / CHECKPOINT_FILE)
            record("trial0", config, tune_result(row))

        start = time.perf_counter()
        tracking.wrap(tracker.open_trial)("trial0", config)
        trainer.run(on_eval)
        tracking.wrap(tracker.complete_trial)("trial0", config)
        wall = time.perf_counter() - start
        tracker.finish()

    steps_s = wall - evaluation.seconds - checkpoints.seconds - tracking.seconds
    parts = {"training_steps": steps_s, "evaluation": evaluation.seconds, "checkpoints": checkpoints.seconds,
             "tracking_mlflow_parquet": tracking.seconds}
    print(json.dumps({
        "trial": config.run_name,
        "steps": args.steps,
        "eval_every": args.eval_every,
        "batch_size": config.batch_size,
        "evaluations": evaluation.calls,
        "wall_s": wall,
        "seconds": parts,
        "share_of_wall": {name: seconds / wall for name, seconds in parts.items()},
        "harness_overhead_share": (checkpoints.seconds + tracking.seconds) / wall,
        "load_average_1m": os.getloadavg()[0],
        "torch": torch.__version__,
    }, indent=2))


if __name__ == "__main__":
    main()
