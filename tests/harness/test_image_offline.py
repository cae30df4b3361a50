"""Checks of the image tasks before a sweep starts: the default reference count and the Inception weights."""

from __future__ import annotations

import functools
import http.server
import logging
import socket
import threading
from pathlib import Path

import pytest
import torch
import yaml

from harness import fidelity
from harness.cli import main
from harness.config import load_spec
from harness.errors import HarnessInputError
from harness.images import ImageDataset
from harness.sweep import existing_sweep, new_sweep, preflight
from harness.tasks.cifar10 import Cifar10Task
from harness.tasks.image_task import DEFAULT_REFERENCE_LIMIT, default_reference_count
from tests.tasks.test_cifar10 import write_fake_batches

TEST_IMAGES = 40
"""Images in the test split that ``write_fake_batches`` writes."""


@pytest.fixture
def data_root(tmp_path) -> Path:
    write_fake_batches(tmp_path / "data" / "cifar-10-batches-py", per_batch=TEST_IMAGES)
    return tmp_path / "data"


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache, so no test reads or writes the user's cached weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return tmp_path / "torch-home"


@pytest.fixture
def unreachable_url(monkeypatch) -> str:
    """Point the weights download at a localhost port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/weights-inception.pth"
    monkeypatch.setattr(fidelity, "INCEPTION_WEIGHTS_URL", url)
    return url


def write_spec(folder: Path, data_root: Path, options: dict, settings=("cifar10/A",)) -> Path:
    spec = {
        "name": "image-offline",
        "grid": {"methods": ["simgd"], "settings": list(settings), "seeds": [0]},
        "train": {"steps": 1, "task_options": {"cifar10": options}},
        "data": {"root": str(data_root)},
    }
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def dataset_of(count: int) -> ImageDataset:
    return ImageDataset(
        images=torch.zeros(count, 3, 1, 1, dtype=torch.uint8),
        labels=torch.zeros(count, dtype=torch.int64),
        classes=("c0",),
        source=f"memory-{count}",
        split="test",
    )


# ---------------------------------------------------------------------------------------------
# eval_reference_samples: null


def test_reference_default_is_null():
    task = Cifar10Task()

    resolved = task.resolve(task.setting("A"), {})

    assert resolved["eval_reference_samples"] is None


def test_default_count_caps_large_split(caplog):
    with caplog.at_level(logging.WARNING, logger="harness.tasks.image_task"):
        count = default_reference_count(dataset_of(DEFAULT_REFERENCE_LIMIT + 1))

    assert count == DEFAULT_REFERENCE_LIMIT
    assert caplog.records == []


def test_default_count_small_split_warns_once(caplog):
    dataset = dataset_of(7)

    with caplog.at_level(logging.WARNING, logger="harness.tasks.image_task"):
        first = default_reference_count(dataset)
        second = default_reference_count(dataset)

    assert first == 7
    assert second == 7
    assert len(caplog.records) == 1
    assert "only 7 reference images" in caplog.records[0].getMessage()


def test_preflight_resolves_null_count(tmp_path, data_root, inception_weights, caplog):
    options = {"inception_weights": str(inception_weights)}
    spec = load_spec(write_spec(tmp_path, data_root, options, settings=("cifar10/A", "cifar10/B")))
    output = tmp_path / "out"

    with caplog.at_level(logging.WARNING, logger="harness.tasks.image_task"):
        preflight(spec, output)

    resolved = spec.train.task_options["cifar10"]
    assert resolved["eval_reference_samples"] == TEST_IMAGES
    assert resolved["inception_weights"] == str(inception_weights)
    warnings = [record for record in caplog.records if "reference images" in record.getMessage()]
    assert len(warnings) == 1
    task = Cifar10Task()
    assert task.protocol(task.setting("A"), resolved)["eval_reference_count"] == TEST_IMAGES
    assert not output.exists()


def test_preflight_keeps_explicit_count(tmp_path, data_root, inception_weights):
    options = {"inception_weights": str(inception_weights), "eval_reference_samples": 12}
    spec = load_spec(write_spec(tmp_path, data_root, options))

    preflight(spec, tmp_path / "out")

    assert spec.train.task_options["cifar10"]["eval_reference_samples"] == 12


def test_explicit_count_above_split_exits_2(tmp_path, data_root, inception_weights, capsys):
    options = {"inception_weights": str(inception_weights), "eval_reference_samples": TEST_IMAGES + 1}
    output = tmp_path / "out"

    code = main(["sweep", str(write_spec(tmp_path, data_root, options)), "--output", str(output)])

    assert code == 2
    error = capsys.readouterr().err
    assert f"has {TEST_IMAGES} reference images" in error
    assert f"eval_reference_samples is {TEST_IMAGES + 1}" in error
    assert not output.exists()


def test_game_resolves_null_count(data_root, inception_weights, tmp_path):
    task = Cifar10Task()
    options = {"eval_samples": 10, "eval_batch_size": 10, "inception_weights": str(inception_weights),
               "metrics_cache": str(tmp_path / "cache")}

    game = task.build(task.setting("B"), options, data_root, False, torch.device("cpu"))

    assert game.reference_images.shape == (TEST_IMAGES, 3, 32, 32)
    assert game.metrics.real_count == TEST_IMAGES


# ---------------------------------------------------------------------------------------------
# inception_weights: null


def test_offline_sweep_exits_2(tmp_path, data_root, torch_home, unreachable_url, capsys):
    output = tmp_path / "out"

    code = main(["sweep", str(write_spec(tmp_path, data_root, {})), "--output", str(output)])

    assert code == 2
    error = capsys.readouterr().err
    assert "could not download the official Inception weights" in error
    assert unreachable_url in error
    assert "train.task_options.cifar10.inception_weights=PATH" in error
    assert not output.exists()
    assert not fidelity.official_weights_file().exists()


def test_cached_weights_skip_download(tmp_path, data_root, torch_home, unreachable_url):
    cached = fidelity.official_weights_file()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"weights")
    spec = load_spec(write_spec(tmp_path, data_root, {}))

    preflight(spec, tmp_path / "out")

    assert cached.read_bytes() == b"weights"
    assert str(cached).startswith(str(torch_home))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:
        pass


def test_download_fills_hub_cache(tmp_path, torch_home, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    (served / "weights.pth").write_bytes(b"official weights")
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(fidelity, "INCEPTION_WEIGHTS_URL", f"http://127.0.0.1:{server.server_port}/weights.pth")

    try:
        target = fidelity.ensure_official_weights("train.task_options.cifar10.inception_weights")
    finally:
        server.shutdown()
        server.server_close()

    assert target == fidelity.official_weights_file()
    assert target.read_bytes() == b"official weights"


def test_download_error_names_option(torch_home, unreachable_url):
    with pytest.raises(HarnessInputError, match=r"set train\.task_options\.celeba64\.inception_weights=PATH"):
        fidelity.ensure_official_weights("train.task_options.celeba64.inception_weights")


def test_resolved_spec_resumes(tmp_path, data_root, inception_weights):
    path = write_spec(tmp_path, data_root, {"inception_weights": str(inception_weights)})
    output = tmp_path / "out"
    first = load_spec(path)
    preflight(first, output)
    sweep_id = new_sweep(first, output)
    again = load_spec(path)

    preflight(again, output, resume=True)

    assert existing_sweep(again, output) == sweep_id
    saved = yaml.safe_load((output / "spec.yaml").read_text())
    assert saved["train"]["task_options"]["cifar10"]["eval_reference_samples"] == TEST_IMAGES
