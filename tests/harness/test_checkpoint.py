"""Trainer checkpoints: exact resume on the CPU, and rejection of unreadable or foreign files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from harness.checkpoint import CheckpointError
from harness.cli import main
from harness.tasks.cifar10 import SETTINGS
from harness.trainer import Trainer
from harness.trial import TrialConfig
from tests.tasks.test_cifar10 import write_fake_batches

STEPS = 6
INTERRUPT_AFTER = 3


class Interrupted(Exception):
    """Stands for the process dying between two training steps."""


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_fake_batches(root / "cifar-10-batches-py", per_batch=16)
    return root


def cifar_config(root, setting="A", method="jare", steps=STEPS, weights=None, **options) -> TrialConfig:
    spec = SETTINGS[setting]
    task_options = {"eval_samples": 10, "eval_reference_samples": 10, "eval_batch_size": 10,
                    "sample_grid_size": 4, **options}
    if weights is not None:
        task_options["inception_weights"] = str(weights)
    return TrialConfig(
        method=method, task="cifar10", setting=setting, seed=1, gamma=10.0, lr_g=1e-3, lr_d=1e-3,
        steps=steps, batch_size=4, eval_every=steps, loss=spec.loss, optimizer=spec.optimizer,
        betas=spec.betas, task_options=task_options, data_root=str(root), device="cpu",
    )


def record_losses(trainer: Trainer, losses: list, interrupt_at: int | None = None, checkpoint=None) -> None:
    """Record every step's losses; with ``interrupt_at``, checkpoint and stop once that many steps ran."""
    original = trainer.step

    def step():
        if interrupt_at is not None and trainer.steps_done == interrupt_at:
            trainer.save_checkpoint(checkpoint)
            raise Interrupted
        result = original()
        losses.append(result)
        return result

    trainer.step = step


def scramble_global_rngs() -> None:
    torch.manual_seed(987)
    np.random.seed(987)
    random.seed(987)


@pytest.mark.slow
@pytest.mark.parametrize(("setting", "method"), [("A", "jare"), ("D", "sngan")])
def test_resume_matches_uninterrupted_run(setting, method, fake_root, inception_weights, tmp_path):
    config = cifar_config(fake_root, setting, method, weights=inception_weights)
    checkpoint = tmp_path / "trainer.pt"

    uninterrupted = Trainer(config)
    losses_whole: list = []
    rows_whole: list = []
    record_losses(uninterrupted, losses_whole)
    uninterrupted.run(rows_whole.append)

    first = Trainer(config)
    losses_resumed: list = []
    record_losses(first, losses_resumed, interrupt_at=INTERRUPT_AFTER, checkpoint=checkpoint)
    with pytest.raises(Interrupted):
        first.run(lambda row: None)

    resumed = Trainer(config)
    scramble_global_rngs()
    resumed.load_checkpoint(checkpoint)
    rows_resumed: list = []
    record_losses(resumed, losses_resumed)
    resumed.run(rows_resumed.append)

    assert len(losses_whole) == STEPS
    assert losses_resumed == losses_whole
    for name in ("generator", "discriminator"):
        whole_state = getattr(uninterrupted.game, name).state_dict()
        resumed_state = getattr(resumed.game, name).state_dict()
        assert whole_state.keys() == resumed_state.keys()
        for key in whole_state:
            assert torch.equal(whole_state[key], resumed_state[key]), f"{name} {key} differs"
    metrics = ("loss_g", "loss_d", "inception_score", "fid", "kid", "status", "step")
    assert [{k: r[k] for k in metrics} for r in rows_resumed] == [{k: r[k] for k in metrics} for r in rows_whole]


def test_checkpoint_loads_with_weights_only(fake_root, tmp_path):
    trainer = Trainer(cifar_config(fake_root))
    trainer.save_checkpoint(tmp_path / "trainer.pt")

    state = torch.load(tmp_path / "trainer.pt", weights_only=True)

    assert state["identity"]["task"] == "cifar10"
    assert state["identity"]["setting"] == "A"
    assert state["identity"]["method"] == "jare"
    assert state["steps_done"] == 0
    assert {"generator", "discriminator", "opt_g", "opt_d", "rng_torch", "rng_numpy", "rng_python"} <= set(state)


@pytest.mark.parametrize(
    ("writer", "reader", "message"),
    [
        ({"setting": "A"}, {"setting": "B"}, "was written by cifar10/A with jare, expected cifar10/B with jare"),
        ({"method": "jare"}, {"method": "sngan"}, "was written by cifar10/A with jare, expected cifar10/A with sngan"),
        ({"setting": "E", "filters": 8}, {"setting": "E", "filters": 16}, "has shape"),
    ],
)
def test_foreign_checkpoint_rejected(writer, reader, message, fake_root, tmp_path):
    path = tmp_path / "trainer.pt"
    Trainer(cifar_config(fake_root, **writer)).save_checkpoint(path)
    target = Trainer(cifar_config(fake_root, **reader))
    before = [p.detach().clone() for p in target.params_g]

    with pytest.raises(CheckpointError, match=message) as raised:
        target.load_checkpoint(path)

    assert str(path) in str(raised.value)
    assert target.steps_done == 0
    assert all(torch.equal(b, p) for b, p in zip(before, target.params_g))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a checkpoint at all", "Failed to read checkpoint"),
        (None, "Failed to read checkpoint"),  # the first half of a real checkpoint
    ],
)
def test_unreadable_checkpoint_named(content, message, fake_root, tmp_path):
    trainer = Trainer(cifar_config(fake_root))
    path = tmp_path / "trainer.pt"
    trainer.save_checkpoint(path)
    data = path.read_bytes()
    path.write_bytes(content if content is not None else data[: len(data) // 2])

    with pytest.raises(CheckpointError, match=message) as raised:
        trainer.load_checkpoint(path)

    assert str(path) in str(raised.value)


def test_checkpoint_without_identity_rejected(fake_root, tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"steps_done": 3, "generator": {}}, path)

    with pytest.raises(CheckpointError, match="missing format_version, identity"):
        Trainer(cifar_config(fake_root)).load_checkpoint(path)


def test_missing_checkpoint_named(fake_root, tmp_path):
    with pytest.raises(CheckpointError, match="Checkpoint not found"):
        Trainer(cifar_config(fake_root)).load_checkpoint(tmp_path / "absent.pt")


def test_describe_checkpoint_cli(fake_root, tmp_path, capsys):
    path = tmp_path / "trainer.pt"
    Trainer(cifar_config(fake_root, setting="C", method="sngan")).save_checkpoint(path)

    code = main(["describe", "--checkpoint", str(path)])

    assert code == 0
    output = capsys.readouterr().out
    assert "cifar10/C with sngan" in output
    assert "steps done: 0" in output


def test_describe_unreadable_checkpoint_exits_2(tmp_path, capsys):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"\x00" * 100)

    code = main(["describe", "--checkpoint", str(path)])

    assert code == 2
    assert str(path) in capsys.readouterr().err
