"""Tests for harness.images: image folders, zips, CIFAR-10 pickles, the download and the errors."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness import images
from harness.errors import DataError
from harness.images import (
    load_cifar10,
    load_cifar10_batches,
    load_image_folder,
)

from tests.conftest import CIFAR_ZIP as SUBSET_ZIP

CLASSES = ("cat", "dog", "frog")


@pytest.fixture(autouse=True)
def empty_cache():
    images.clear_cache()
    yield
    images.clear_cache()


def pixels_for(label: int, index: int, size: int = 32) -> np.ndarray:
    """Return distinct, known (H, W, 3) pixels for one fixture image."""
    rng = np.random.default_rng(100 * label + index)
    return rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def write_class_folders(root: Path, per_class: int = 2, size: int = 32) -> None:
    """Write lossless PNGs ``root/<class>/<index>.png`` with the pixels of ``pixels_for``."""
    for label, name in enumerate(CLASSES):
        folder = root / name
        folder.mkdir(parents=True)
        for index in range(per_class):
            Image.fromarray(pixels_for(label, index, size)).save(folder / f"{index:04d}.png")


def zip_folder(folder: Path, archive: Path, prefix: str = "") -> None:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())


def expected_tensor(per_class: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    arrays = [
        pixels_for(label, index) for label in range(len(CLASSES)) for index in range(per_class)
    ]
    expected_images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    expected_labels = torch.arange(len(CLASSES)).repeat_interleave(per_class)
    return expected_images, expected_labels


def noise_jpeg_bytes(size: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels_for(0, 0, size)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# The shared CIFAR-10 subset


def require_subset() -> Path:
    if not SUBSET_ZIP.is_file():
        pytest.skip(f"../shared/data/cifar10-subset.zip not found: expected it at {SUBSET_ZIP}")
    return SUBSET_ZIP


def test_subset_zip_splits_and_shapes():
    path = require_subset()

    train = load_cifar10(path, "train")
    test = load_cifar10(path, "test")

    assert train.images.shape == (10_000, 3, 32, 32)
    assert test.images.shape == (2_000, 3, 32, 32)
    assert train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64
    assert len(train.classes) == 10
    assert train.classes == test.classes
    assert "airplane" in train.classes
    assert torch.bincount(train.labels).tolist() == [1000] * 10
    assert torch.bincount(test.labels).tolist() == [200] * 10
    assert train.split == "train"
    assert test.split == "test"


def test_subset_zip_cached_in_process():
    path = require_subset()

    first = load_cifar10(path, "test")
    second = load_cifar10(path, "test")

    assert second is first


# ---------------------------------------------------------------------------------------------
# Image folder layouts


@pytest.mark.parametrize(
    "prefix",
    ["", "wrapper/", "train/", "wrapper/train/"],
    ids=["classes-at-root", "wrapper", "split", "wrapper-split"],
)
def test_folder_layouts_give_known_pixels(tmp_path, prefix):
    root = tmp_path / "data"
    write_class_folders(root / prefix)
    if "train/" in prefix:
        write_class_folders(root / prefix.replace("train/", "test/"), per_class=1)

    dataset = load_image_folder(root, "train")

    expected_images, expected_labels = expected_tensor()
    assert dataset.classes == CLASSES
    assert torch.equal(dataset.images, expected_images)
    assert torch.equal(dataset.labels, expected_labels)
    assert dataset.split == ("train" if "train/" in prefix else None)


def test_split_folder_selects_test(tmp_path):
    write_class_folders(tmp_path / "train", per_class=2)
    write_class_folders(tmp_path / "test", per_class=1)

    dataset = load_image_folder(tmp_path, "test")

    assert len(dataset) == len(CLASSES)
    assert dataset.split == "test"


def test_directory_and_zip_give_same_pixels(tmp_path):
    folder = tmp_path / "folder"
    write_class_folders(folder / "train")
    write_class_folders(folder / "test", per_class=1)
    archive = tmp_path / "data.zip"
    zip_folder(folder, archive, prefix="wrapper/")

    from_folder = load_image_folder(folder, "train")
    from_zip = load_image_folder(archive, "train")

    assert from_zip.classes == from_folder.classes
    assert torch.equal(from_zip.images, from_folder.images)
    assert torch.equal(from_zip.labels, from_folder.labels)


def test_channels_in_rgb_order(tmp_path):
    (tmp_path / "red").mkdir()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "red" / "a.png")

    dataset = load_image_folder(tmp_path)

    assert dataset.images[0, :, 0, 0].tolist() == [255, 0, 0]


def test_grayscale_and_rgba_become_rgb(tmp_path):
    (tmp_path / "mixed").mkdir()
    Image.new("L", (8, 8), 77).save(tmp_path / "mixed" / "gray.png")
    Image.new("RGBA", (8, 8), (1, 2, 3, 4)).save(tmp_path / "mixed" / "rgba.png")

    dataset = load_image_folder(tmp_path)

    assert dataset.images.shape == (2, 3, 8, 8)
    assert dataset.images[0, :, 0, 0].tolist() == [77, 77, 77]
    assert dataset.images[1, :, 0, 0].tolist() == [1, 2, 3]


def test_hidden_and_non_image_files_skipped(tmp_path):
    write_class_folders(tmp_path, per_class=1)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "cat" / ".thumb.png").write_bytes(b"not an image either")
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "__MACOSX" / "x.png").write_bytes(b"resource fork")

    dataset = load_image_folder(tmp_path)

    assert dataset.classes == CLASSES
    assert len(dataset) == len(CLASSES)


def test_cache_reloads_after_file_change(tmp_path):
    write_class_folders(tmp_path, per_class=1)
    first = load_image_folder(tmp_path)

    again = load_image_folder(tmp_path)
    image_path = tmp_path / "cat" / "0000.png"
    Image.new("RGB", (32, 32), (9, 9, 9)).save(image_path)
    stat = image_path.stat()
    os.utime(image_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = load_image_folder(tmp_path)

    assert again is first
    assert changed is not first
    assert changed.images[0, :, 0, 0].tolist() == [9, 9, 9]


# ---------------------------------------------------------------------------------------------
# Errors name the file


def test_missing_path_explains_fix(tmp_path):
    missing = tmp_path / "nowhere"

    with pytest.raises(DataError) as raised:
        load_cifar10(missing, "train")

    message = str(raised.value)
    assert message.startswith("CIFAR-10 data not found")
    assert str(missing) in message
    assert "data.root" in message
    assert "cifar-10-batches-py" in message
    assert "data.download: true" in message


def test_missing_image_folder_names_path(tmp_path):
    with pytest.raises(DataError, match="does not exist") as raised:
        load_image_folder(tmp_path / "nowhere")

    assert str(tmp_path / "nowhere") in str(raised.value)


def test_root_without_images_explains_fix(tmp_path):
    with pytest.raises(DataError, match="data.download: true") as raised:
        load_cifar10(tmp_path, "train")

    assert str(tmp_path) in str(raised.value)


def test_empty_class_folder_named(tmp_path):
    write_class_folders(tmp_path, per_class=1)
    (tmp_path / "empty").mkdir()

    with pytest.raises(DataError, match="Empty class folder") as raised:
        load_image_folder(tmp_path)

    assert str(tmp_path / "empty") in str(raised.value)


def test_empty_class_folder_in_zip_named(tmp_path):
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("cat/0.jpg", noise_jpeg_bytes())
        zf.writestr("dog/", "")

    with pytest.raises(DataError, match="Empty class folder") as raised:
        load_image_folder(archive)

    assert f"{archive}/dog" in str(raised.value)


def test_truncated_jpeg_named(tmp_path):
    (tmp_path / "cat").mkdir()
    broken = tmp_path / "cat" / "broken.jpg"
    jpeg = noise_jpeg_bytes()
    broken.write_bytes(jpeg[: len(jpeg) // 2])

    with pytest.raises(DataError, match="Failed to decode image") as raised:
        load_image_folder(tmp_path)

    message = str(raised.value)
    assert str(broken) in message
    assert "Expected a complete image file" in message


def test_corrupt_image_in_zip_names_member_and_zip(tmp_path):
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("set/cat/good.jpg", noise_jpeg_bytes())
        zf.writestr("set/cat/bad.jpg", b"this is not a JPEG")

    with pytest.raises(DataError, match="Failed to decode image") as raised:
        load_image_folder(archive)

    message = str(raised.value)
    assert "set/cat/bad.jpg" in message
    assert str(archive) in message


def test_wrong_size_names_file_and_sizes(tmp_path):
    write_class_folders(tmp_path, per_class=1)
    small = tmp_path / "dog" / "small.png"
    Image.new("RGB", (16, 16)).save(small)

    with pytest.raises(DataError, match="Wrong image size") as raised:
        load_cifar10(tmp_path, "train")

    message = str(raised.value)
    assert str(small) in message
    assert "16×16" in message
    assert "32×32" in message


def test_mixed_sizes_without_expected_size_rejected(tmp_path):
    (tmp_path / "cat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "cat" / "a.png")
    Image.new("RGB", (8, 6)).save(tmp_path / "cat" / "b.png")

    with pytest.raises(DataError, match="8×6 pixels, expected 8×8") as raised:
        load_image_folder(tmp_path)

    assert str(tmp_path / "cat" / "b.png") in str(raised.value)


def test_corrupt_zip_named(tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04 this is not really a zip file")

    with pytest.raises(DataError, match="Failed to open zip file") as raised:
        load_cifar10(archive, "train")

    assert str(archive) in str(raised.value)


def test_truncated_zip_named(tmp_path):
    folder = tmp_path / "folder"
    write_class_folders(folder)
    archive = tmp_path / "data.zip"
    zip_folder(folder, archive)
    archive.write_bytes(archive.read_bytes()[:-200])

    with pytest.raises(DataError) as raised:
        load_image_folder(archive)

    assert str(archive) in str(raised.value)


def test_corrupt_zip_member_names_member_and_zip(tmp_path):
    archive = tmp_path / "data.zip"
    jpeg = noise_jpeg_bytes()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("cat/0.jpg", jpeg)
    content = bytearray(archive.read_bytes())
    position = content.index(jpeg) + len(jpeg) // 2
    content[position] ^= 0xFF
    archive.write_bytes(bytes(content))

    with pytest.raises(DataError, match="Failed to read cat/0.jpg from zip file") as raised:
        load_image_folder(archive)

    assert str(archive) in str(raised.value)


def test_missing_split_folder_named(tmp_path):
    write_class_folders(tmp_path / "train", per_class=1)

    with pytest.raises(DataError, match="Split folder not found") as raised:
        load_image_folder(tmp_path, "test")

    assert "'test/'" in str(raised.value)
    assert str(tmp_path) in str(raised.value)


def test_invalid_split_rejected(tmp_path):
    with pytest.raises(ValueError, match="invalid split 'val'"):
        load_image_folder(tmp_path, "val")


# ---------------------------------------------------------------------------------------------
# CIFAR-10 pickles


def positional_rows(count: int, offset: int) -> np.ndarray:
    """Rows whose value at flat position p is (p + offset + row) mod 256."""
    positions = np.arange(3072)[None, :] + offset + np.arange(count)[:, None]
    return (positions % 256).astype(np.uint8)


def write_batches(folder: Path, per_batch: int = 2, protocol: int = 2) -> None:
    """Write a fake cifar-10-batches-py folder with known pixels and labels."""
    folder.mkdir(parents=True)
    names = [f"class{i}".encode() for i in range(10)]
    with (folder / "batches.meta").open("wb") as file:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, file, protocol=protocol)
    for index, name in enumerate([*images.CIFAR10_BATCHES["train"], "test_batch"]):
        batch = {
            b"batch_label": name.encode(),
            b"data": positional_rows(per_batch, offset=10 * index),
            b"labels": [(index + row) % 10 for row in range(per_batch)],
        }
        with (folder / name).open("wb") as file:
            pickle.dump(batch, file, protocol=protocol)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_batches_channel_major_layout(tmp_path, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder, protocol=protocol)

    train = load_cifar10_batches(folder, "train")

    assert train.images.shape == (10, 3, 32, 32)
    assert train.classes == tuple(f"class{i}" for i in range(10))
    # Row 1 of data_batch_2 (offset 10): channel c, row y, column x sits at 1024c + 32y + x.
    image = train.images[3]
    for channel, y, x in [(0, 0, 0), (0, 0, 5), (0, 3, 0), (1, 0, 0), (2, 31, 31)]:
        assert int(image[channel, y, x]) == (1024 * channel + 32 * y + x + 10 + 1) % 256
    assert train.labels.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]


def test_batches_found_inside_root(tmp_path):
    write_batches(tmp_path / "cifar-10-batches-py")

    test = load_cifar10(tmp_path, "test")

    assert test.images.shape == (2, 3, 32, 32)
    assert test.labels.tolist() == [5, 6]
    assert test.split == "test"


def test_missing_batch_file_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)
    (folder / "data_batch_3").unlink()

    with pytest.raises(DataError, match="CIFAR-10 file not found") as raised:
        load_cifar10(tmp_path, "train")

    assert str(folder.resolve() / "data_batch_3") in str(raised.value)


def test_batch_with_wrong_shape_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)
    with (folder / "test_batch").open("wb") as file:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, file)

    with pytest.raises(DataError, match=r"expected a uint8 array of shape \(N, 3072\)") as raised:
        load_cifar10(folder, "test")

    assert "test_batch" in str(raised.value)


class _CallsEval:
    # eval, not print: Ray replaces builtins.print once a sweep has run in this process, and the
    # pickled reference would then name Ray's function instead of a builtin.
    def __reduce__(self):
        return (eval, ("'unpickling ran code'",))


def test_batch_pickle_cannot_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)
    with (folder / "test_batch").open("wb") as file:
        pickle.dump({b"data": _CallsEval(), b"labels": []}, file)

    with pytest.raises(DataError, match="builtins.eval is not allowed") as raised:
        load_cifar10(folder, "test")

    assert "test_batch" in str(raised.value)


# ---------------------------------------------------------------------------------------------
# Download, with the network replaced by a local tarball


def build_tarball(tmp_path: Path) -> bytes:
    source = tmp_path / "tarball-source"
    write_batches(source / "cifar-10-batches-py")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buffer.getvalue()


def serve(monkeypatch, payload: bytes) -> list[str]:
    """Replace urllib's opener with one that returns ``payload``; return the URLs requested."""
    requested: list[str] = []

    def fake_urlopen(url, timeout=None):
        requested.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return requested


def test_download_checks_md5_extracts_and_loads(tmp_path, monkeypatch):
    payload = build_tarball(tmp_path)
    requested = serve(monkeypatch, payload)
    monkeypatch.setattr(images, "CIFAR10_MD5", hashlib.md5(payload).hexdigest())
    root = tmp_path / "fresh" / "cifar"

    train = load_cifar10(root, "train", download=True)
    test = load_cifar10(root, "test", download=True)

    assert requested == [images.CIFAR10_URL]
    assert train.images.shape == (10, 3, 32, 32)
    assert test.images.shape == (2, 3, 32, 32)
    assert (root / "cifar-10-batches-py" / "data_batch_5").is_file()
    assert (root / "cifar-10-python.tar.gz").read_bytes() == payload
    assert [path.name for path in root.iterdir() if path.name.startswith(".")] == []


def test_download_reuses_archive_with_matching_md5(tmp_path, monkeypatch):
    payload = build_tarball(tmp_path)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(payload)
    requested = serve(monkeypatch, b"")

    folder = images.download_cifar10(tmp_path, md5=hashlib.md5(payload).hexdigest())

    assert requested == []
    assert folder == tmp_path / "cifar-10-batches-py"
    assert (folder / "test_batch").is_file()


def test_download_md5_mismatch_rejected(tmp_path, monkeypatch):
    serve(monkeypatch, build_tarball(tmp_path))
    root = tmp_path / "root"

    with pytest.raises(DataError, match="Download corrupt") as raised:
        load_cifar10(root, "train", download=True)

    message = str(raised.value)
    assert images.CIFAR10_URL in message
    assert images.CIFAR10_MD5 in message
    assert list(root.iterdir()) == []


def test_download_network_failure_named(tmp_path, monkeypatch):
    def failing_urlopen(url, timeout=None):
        raise urllib.error.URLError("name resolution failed")

    monkeypatch.setattr(urllib.request, "urlopen", failing_urlopen)

    with pytest.raises(DataError, match="Download failed") as raised:
        images.download_cifar10(tmp_path)

    assert images.CIFAR10_URL in str(raised.value)


@pytest.mark.parametrize("member", ["../escape.txt", "/absolute.txt", "cifar-10-batches-py/link"])
def test_unsafe_tarball_rejected(tmp_path, monkeypatch, member):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(member)
        if member.endswith("link"):
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    payload = buffer.getvalue()
    serve(monkeypatch, payload)
    root = tmp_path / "root"

    with pytest.raises(DataError, match="Unsafe archive") as raised:
        images.download_cifar10(root, md5=hashlib.md5(payload).hexdigest())

    assert repr(member) in str(raised.value)
    assert not (tmp_path / "escape.txt").exists()
    assert not (root / "cifar-10-batches-py").exists()
