"""Reading, writing and checking trainer checkpoints.

A checkpoint is one ``torch.save`` file with both networks, both optimizer states, every RNG
state, the step count and an identity: the task, setting and method it was written by and the
shape of every network tensor. It holds only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``. Loading checks the identity against the trial that resumes,
so a checkpoint of another setting fails with a message instead of a shape error deep in torch.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.errors import HarnessInputError

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "identity", "steps_done", "elapsed_s", "generator", "discriminator",
                 "opt_g", "opt_d", "rng_torch", "rng_cuda", "rng_numpy", "rng_python")


class CheckpointError(HarnessInputError):
    """A checkpoint that cannot be read, or that belongs to another trial setup."""


def network_identity(task: str, setting: str, method: str, generator: nn.Module,
                     discriminator: nn.Module) -> dict[str, Any]:
    """Return what a checkpoint must match to resume a trial: names and every tensor's shape."""
    return {
        "task": task,
        "setting": setting,
        "method": method,
        "generator": {name: list(value.shape) for name, value in generator.state_dict().items()},
        "discriminator": {name: list(value.shape) for name, value in discriminator.state_dict().items()},
    }


def write_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` through a temporary file and a rename, so a crash leaves the old file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save({"format_version": FORMAT_VERSION, **state}, file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check that it has every part.

    Raises:
        CheckpointError: the file is missing, unreadable, truncated or not a harness checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path} does not exist or is not a file.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"Failed to read checkpoint {path}: {first_line}. Expected a file written by the "
            f"harness trainer; the file is corrupt, truncated or of another kind."
        ) from None

    if not isinstance(state, dict):
        raise CheckpointError(
            f"Invalid checkpoint {path}: contains a {type(state).__name__}, expected the harness "
            f"trainer's dict."
        )
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(
            f"Invalid checkpoint {path}: missing {', '.join(missing)}. Expected a file written by "
            f"the harness trainer (format version {FORMAT_VERSION})."
        )
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"Unsupported checkpoint {path}: format version {state['format_version']}, expected "
            f"{FORMAT_VERSION}."
        )
    return state


def check_identity(path: Path, found: dict[str, Any], expected: dict[str, Any]) -> None:
    """Raise ``CheckpointError`` when a checkpoint belongs to another task, setting, rule or network."""
    for key in ("task", "setting", "method"):
        if found.get(key) != expected[key]:
            raise CheckpointError(
                f"Checkpoint {path} was written by {_describe(found)}, expected "
                f"{_describe(expected)}; resume each trial from its own checkpoint."
            )
    for network in ("generator", "discriminator"):
        if found.get(network) != expected[network]:
            difference = _first_difference(found.get(network) or {}, expected[network])
            raise CheckpointError(
                f"Checkpoint {path} has another {network} than {_describe(expected)} builds "
                f"({difference}); the task options that shape the networks differ."
            )


def _describe(identity: dict[str, Any]) -> str:
    return f"{identity.get('task')}/{identity.get('setting')} with {identity.get('method')}"


def _first_difference(found: dict[str, list[int]], expected: dict[str, list[int]]) -> str:
    for name, shape in expected.items():
        if name not in found:
            return f"{name} is missing"
        if found[name] != shape:
            return f"{name} has shape {tuple(found[name])}, expected {tuple(shape)}"
    extra = sorted(set(found) - set(expected))
    return f"unexpected {extra[0]}" if extra else "the tensors differ"
