"""Inception Score, FID and KID of generated images through torch-fidelity's Inception-v3.

The feature extractor is torch-fidelity's ``inception-v3-compat``, the port of the TensorFlow
Inception graph that the original IS, FID and KID code used, so values match published numbers
when the official weights are used. The metrics are torch-fidelity 0.4.0's own functions:

- IS from the ``logits_unbiased`` features, 10 splits, shuffled with the evaluation seed;
- FID from the 2048-dimensional pool features of the generated and the real images;
- KID from the same features, 100 subsets of ``min(1000, N_generated, N_real)`` samples, drawn
  with the evaluation seed.

Real-image features are computed once per (reference images, weights) pair and cached, in the
process and as a file under the cache folder, so every later evaluation only runs the generated
images through the network.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.utils import create_feature_extractor

from harness.errors import HarnessInputError

logger = logging.getLogger(__name__)

FEATURE_EXTRACTOR = "inception-v3-compat"
POOL_FEATURES = "2048"
LOGIT_FEATURES = "logits_unbiased"
ISC_SPLITS = 10
KID_SUBSETS = 100
KID_MAX_SUBSET_SIZE = 1000
MIN_SAMPLES = ISC_SPLITS
"""Fewest generated images an evaluation takes: IS needs at least one image per split."""

METRIC_NAMES = ("inception_score", "inception_score_std", "fid", "kid", "kid_std")


def default_cache_dir() -> Path:
    """Return ``$TORCH_HOME/harness_fidelity``, beside torch's hub folder."""
    return Path(torch.hub.get_dir()).parent / "harness_fidelity"


INCEPTION_WEIGHTS_URL = URL_INCEPTION_V3
"""Download URL of the official weights, torch-fidelity 0.4.0's ``URL_INCEPTION_V3``."""


def official_weights_file() -> Path:
    """Return where torch hub caches the official weights: ``<hub dir>/checkpoints/<file name>``.

    torch-fidelity 0.4.0 loads them through ``torch.hub.load_state_dict_from_url``, which reads
    this file when it exists and downloads it otherwise.
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(URL_INCEPTION_V3).name


def ensure_official_weights(option_path: str) -> Path:
    """Download the official Inception weights into torch hub's cache unless it contains them.

    ``option_path`` is the spec path of the ``inception_weights`` option, named in the error.

    Raises:
        HarnessInputError: the download failed, e.g. on a machine without network access.
    """
    target = official_weights_file()
    if target.is_file():
        return target

    logger.info("downloading the official Inception weights from %s to %s", INCEPTION_WEIGHTS_URL, target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # NOTE: urllib uses the socket's default timeout, unlimited unless set, so a network that
        # drops packets without refusing the connection can block this call.
        torch.hub.download_url_to_file(INCEPTION_WEIGHTS_URL, str(target), progress=False)
    except OSError as error:
        raise HarnessInputError(
            f"could not download the official Inception weights from {INCEPTION_WEIGHTS_URL} "
            f"({error}); download them elsewhere and set {option_path}=PATH to the local file, "
            f"or copy the file to {target}"
        ) from None
    return target


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Convert images in [-1, 1] to uint8 pixels in [0, 255], rounding to the nearest value."""
    return images.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class WeightsIdentity:
    """Identity of the Inception weights behind a feature: a file's sha256, or the official download."""

    path: str | None
    digest: str

    @property
    def backbone(self) -> str:
        """The backbone name recorded with every metric row."""
        if self.path is None:
            return FEATURE_EXTRACTOR
        return f"{FEATURE_EXTRACTOR} (weights {Path(self.path).name}, sha256 {self.digest[:12]})"


_digests: dict[tuple[str, int, int], str] = {}


def weights_identity(path: str | Path | None) -> WeightsIdentity:
    """Return the identity of the weights at ``path``; None means torch-fidelity's download.

    Raises:
        HarnessInputError: ``path`` does not name a readable file.
    """
    if path is None:
        return WeightsIdentity(None, "official")
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as error:
        raise HarnessInputError(
            f"Inception weights not found: {path} ({error.strerror}). Set the task option "
            f"inception_weights to a state_dict file of torch-fidelity's {FEATURE_EXTRACTOR}, "
            f"or leave it unset to download the official weights."
        ) from None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _digests:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _digests[key] = digest.hexdigest()
    return WeightsIdentity(str(path.resolve()), _digests[key])


class InceptionMetrics:
    """IS, FID and KID of uint8 images against one fixed set of real images.

    Args:
        real_images: uint8 ``(N, 3, H, W)`` reference images; their features are cached.
        weights: a state_dict file for ``inception-v3-compat``, or None for the official
            weights, which torch-fidelity downloads on first use.
        device: where the Inception network runs.
        batch_size: images per forward pass.
        cache_dir: folder of the cached real-image features; None disables the file cache.
    """

    def __init__(
        self,
        real_images: torch.Tensor,
        weights: str | Path | None,
        device: torch.device,
        batch_size: int,
        cache_dir: Path | None,
    ) -> None:
        self.identity = weights_identity(weights)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.real_images = real_images
        self._real_features: dict[str, torch.Tensor] | None = None

    @property
    def real_count(self) -> int:
        return len(self.real_images)

    def compute(self, fake_images: torch.Tensor, seed: int) -> dict[str, float]:
        """Return IS (mean and std over splits), FID and KID (mean and std over subsets).

        ``fake_images`` are uint8 ``(N, 3, H, W)`` with ``N >= MIN_SAMPLES``. ``seed`` fixes
        the IS shuffle and the KID subsets. Torch's global RNG is not used.
        """
        if len(fake_images) < MIN_SAMPLES:
            raise ValueError(f"IS needs at least {MIN_SAMPLES} images, got {len(fake_images)}")
        return metrics_from_features(self.features(fake_images), self.real_features(), seed)

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the pool and logit features of uint8 images, on the CPU in float32."""
        extractor = self._feature_extractor()
        chunks: dict[str, list[torch.Tensor]] = {POOL_FEATURES: [], LOGIT_FEATURES: []}
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = images[start : start + self.batch_size].to(self.device, non_blocking=True)
                outputs = extractor.convert_features_tuple_to_dict(extractor(batch))
                for name in chunks:
                    chunks[name].append(outputs[name].cpu())
        return {name: torch.cat(parts) for name, parts in chunks.items()}

    def real_features(self) -> dict[str, torch.Tensor]:
        """Return the features of the real images, from the cache when they were computed before."""
        if self._real_features is not None:
            return self._real_features
        key = self._cache_key()
        cached = _memory_cache.get(key)
        if cached is None and self.cache_dir is not None:
            cached = _read_cached(self.cache_dir / f"{key}.pt")
        if cached is None:
            started = time.perf_counter()
            cached = self.features(self.real_images)
            logger.info("computed Inception features of %d real images in %.1f s", self.real_count,
                        time.perf_counter() - started)
            if self.cache_dir is not None:
                _write_cached(cached, self.cache_dir / f"{key}.pt")
        _remember(key, cached)
        self._real_features = cached
        return cached

    def _cache_key(self) -> str:
        digest = hashlib.sha256()
        digest.update(str(tuple(self.real_images.shape)).encode())
        digest.update(self.real_images.contiguous().cpu().numpy().tobytes())
        digest.update(self.identity.digest.encode())
        return f"real-{FEATURE_EXTRACTOR}-{digest.hexdigest()[:24]}"

    def _feature_extractor(self):
        key = (self.identity.digest, str(self.device))
        if key not in _extractors:
            # The constructor initializes every layer from torch's global RNG before loading the
            # weights; the fork keeps that RNG, and so the training that follows, unchanged.
            # torch-fidelity 0.4.0 loads a weights file with weights_only=False, so only point
            # inception_weights at files you trust.
            with torch.random.fork_rng(devices=[]):
                extractor = create_feature_extractor(
                    FEATURE_EXTRACTOR,
                    [POOL_FEATURES, LOGIT_FEATURES],
                    cuda=False,
                    feature_extractor_weights_path=self.identity.path,
                    verbose=False,
                )
            _extractors[key] = extractor.to(self.device)
        return _extractors[key]


# Trials that a Ray worker runs one after another share the network and the real features.
_extractors: dict[tuple[str, str], torch.nn.Module] = {}
_memory_cache: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
MEMORY_CACHE_ENTRIES = 4
"""Reference feature sets kept in the process; each is about 120 MB for 10,000 images."""


def _remember(key: str, features: dict[str, torch.Tensor]) -> None:
    _memory_cache[key] = features
    _memory_cache.move_to_end(key)
    while len(_memory_cache) > MEMORY_CACHE_ENTRIES:
        _memory_cache.popitem(last=False)


def metrics_from_features(
    fake: dict[str, torch.Tensor], real: dict[str, torch.Tensor], seed: int
) -> dict[str, float]:
    """Return IS, FID and KID from the pool and logit features of generated and real images.

    IS uses only the generated images' logits. ``seed`` fixes the IS shuffle and KID subsets.
    """
    inception_score = isc_features_to_metric(
        fake[LOGIT_FEATURES], splits=ISC_SPLITS, shuffle=True, rng_seed=seed
    )
    fid = fid_statistics_to_metric(
        fid_features_to_statistics(fake[POOL_FEATURES]),
        fid_features_to_statistics(real[POOL_FEATURES]),
        verbose=False,
    )
    subset_size = min(KID_MAX_SUBSET_SIZE, len(fake[POOL_FEATURES]), len(real[POOL_FEATURES]))
    kid = kid_features_to_metric(
        fake[POOL_FEATURES], real[POOL_FEATURES], kid_subsets=KID_SUBSETS,
        kid_subset_size=subset_size, rng_seed=seed, verbose=False,
    )
    return {
        "inception_score": inception_score[KEY_METRIC_ISC_MEAN],
        "inception_score_std": inception_score[KEY_METRIC_ISC_STD],
        "fid": fid[KEY_METRIC_FID],
        "kid": kid[KEY_METRIC_KID_MEAN],
        "kid_std": kid[KEY_METRIC_KID_STD],
    }


def _read_cached(path: Path) -> dict[str, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        cached = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as error:
        logger.warning("ignoring unreadable feature cache %s (%s); computing the features again", path, error)
        return None
    if not isinstance(cached, dict) or set(cached) != {POOL_FEATURES, LOGIT_FEATURES}:
        logger.warning("ignoring feature cache %s: unexpected content; computing the features again", path)
        return None
    logger.info("loaded cached Inception features of the real images from %s", path)
    return cached


def _write_cached(features: dict[str, torch.Tensor], path: Path) -> None:
    """Write through a temporary file and a rename, so concurrent trials never read half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(features, file)
            os.replace(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)
    except OSError as error:
        logger.warning("could not write the feature cache %s (%s); the next run computes them again",
                       path, error)


def nonfinite_metrics() -> dict[str, float]:
    """Return the metrics of a generator whose output is not finite: no IS, infinite distances."""
    return {"inception_score": math.nan, "inception_score_std": math.nan, "fid": math.inf,
            "kid": math.inf, "kid_std": math.nan}
