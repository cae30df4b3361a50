"""The celeba64 and imagenet128 tasks on image folders, and bad data through the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from PIL import Image

from harness import images
from harness.cli import main
from harness.errors import DataError
from harness.tasks import get_task
from harness.trainer import Trainer
from harness.trial import TrialConfig


@pytest.fixture(autouse=True)
def empty_cache():
    images.clear_cache()
    yield
    images.clear_cache()


def write_image_folder(root, size: int, per_split: int = 4, classes=("faces",)) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(per_split):
                pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")


def folder_config(task: str, root) -> TrialConfig:
    setting = get_task(task).setting("default")
    return TrialConfig(
        method="jare", task=task, setting="default", seed=0, gamma=10.0, lr_g=1e-4, lr_d=1e-4, steps=1,
        batch_size=2, eval_every=1, loss=setting.loss, optimizer=setting.optimizer, betas=setting.betas,
        task_options={"eval_reference_samples": 4}, data_root=str(root), device="cpu",
    )


@pytest.mark.parametrize(("task", "size"), [("celeba64", 64), ("imagenet128", 128)])
def test_one_step_on_image_folder(task, size, tmp_path):
    write_image_folder(tmp_path, size)
    trainer = Trainer(folder_config(task, tmp_path))

    losses = trainer.step()

    assert losses is not None
    assert all(math.isfinite(value) for value in losses)
    assert trainer.game.train_images.shape == (4, 3, size, size)
    assert trainer.game.sample_real(2).shape == (2, 3, size, size)


@pytest.mark.parametrize(("task", "size"), [("celeba64", 64), ("imagenet128", 128)])
def test_wrong_resolution_names_file(task, size, tmp_path):
    write_image_folder(tmp_path, 32)
    owner = get_task(task)

    with pytest.raises(DataError, match=f"expected {size}×{size}") as raised:
        owner.check_data(owner.setting("default"), tmp_path, False)

    assert "0.png" in str(raised.value)


def test_download_rejected(tmp_path):
    task = get_task("celeba64")

    with pytest.raises(DataError, match="cannot be downloaded"):
        task.check_data(task.setting("default"), tmp_path, True)


def spec_file(folder, root, task="celeba64", options=None) -> str:
    spec = {
        "name": "bad-data",
        "grid": {"methods": ["simgd"], "settings": [task], "seeds": [0]},
        "train": {"steps": 1, "task_options": {task: options or {"eval_reference_samples": 4}}},
        "data": {"root": str(root)},
    }
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_cli_wrong_resolution_exits_2_without_output(tmp_path, capsys):
    data = tmp_path / "data"
    write_image_folder(data, 32)
    output = tmp_path / "out"

    code = main(["sweep", spec_file(tmp_path, data), "--output", str(output)])

    assert code == 2
    error = capsys.readouterr().err
    assert "0.png" in error
    assert "expected 64×64" in error
    assert not output.exists()


def test_cli_too_few_reference_images_exits_2(tmp_path, capsys):
    data = tmp_path / "data"
    write_image_folder(data, 64)
    output = tmp_path / "out"

    code = main(["sweep", spec_file(tmp_path, data, options={"eval_reference_samples": 5}), "--output", str(output)])

    assert code == 2
    assert "has 4 reference images but the task option eval_reference_samples is 5" in capsys.readouterr().err
    assert not output.exists()


def test_cli_corrupt_image_on_resume_keeps_results(tmp_path, capsys):
    data = tmp_path / "data"
    write_image_folder(data, 64)
    (data / "train" / "faces" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    output = tmp_path / "out"
    (output / "results").mkdir(parents=True)
    earlier = output / "results" / "trial.parquet"
    earlier.write_bytes(b"rows of an earlier run")
    (output / "sweep.json").write_text('{"sweep_id": "bad-data-1"}')

    code = main(["sweep", spec_file(tmp_path, data), "--output", str(output), "--resume"])

    assert code == 2
    assert "2.png" in capsys.readouterr().err
    assert earlier.read_bytes() == b"rows of an earlier run"
    assert sorted(p.name for p in output.iterdir()) == ["results", "sweep.json"]


def test_cli_empty_class_folder_exits_2(tmp_path, capsys):
    data = tmp_path / "data"
    write_image_folder(data, 64)
    (data / "train" / "empty").mkdir()

    code = main(["sweep", spec_file(tmp_path, data), "--output", str(tmp_path / "out")])

    assert code == 2
    assert "Empty class folder" in capsys.readouterr().err
