"""Every registered rule's directions against the straightforward reference, on every setting.

The reference (``harness.bench.reference_directions``) takes each regularizer with its own
``torch.autograd.grad`` call and shares no code with ``methods/``. Both run on the same losses
of the same networks and batches, so they must agree to float32 rounding.
"""

from __future__ import annotations

import json

import pytest
import torch

from harness.bench import BenchConfig, reference_directions, run_bench
from harness.cli import main
from harness.errors import HarnessInputError
from harness.tasks import get_task
from harness.trainer import Trainer, game_losses
from harness.trial import TrialConfig
from methods import get_method, method_names

GAMMA = 10.0
RTOL = 1e-4
TOY_SETTINGS = ["gaussian/default", "gaussian/mu4", "mog/r2", "mog/r10"]
CIFAR_SETTINGS = [f"cifar10/{name}" for name in get_task("cifar10").settings]


@pytest.fixture(autouse=True)
def one_thread():
    # Two threads on a loaded two-core machine make small steps tens of times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def trainer_for(setting_key: str, method: str, data_root=None, batch_size: int = 16, **task_options) -> Trainer:
    task_name, setting_name = setting_key.split("/")
    setting = get_task(task_name).setting(setting_name)
    config = TrialConfig(
        method=method, task=task_name, setting=setting_name, seed=5, gamma=GAMMA, lr_g=setting.lr,
        lr_d=setting.lr, steps=1, batch_size=batch_size, eval_every=1, loss=setting.loss,
        optimizer=setting.optimizer, betas=setting.betas, data_root=data_root, device="cpu",
        task_options=task_options,
    )
    return Trainer(config)


def directions_and_reference(trainer: Trainer):
    """Return the method's and the reference's directions on one set of losses."""
    config = trainer.config
    loss_g, loss_d = game_losses(trainer.game, config.batch_size, config.loss)
    # The reference keeps the graph, so the rule runs on the same losses afterwards. Two forward
    # passes would differ for SN-GAN, because its power iteration advances with each pass.
    reference = reference_directions(config.method, loss_g, loss_d, trainer.params_g, trainer.params_d, GAMMA)
    plain = [g.detach() for g in torch.autograd.grad(loss_g, trainer.params_g, retain_graph=True)]
    actual = trainer.method.directions(loss_g, loss_d, trainer.params_g, trainer.params_d, GAMMA)
    return actual, reference, plain


def assert_directions_equal(actual, reference) -> None:
    for player, got, want in (("generator", actual[0], reference[0]), ("discriminator", actual[1], reference[1])):
        assert len(got) == len(want), player
        for index, (a, b) in enumerate(zip(got, want)):
            scale = float(b.abs().max())
            torch.testing.assert_close(a, b, rtol=RTOL, atol=RTOL * scale + 1e-12,
                                       msg=lambda m: f"{player} parameter {index}: {m}")


@pytest.mark.parametrize("method", method_names())
@pytest.mark.parametrize("setting_key", TOY_SETTINGS)
def test_toy_directions_match_reference(setting_key, method):
    trainer = trainer_for(setting_key, method)

    actual, reference, _ = directions_and_reference(trainer)

    assert_directions_equal(actual, reference)


@pytest.mark.parametrize("method", method_names())
@pytest.mark.parametrize("setting_key", CIFAR_SETTINGS)
def test_cifar_directions_match_reference(setting_key, method, cifar_zip):
    # The shipped subset holds fewer test images than the default reference sample count.
    trainer = trainer_for(setting_key, method, data_root=str(cifar_zip), batch_size=4, eval_reference_samples=100)

    actual, reference, _ = directions_and_reference(trainer)

    assert_directions_equal(actual, reference)


@pytest.mark.parametrize("method", ["conopt", "gen_only", "jare"])
@pytest.mark.parametrize("setting_key", TOY_SETTINGS)
def test_regularizer_exceeds_tolerance(setting_key, method):
    # The equality tests can only catch a wrong regularizer where γ·reg is far above the
    # tolerance: here the reference's d_φ must differ from the plain gradient g_φ by that much.
    trainer = trainer_for(setting_key, method)

    _, reference, plain = directions_and_reference(trainer)

    difference = max(float((d - g).abs().max()) for d, g in zip(reference[0], plain))
    scale = max(float(d.abs().max()) for d in reference[0])
    assert difference > 100 * RTOL * scale


def test_reference_rejects_unknown_rule():
    loss = torch.zeros((), requires_grad=True)
    with pytest.raises(HarnessInputError, match="no reference implementation"):
        reference_directions("altgd", loss, loss, [], [], 1.0)


def test_bench_json_ratios_consistent(capsys):
    code = main(["bench", "--task", "gaussian", "--methods", "simgd,jare", "--steps", "3", "--repeats", "2",
                 "--warmup", "1", "--batch-size", "16", "--threads", "1", "--json"])

    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(result["methods"]) == {"simgd", "jare"}
    assert result["methods"]["simgd"]["ratio_to_simgd"] == pytest.approx(1.0)
    jare = result["methods"]["jare"]
    assert jare["ratio_to_simgd"] == pytest.approx(jare["ms_per_step"] / result["methods"]["simgd"]["ms_per_step"])
    assert jare["ratio_to_reference"] == pytest.approx(jare["ms_per_step"] / result["reference"]["jare"]["ms_per_step"])
    assert result["machine"]["torch_threads"] == 1
    assert result["machine"]["torch"] == torch.__version__


def test_bench_times_every_repeat():
    config = BenchConfig(task="mog", setting="r2", methods=("simgd", "gen_only"), steps=2, repeats=3, warmup=0,
                         batch_size=8)

    result = run_bench(config)

    assert result["repeats"] == 3
    assert result["methods"]["gen_only"]["ms_per_step"] > 0
    assert result["reference"]["gen_only"]["ms_per_step"] > 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--methods", "jare"], "must include simgd"),
        (["--methods", "simgd,nope"], "unknown method 'nope'"),
        (["--steps", "0"], "--steps is 0"),
        (["--batch-size", "0"], "--batch-size is 0"),
    ],
)
def test_bench_bad_input_exit_code(arguments, message, capsys):
    code = main(["bench", "--task", "gaussian", *arguments])

    assert code == 2
    assert message in capsys.readouterr().err


def test_bench_image_task_needs_data(capsys):
    code = main(["bench", "--task", "cifar10", "--setting", "A"])

    assert code == 2
    assert "--data-root" in capsys.readouterr().err
