"""Smoke grid: one training step of every update rule on every CIFAR-10 setting, A–F."""

from __future__ import annotations

import math

import pytest
import torch

from harness.tasks.cifar10 import SETTINGS
from harness.trainer import Trainer
from harness.trial import TrialConfig
from methods import method_names
from tests.tasks.test_cifar10 import write_fake_batches


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_fake_batches(root / "cifar-10-batches-py", per_batch=8)
    return root


def smoke_config(method: str, setting: str, root) -> TrialConfig:
    spec = SETTINGS[setting]
    return TrialConfig(
        method=method, task="cifar10", setting=setting, seed=0, gamma=10.0, lr_g=spec.lr, lr_d=spec.lr,
        steps=1, batch_size=2, eval_every=1, loss=spec.loss, optimizer=spec.optimizer, betas=spec.betas,
        task_options={"eval_reference_samples": 8}, data_root=str(root), device="cpu",
    )


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("method", method_names())
def test_one_step_trains_both_players(method, setting, fake_root):
    trainer = Trainer(smoke_config(method, setting, fake_root))
    before_g = [p.detach().clone() for p in trainer.params_g]
    before_d = [p.detach().clone() for p in trainer.params_d]

    losses = trainer.step()

    assert losses is not None
    assert all(math.isfinite(value) for value in losses)
    assert any(not torch.equal(b, p) for b, p in zip(before_g, trainer.params_g))
    assert any(not torch.equal(b, p) for b, p in zip(before_d, trainer.params_d))
    normalized = [m for m in trainer.game.discriminator.modules() if hasattr(m, "parametrizations")]
    if method == "sngan":
        assert normalized, "sngan trains a discriminator without spectral normalization"
    else:
        assert not normalized
