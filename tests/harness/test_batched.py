"""Batched toy trials against their unbatched runs, and the stacked optimizers against torch.optim."""

from __future__ import annotations

import math

import pytest
import torch

from harness.batched import BatchedTrainer, StackedOptimizer, check_batchable
from harness.errors import HarnessInputError
from harness.trainer import train
from harness.trial import TrialConfig


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian(**overrides) -> TrialConfig:
    values = dict(
        method="jare", task="gaussian", setting="default", seed=0, gamma=1.0, lr_g=0.05, lr_d=0.05,
        steps=30, batch_size=32, eval_every=10, loss="saturating", optimizer="sgd", betas=(0.5, 0.999),
        device="cpu",
    )
    values.update(overrides)
    return TrialConfig(**values)


def mog(**overrides) -> TrialConfig:
    values = dict(
        method="jare", task="mog", setting="r2", seed=0, gamma=1.0, lr_g=1e-3, lr_d=1e-3, steps=12,
        batch_size=16, eval_every=6, loss="saturating", optimizer="rmsprop", betas=(0.5, 0.999),
        device="cpu",
    )
    values.update(overrides)
    return TrialConfig(**values)


def batched_rows(configs: list[TrialConfig]) -> dict[int, list[dict]]:
    rows: dict[int, list[dict]] = {index: [] for index in range(len(configs))}
    BatchedTrainer(configs).run(lambda index, row: rows[index].append(row))
    return rows


def unbatched_rows(config: TrialConfig) -> list[dict]:
    rows: list[dict] = []
    train(config, rows.append)
    return rows


def assert_rows_match(batched: list[dict], single: list[dict], metric_atol: dict[str, float]) -> None:
    assert [row["step"] for row in batched] == [row["step"] for row in single]
    assert [row["status"] for row in batched] == [row["status"] for row in single]
    for got, want in zip(batched, single):
        for key in ("loss_g", "loss_d"):
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), (got["step"], key)
        for key, atol in metric_atol.items():
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=atol), (got["step"], key)


GAUSSIAN_BATCH = [
    gaussian(method="simgd", seed=0),
    gaussian(method="jare", seed=1, gamma=3.0),
    gaussian(method="jare", seed=2, gamma=0.5, lr_d=0.1),
    gaussian(method="conopt", seed=0, gamma=2.0),
    gaussian(method="gen_only", seed=3, gamma=4.0, lr_g=0.02),
    gaussian(method="disc_only", seed=4, gamma=4.0),
]


def test_gaussian_batch_matches_unbatched():
    rows = batched_rows(GAUSSIAN_BATCH)

    for index, config in enumerate(GAUSSIAN_BATCH):
        assert_rows_match(rows[index], unbatched_rows(config), {"distance_to_equilibrium": 1e-6})


def test_gaussian_batch_trials_differ():
    # Equal rows across the batch would mean the slices were not trained independently.
    rows = batched_rows(GAUSSIAN_BATCH[1:3])

    assert rows[0][-1]["distance_to_equilibrium"] != rows[1][-1]["distance_to_equilibrium"]


MOG_BATCH = [
    mog(method="jare", seed=0, gamma=2.0),
    mog(method="jare", seed=1, gamma=0.3, lr_g=3e-3),
    mog(method="simgd", seed=2, lr_d=2e-3),
    mog(method="conopt", seed=0, gamma=1.0),
]


def test_mog_batch_matches_unbatched():
    rows = batched_rows(MOG_BATCH)

    for index, config in enumerate(MOG_BATCH):
        # One sample crossing the 3σ line moves the high-quality fraction by 1/2500.
        assert_rows_match(rows[index], unbatched_rows(config),
                          {"modes_covered": 0.0, "high_quality_fraction": 1.5 / 2500})


def test_diverged_trial_reports_once():
    # A learning rate near float32's limit sends θ to about 1e38 in one step, so the logits or
    # the parameter norm overflow. The other trial of the batch must train on unaffected.
    configs = [
        gaussian(seed=0, lr_d=1e38, steps=4, eval_every=2),
        gaussian(seed=1, steps=4, eval_every=2),
    ]

    rows = batched_rows(configs)

    single = unbatched_rows(configs[0])
    assert [row["status"] for row in rows[0]] == [row["status"] for row in single]
    assert rows[0][-1]["status"] == "diverged"
    assert math.isnan(rows[0][-1]["loss_g"])
    assert [row["status"] for row in rows[1]] == ["running", "finished"]
    assert_rows_match(rows[1], unbatched_rows(configs[1]), {"distance_to_equilibrium": 1e-6})


def test_run_restores_global_rng():
    state = torch.get_rng_state()

    batched_rows(GAUSSIAN_BATCH[:2])

    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize(("name", "torch_optimizer"), [
    ("sgd", lambda params, lr: torch.optim.SGD(params, lr=lr)),
    ("rmsprop", lambda params, lr: torch.optim.RMSprop(params, lr=lr, alpha=0.9)),
    ("adam", lambda params, lr: torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))),
])
def test_stacked_optimizer_matches_torch(name, torch_optimizer):
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(3, 4, 5, generator=generator)
    lrs = torch.tensor([0.1, 0.01, 0.003])
    stacked = start.clone()
    singles = [start[k].clone().requires_grad_(True) for k in range(3)]
    optimizers = [torch_optimizer([singles[k]], float(lrs[k])) for k in range(3)]
    stacked_optimizer = StackedOptimizer(name, [stacked], lrs, (0.5, 0.999))

    for _ in range(5):
        directions = torch.randn(3, 4, 5, generator=generator)
        stacked_optimizer.step([directions])
        for k in range(3):
            singles[k].grad = directions[k].clone()
            optimizers[k].step()

    for k in range(3):
        torch.testing.assert_close(stacked[k], singles[k].detach(), rtol=1e-6, atol=1e-7)


def test_batch_rejects_sngan():
    with pytest.raises(HarnessInputError, match="sngan"):
        check_batchable([gaussian(method="sngan")])


def test_batch_rejects_mixed_settings():
    with pytest.raises(HarnessInputError, match="must share setting"):
        check_batchable([gaussian(), gaussian(setting="mu4")])


def test_batch_rejects_image_task():
    with pytest.raises(HarnessInputError, match="cannot train in batches"):
        check_batchable([gaussian(task="cifar10", setting="A")])
