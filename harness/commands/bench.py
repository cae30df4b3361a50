"""``harness bench``: time each method's training step beside SimGD and a reference implementation."""

from __future__ import annotations

import argparse
import json
import logging

NAME = "bench"
HELP = "Time training steps of several methods side by side, with straightforward reference steps."

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Time Trainer.step of each method and a reference step (the same networks, batches and "
        "optimizer with a plain torch.autograd.grad(..., create_graph=True) version of the rule), "
        "interleaved in one process. Each column is the median over repeats of the time per step."
    )
    parser.add_argument("--task", required=True, help="Task by name, e.g. cifar10, mog, gaussian.")
    parser.add_argument("--setting", help="Setting of the task, e.g. A; default the task's default setting.")
    parser.add_argument(
        "--methods", default="simgd,conopt,gen_only,disc_only,jare",
        help="Comma-separated methods; must include simgd (default simgd,conopt,gen_only,disc_only,jare).",
    )
    parser.add_argument("--steps", type=int, default=20, help="Timed steps per repeat for each method (default 20).")
    parser.add_argument("--repeats", type=int, default=5, help="Repeats; each column is their median (default 5).")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed steps per method before timing (default 3).")
    parser.add_argument("--batch-size", type=int, help="Samples per batch; default the setting's batch size.")
    parser.add_argument("--gamma", type=float, default=10.0, help="γ of the regularized rules (default 10).")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="Device (default cpu).")
    parser.add_argument("--threads", type=int, help="Torch CPU threads; default torch's default.")
    parser.add_argument("--data-root", help="Image data for image tasks: a folder or .zip, as data.root of a spec.")
    parser.add_argument(
        "--task-option", action="append", default=[], metavar="KEY=VALUE",
        help="Override one option of the setting (value parsed as YAML), e.g. eval_reference_samples=2000; repeatable.",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the networks and batches (default 0).")
    parser.add_argument("--json", action="store_true", help="Print one JSON object instead of a table.")


def run(args: argparse.Namespace) -> int:
    import torch

    from harness.bench import BenchConfig, format_table, run_bench
    from harness.errors import HarnessInputError
    from harness.tasks import get_task

    task = get_task(args.task)
    if args.threads is not None:
        if args.threads < 1:
            raise HarnessInputError(f"--threads is {args.threads}; expected an integer >= 1")
        torch.set_num_threads(args.threads)
    config = BenchConfig(
        task=task.name,
        setting=args.setting or task.default_setting,
        methods=tuple(name.strip() for name in args.methods.split(",") if name.strip()),
        steps=args.steps,
        batch_size=args.batch_size,
        repeats=args.repeats,
        warmup=args.warmup,
        gamma=args.gamma,
        device=args.device,
        data_root=args.data_root,
        seed=args.seed,
        task_options=parse_task_options(args.task_option),
    )
    logger.info("timing %s on %s/%s: %d repeats of %d steps", ", ".join(config.methods), config.task,
                config.setting, config.repeats, config.steps)

    result = run_bench(config, progress=logger.info)

    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def parse_task_options(items: list[str]) -> dict:
    """Parse ``KEY=VALUE`` items into a mapping, each value read as YAML."""
    import yaml

    from harness.errors import HarnessInputError

    options = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise HarnessInputError(f"invalid --task-option {item!r}: expected KEY=VALUE, e.g. eval_samples=500")
        try:
            options[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise HarnessInputError(f"invalid --task-option {item!r}: the value is not valid YAML ({error})") from None
    return options
