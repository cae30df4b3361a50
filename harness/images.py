"""Load image datasets into memory as uint8 tensors: image folders, zips and CIFAR-10 pickles.

Every loader returns an ``ImageDataset`` with images of shape ``(N, 3, H, W)`` (uint8, RGB),
int64 labels and the class names. Loaded datasets are cached in the process, so several trials
in one worker decode the files once. Every problem with the data raises ``DataError`` naming
the file and the expected input.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from harness.errors import DataError

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
CIFAR10_IMAGE_SIZE = (32, 32)

CACHE_MAX_ENTRIES = 4

_IMAGE_FOLDER_HELP = (
    "Point data.root at a folder or .zip file with one folder of images per class "
    "(optionally under train/ and test/ split folders)"
)
_CIFAR10_HELP = (
    "Point data.root at a folder or .zip file with one folder of images per class "
    "(optionally under train/ and test/ split folders), or at a cifar-10-batches-py folder, "
    "or set data.download: true to download CIFAR-10"
)


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """Images of one split held in memory.

    The cache shares these tensors between callers, so callers must not modify them in place.
    """

    images: torch.Tensor
    """uint8 RGB pixels, shape ``(N, 3, H, W)``."""
    labels: torch.Tensor
    """int64 class indices into ``classes``, shape ``(N,)``."""
    classes: tuple[str, ...]
    source: str
    """The file or folder the images came from, for logs and messages."""
    split: str | None
    """The split folder read, or None when the data has no train/test split folders."""

    def __len__(self) -> int:
        return len(self.images)


# ---------------------------------------------------------------------------------------------
# In-process cache


_cache: OrderedDict[Hashable, ImageDataset] = OrderedDict()


def clear_cache() -> None:
    """Drop every dataset from the in-process cache."""
    _cache.clear()


def _cached(key: Hashable, load: Callable[[], ImageDataset]) -> ImageDataset:
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    dataset = load()
    _cache[key] = dataset
    while len(_cache) > CACHE_MAX_ENTRIES:
        _cache.popitem(last=False)
    return dataset


# ---------------------------------------------------------------------------------------------
# Image folders, on disk or in a zip


@dataclass
class _Folder:
    """A folder of the scanned tree: its subfolders and the image files directly inside."""

    folders: dict[str, _Folder] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)

    def child(self, name: str) -> _Folder:
        return self.folders.setdefault(name, _Folder())

    def iter_images(self, prefix: str) -> Iterator[str]:
        """Yield the paths of all images below this folder, sorted, each starting with prefix."""
        for name in sorted(self.images):
            yield prefix + name
        for name in sorted(self.folders):
            yield from self.folders[name].iter_images(f"{prefix}{name}/")


def _is_ignored(name: str) -> bool:
    # Hidden files and the resource folders that macOS adds to zips are not part of the data.
    return name.startswith(".") or name == "__MACOSX"


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _build_tree(files: list[str], folders: list[str]) -> _Folder:
    """Build the folder tree from POSIX paths relative to the root (``a/b/c.jpg``)."""
    root = _Folder()
    for path in folders:
        parts = PurePosixPath(path).parts
        if any(_is_ignored(part) for part in parts):
            continue
        node = root
        for part in parts:
            node = node.child(part)
    for path in files:
        parts = PurePosixPath(path).parts
        if any(_is_ignored(part) for part in parts) or not _is_image(parts[-1]):
            continue
        node = root
        for part in parts[:-1]:
            node = node.child(part)
        node.images.append(parts[-1])
    return root


def _locate_class_folders(
    root: _Folder, split: str, source: str
) -> tuple[_Folder, str, str | None]:
    """Find the folder whose subfolders are the classes.

    Accepts class folders at the root, ``train/`` and ``test/`` split folders at the root, and
    either of them under one wrapper folder. Returns the folder, its path relative to the root
    (empty or ending in ``/``) and the split folder used, if any.
    """
    node, prefix = root, ""
    is_split_layout = any(name in node.folders for name in SPLITS)
    only_child = next(iter(node.folders.values())) if len(node.folders) == 1 else None
    is_wrapper = not node.images and only_child is not None and bool(only_child.folders)
    if not is_split_layout and is_wrapper:
        name = next(iter(node.folders))
        node, prefix = node.folders[name], f"{name}/"
        is_split_layout = any(name in node.folders for name in SPLITS)

    used_split = None
    if is_split_layout:
        if split not in node.folders:
            found = ", ".join(sorted(node.folders))
            raise DataError(
                f"Split folder not found: {source} has no '{prefix}{split}/' folder "
                f"(found: {found}). Add a {split}/ folder of class folders next to the others."
            )
        node, prefix, used_split = node.folders[split], f"{prefix}{split}/", split

    if not node.folders:
        location = f"{source}/{prefix.rstrip('/')}" if prefix else source
        raise DataError(f"No class folders found in {location}. {_IMAGE_FOLDER_HELP}.")
    return node, prefix, used_split


def _list_class_images(
    node: _Folder, prefix: str, source: str
) -> tuple[tuple[str, ...], list[tuple[str, int]]]:
    """Return the class names and ``(path, label)`` for every image, classes sorted by name."""
    classes = tuple(sorted(node.folders))
    entries: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        paths = list(node.folders[name].iter_images(f"{prefix}{name}/"))
        if not paths:
            raise DataError(
                f"Empty class folder: {source}/{prefix}{name} contains no image files "
                f"(expected files ending in {', '.join(IMAGE_EXTENSIONS)})."
            )
        entries.extend((path, label) for path in paths)
    return classes, entries


def _decode_image(
    data: bytes, describe: str, expected_size: tuple[int, int] | None
) -> np.ndarray:
    """Decode one image to an ``(H, W, 3)`` uint8 array; ``expected_size`` is (height, width)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if expected_size is not None and (height, width) != expected_size:
                raise DataError(
                    f"Wrong image size: {describe} is {width}×{height} pixels, expected "
                    f"{expected_size[1]}×{expected_size[0]} (width×height). Resize the "
                    f"images or use the task whose resolution matches them."
                )
            return np.asarray(image.convert("RGB"))
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        # Pillow raises UnidentifiedImageError (an OSError) for unknown data and OSError for
        # truncated files. SyntaxError and ValueError are caught for plugins that raise them.
        raise DataError(
            f"Failed to decode image {describe}: {error}. Expected a complete image file "
            f"({', '.join(IMAGE_EXTENSIONS)}); replace or remove the file."
        ) from error


def _decode_all(
    entries: list[tuple[str, int]],
    read: Callable[[str], bytes],
    describe: Callable[[str], str],
    expected_size: tuple[int, int] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    first_path = entries[0][0]
    first = _decode_image(read(first_path), describe(first_path), expected_size)
    if expected_size is None:
        # Without a requested size every image must match the first one, so they stack.
        expected_size = first.shape[:2]

    pixels = np.empty((len(entries), *first.shape), dtype=np.uint8)
    pixels[0] = first
    for index, (path, _) in enumerate(entries[1:], start=1):
        pixels[index] = _decode_image(read(path), describe(path), expected_size)

    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([label for _, label in entries], dtype=torch.int64)
    return images, labels


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"invalid split {split!r}; expected one of {', '.join(SPLITS)}")


def load_image_folder(
    path: Path, split: str = "train", image_size: tuple[int, int] | None = None
) -> ImageDataset:
    """Load a folder or ``.zip`` file of class folders (ImageFolder layout) into memory.

    The class folders may sit at the root, under ``train/`` and ``test/`` split folders
    (``split`` picks one), or under one wrapper folder on top of either. Class indices follow
    the sorted folder names. Images below a class folder are read recursively and converted to
    RGB; files without an image extension and hidden files are skipped. ``image_size`` is
    ``(height, width)``; without it, every image must have the size of the first one.

    Raises:
        DataError: the path is missing, the zip is corrupt, a class folder is empty, or an
            image cannot be decoded or has the wrong size. The message names the file.
    """
    _check_split(split)
    path = Path(path)
    if not path.exists():
        raise DataError(f"Image data not found: {path} does not exist. {_IMAGE_FOLDER_HELP}.")
    if path.is_dir():
        return _load_directory(path, split, image_size)
    if zipfile.is_zipfile(path) or path.suffix.lower() == ".zip":
        return _load_zip(path, split, image_size)
    raise DataError(
        f"Unsupported data file: {path} is neither a folder nor a .zip file. {_IMAGE_FOLDER_HELP}."
    )


def _load_directory(
    path: Path, split: str, image_size: tuple[int, int] | None
) -> ImageDataset:
    root = path.resolve()
    files: list[str] = []
    folders: list[str] = []
    latest_mtime_ns = root.stat().st_mtime_ns
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [name for name in dirnames if not _is_ignored(name)]
        relative = Path(directory).relative_to(root).as_posix()
        prefix = "" if relative == "." else f"{relative}/"
        folders.extend(prefix + name for name in dirnames)
        for name in filenames:
            if _is_ignored(name) or not _is_image(name):
                continue
            files.append(prefix + name)
            mtime_ns = os.stat(os.path.join(directory, name)).st_mtime_ns
            latest_mtime_ns = max(latest_mtime_ns, mtime_ns)

    # The key changes when any image is added, removed or rewritten (its mtime changes).
    key = ("folder", str(root), latest_mtime_ns, len(files), split, image_size)

    def load() -> ImageDataset:
        started = time.perf_counter()
        tree = _build_tree(files, folders)
        node, prefix, used_split = _locate_class_folders(tree, split, str(root))
        classes, entries = _list_class_images(node, prefix, str(root))
        images, labels = _decode_all(
            entries,
            read=lambda relative: (root / relative).read_bytes(),
            describe=lambda relative: str(root / relative),
            expected_size=image_size,
        )
        _log_loaded(len(images), classes, f"{root}/{prefix}", started)
        return ImageDataset(images, labels, classes, str(root), used_split)

    return _cached(key, load)


def _load_zip(path: Path, split: str, image_size: tuple[int, int] | None) -> ImageDataset:
    resolved = path.resolve()
    stat = resolved.stat()
    key = ("zip", str(resolved), stat.st_mtime_ns, stat.st_size, split, image_size)

    def load() -> ImageDataset:
        started = time.perf_counter()
        try:
            archive = zipfile.ZipFile(resolved)
        except (zipfile.BadZipFile, OSError) as error:
            raise DataError(
                f"Failed to open zip file {resolved}: {error}. Expected a valid .zip file of "
                f"class folders; recreate the archive."
            ) from error

        with archive:
            members = archive.infolist()
            files = [info.filename for info in members if not info.is_dir()]
            folders = [info.filename.rstrip("/") for info in members if info.is_dir()]
            tree = _build_tree(files, folders)
            node, prefix, used_split = _locate_class_folders(tree, split, str(resolved))
            classes, entries = _list_class_images(node, prefix, str(resolved))

            def read(member: str) -> bytes:
                try:
                    return archive.read(member)
                except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
                    raise DataError(
                        f"Failed to read {member} from zip file {resolved}: {error}. The zip is "
                        f"corrupt or truncated; recreate the archive."
                    ) from error

            images, labels = _decode_all(
                entries,
                read=read,
                describe=lambda member: f"{member} in zip file {resolved}",
                expected_size=image_size,
            )
        _log_loaded(len(images), classes, f"{resolved}:{prefix}", started)
        return ImageDataset(images, labels, classes, str(resolved), used_split)

    return _cached(key, load)


def _log_loaded(count: int, classes: tuple[str, ...], where: str, started: float) -> None:
    logger.info(
        "loaded %d images of %d classes from %s in %.1f s",
        count,
        len(classes),
        where,
        time.perf_counter() - started,
    )


def contains_images(path: Path) -> bool:
    """Return whether a folder contains at least one image file at any depth, or is a zip."""
    path = Path(path)
    if path.is_file():
        return zipfile.is_zipfile(path)
    for _, dirnames, filenames in os.walk(path):
        dirnames[:] = [name for name in dirnames if not _is_ignored(name)]
        if any(_is_image(name) and not _is_ignored(name) for name in filenames):
            return True
    return False


# ---------------------------------------------------------------------------------------------
# CIFAR-10 python pickles


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that builds only numpy arrays, so a crafted batch file cannot run code."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        # Protocol-2 pickles written by Python 3 store bytes through _codecs.encode.
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    try:
        with path.open("rb") as file:
            content = _ArrayUnpickler(file, encoding="bytes").load()
    except FileNotFoundError as error:
        raise DataError(
            f"CIFAR-10 file not found: {path}. A cifar-10-batches-py folder contains "
            f"{', '.join(CIFAR10_BATCHES['train'])}, test_batch and batches.meta; extract the "
            f"complete archive or set data.download: true."
        ) from error
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError) as error:
        raise DataError(
            f"Failed to read CIFAR-10 file {path}: {error}. Expected a pickle from the official "
            f"cifar-10-python.tar.gz; extract the archive again."
        ) from error
    if not isinstance(content, dict):
        raise DataError(
            f"Invalid CIFAR-10 file {path}: contains a {type(content).__name__}, expected a dict."
        )
    return content


def find_cifar10_batches(root: Path) -> Path | None:
    """Return the ``cifar-10-batches-py`` folder at or directly inside ``root``, if any."""
    root = Path(root)
    if (root / "batches.meta").is_file() or (root / "test_batch").is_file():
        return root
    candidate = root / CIFAR10_FOLDER
    return candidate if candidate.is_dir() else None


def load_cifar10_batches(folder: Path, split: str = "train") -> ImageDataset:
    """Load one split of an extracted ``cifar-10-batches-py`` folder (or a folder containing it).

    ``data_batch_1`` to ``data_batch_5`` form the train split and ``test_batch`` the test
    split. Each row of ``b"data"`` contains 1024 red, then 1024 green, then 1024 blue values of a
    32×32 image in row-major order. Class names come from ``batches.meta``.

    Raises:
        DataError: a file is missing, cannot be unpickled, or has the wrong shape.
    """
    _check_split(split)
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"CIFAR-10 data not found: {folder} does not exist. {_CIFAR10_HELP}.")
    batches_folder = find_cifar10_batches(folder)
    if batches_folder is None:
        raise DataError(
            f"CIFAR-10 batches not found: {folder} contains neither batches.meta nor a "
            f"{CIFAR10_FOLDER} folder. {_CIFAR10_HELP}."
        )
    batches_folder = batches_folder.resolve()
    paths = [batches_folder / "batches.meta"]
    paths += [batches_folder / name for name in CIFAR10_BATCHES[split]]
    mtimes = tuple(path.stat().st_mtime_ns if path.exists() else None for path in paths)
    key = ("cifar10-batches", str(batches_folder), mtimes, split)

    def load() -> ImageDataset:
        started = time.perf_counter()
        classes = _read_cifar10_classes(paths[0])
        images, labels = [], []
        for path in paths[1:]:
            batch_images, batch_labels = _read_cifar10_batch(path, len(classes))
            images.append(batch_images)
            labels.append(batch_labels)
        dataset = ImageDataset(
            images=torch.cat(images), labels=torch.cat(labels), classes=classes,
            source=str(batches_folder), split=split,
        )
        _log_loaded(len(dataset), classes, f"{batches_folder} ({split})", started)
        return dataset

    return _cached(key, load)


def _read_cifar10_classes(path: Path) -> tuple[str, ...]:
    meta = _read_pickle(path)
    names = meta.get(b"label_names")
    if not isinstance(names, list) or not names:
        raise DataError(f"Invalid CIFAR-10 file {path}: missing the b'label_names' list.")
    return tuple(name.decode() if isinstance(name, bytes) else str(name) for name in names)


def _read_cifar10_batch(path: Path, class_count: int) -> tuple[torch.Tensor, torch.Tensor]:
    batch = _read_pickle(path)
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        found = data.shape if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(
            f"Invalid CIFAR-10 batch {path}: b'data' is {found}, expected a uint8 array of "
            f"shape (N, 3072)."
        )
    if labels is None or len(labels) != len(data):
        found = "missing" if labels is None else f"{len(labels)} labels"
        raise DataError(
            f"Invalid CIFAR-10 batch {path}: b'labels' is {found}, expected {len(data)} labels."
        )
    label_tensor = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    in_range = (label_tensor >= 0) & (label_tensor < class_count)
    if not bool(in_range.all()):
        raise DataError(
            f"Invalid CIFAR-10 batch {path}: labels fall outside 0..{class_count - 1}, the "
            f"classes listed in batches.meta."
        )
    images = torch.from_numpy(np.ascontiguousarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32))
    return images, label_tensor


# ---------------------------------------------------------------------------------------------
# CIFAR-10 download


def download_cifar10(root: Path, *, url: str | None = None, md5: str | None = None) -> Path:
    """Download and extract the official CIFAR-10 python archive into ``root``.

    Reuses ``root/cifar-10-python.tar.gz`` when its md5 matches. Several processes may call
    this at once: each downloads to its own temporary file and the first finished extraction
    wins. ``url`` and ``md5`` default to ``CIFAR10_URL`` and ``CIFAR10_MD5``.

    Returns:
        The extracted ``root/cifar-10-batches-py`` folder.

    Raises:
        DataError: the download fails, its md5 does not match, or the archive is unsafe or
            corrupt.
    """
    url = url or CIFAR10_URL
    md5 = md5 or CIFAR10_MD5
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    archive = root / CIFAR10_ARCHIVE
    target = root / CIFAR10_FOLDER

    if archive.is_file() and _md5_of(archive) == md5:
        logger.info("reusing %s (md5 matches)", archive)
    else:
        _download(url, archive, md5)

    if not target.is_dir():
        _extract_cifar10(archive, root, target)
    return target


def _md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, archive: Path, md5: str) -> None:
    partial = archive.with_name(f"{archive.name}.{os.getpid()}.part")
    logger.info("downloading CIFAR-10 from %s to %s", url, archive)
    started = time.perf_counter()
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as file:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                file.write(chunk)
    except (urllib.error.URLError, OSError) as error:
        partial.unlink(missing_ok=True)
        raise DataError(
            f"Download failed: could not fetch {url} to {archive}: {error}. Check network "
            f"access, or download and extract the archive elsewhere and point data.root at "
            f"the cifar-10-batches-py folder."
        ) from error

    found = digest.hexdigest()
    if found != md5:
        partial.unlink(missing_ok=True)
        raise DataError(
            f"Download corrupt: {url} has md5 {found}, expected {md5}. The partial file was "
            f"deleted; retry, or download the archive elsewhere and point data.root at the "
            f"extracted cifar-10-batches-py folder."
        )
    os.replace(partial, archive)
    logger.info("downloaded %s in %.0f s", archive, time.perf_counter() - started)


def _safe_members(tar: tarfile.TarFile, archive: Path, destination: Path) -> list[tarfile.TarInfo]:
    """Return the archive's members, raising unless each is a file or folder inside destination."""
    destination = destination.resolve()
    members = tar.getmembers()
    for member in members:
        name = PurePosixPath(member.name)
        outside = name.is_absolute() or ".." in name.parts
        if not outside:
            outside = not (destination / name).resolve().is_relative_to(destination)
        if outside or not (member.isfile() or member.isdir()):
            raise DataError(
                f"Unsafe archive {archive}: member {member.name!r} is a link, a device or a "
                f"path outside the extraction folder. Delete the file and download it again."
            )
    return members


def _extract_cifar10(archive: Path, root: Path, target: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = _safe_members(tar, archive, staging)
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(staging, members=members, filter="data")
                else:
                    tar.extractall(staging, members=members)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
            raise DataError(
                f"Failed to extract {archive}: {error}. Delete the file and download it again."
            ) from error

        extracted = staging / CIFAR10_FOLDER
        if not extracted.is_dir():
            raise DataError(
                f"Invalid archive {archive}: it contains no {CIFAR10_FOLDER} folder. Delete "
                f"the file and download it again."
            )
        try:
            extracted.rename(target)
        except OSError:
            # Another process finished first; its copy came from an archive with the same md5.
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("extracted %s to %s", archive, target)


# ---------------------------------------------------------------------------------------------
# CIFAR-10 from any supported source


def load_cifar10(
    root: Path | None, split: str = "train", *, download: bool = False
) -> ImageDataset:
    """Load one split of CIFAR-10 from an image folder, a zip, or the official pickles.

    ``root`` may be a folder or ``.zip`` file of class folders (see ``load_image_folder``), a
    ``cifar-10-batches-py`` folder, or a folder containing one. With ``download``, a missing
    root or a root without images or pickles gets the official archive downloaded into it.
    Image-folder data must be 32×32.

    Raises:
        DataError: the data is missing, corrupt or of the wrong size; the message names the
            file and how to provide the data.
    """
    _check_split(split)
    if root is None:
        raise DataError(f"CIFAR-10 data root not set: data.root is empty. {_CIFAR10_HELP}.")
    root = Path(root)

    if not root.exists() and not download:
        raise DataError(f"CIFAR-10 data not found: {root} does not exist. {_CIFAR10_HELP}.")
    if root.is_file():
        return load_image_folder(root, split, CIFAR10_IMAGE_SIZE)

    if root.exists() and find_cifar10_batches(root) is not None:
        return load_cifar10_batches(root, split)
    if root.exists() and contains_images(root):
        return load_image_folder(root, split, CIFAR10_IMAGE_SIZE)
    if download:
        return load_cifar10_batches(download_cifar10(root), split)
    raise DataError(
        f"CIFAR-10 data not found: {root} contains no image files and no {CIFAR10_FOLDER} "
        f"folder. {_CIFAR10_HELP}."
    )
