"""``harness describe``: list settings with their defaults and parameter counts, or a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "describe"
HELP = "List task settings with optimizer, defaults and network parameter counts, or describe a checkpoint."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print one Markdown table row per setting: optimizer, learning rate, batch size, steps and the "
        "trainable parameters of G and D, built on the CPU without data. SN-GAN trains the same D "
        "with spectral normalization, which adds no trainable parameters, only the power-iteration "
        "vectors counted in the last column."
    )
    parser.add_argument(
        "settings", nargs="*", metavar="TASK/SETTING",
        help="Settings to list, e.g. cifar10/E, or a bare task name for all its settings (default: every setting).",
    )
    parser.add_argument("--checkpoint", type=Path, help="Describe this trainer checkpoint instead.")


def run(args: argparse.Namespace) -> int:
    if args.checkpoint is not None:
        print(describe_checkpoint(args.checkpoint))
        return 0
    print(describe_settings(args.settings))
    return 0


def describe_settings(keys: list[str]) -> str:
    """Return the Markdown table of the settings named by ``keys`` (every setting when empty)."""
    from harness.tasks import all_setting_keys, get_task, resolve_setting
    from harness.tasks.networks import parameter_count
    from methods import get_method

    selected = []
    for key in keys or all_setting_keys():
        if "/" in key:
            selected.append(resolve_setting(key))
        else:
            task = get_task(key)
            selected.extend((task, task.setting(name)) for name in task.settings)

    lines = [
        "| setting | description | optimizer | lr | batch | steps | G params | D params | SN vectors in D |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    sngan = get_method("sngan")
    for task, setting in selected:
        generator, discriminator = task.build_networks(setting, {})
        normalized = sngan.prepare_discriminator(discriminator)
        vectors = sum(b.numel() for name, b in normalized.named_buffers() if name.endswith(("_u", "_v")))
        lines.append(
            f"| {task.name}/{setting.name} | {setting.description} | {setting.optimizer} | {setting.lr:g} "
            f"| {setting.batch_size} | {setting.steps:,} | {parameter_count(generator):,} "
            f"| {parameter_count(discriminator):,} | {vectors:,} |"
        )
    return "\n".join(lines)


def describe_checkpoint(path: Path) -> str:
    """Return what a trainer checkpoint contains; raise ``CheckpointError`` when it is unreadable."""
    from harness.checkpoint import read_checkpoint

    state = read_checkpoint(path)
    identity = state["identity"]
    generator = sum(_numel(shape) for shape in identity["generator"].values())
    discriminator = sum(_numel(shape) for shape in identity["discriminator"].values())
    return "\n".join([
        f"checkpoint {path}",
        f"  trial: {identity['task']}/{identity['setting']} with {identity['method']}",
        f"  steps done: {state['steps_done']}",
        f"  training seconds: {state['elapsed_s']:.1f}",
        f"  generator state: {len(identity['generator'])} tensors, {generator:,} values",
        f"  discriminator state: {len(identity['discriminator'])} tensors, {discriminator:,} values",
    ])


def _numel(shape: list[int]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count
