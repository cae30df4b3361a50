"""Sample-quality metrics shared by the tasks: Gaussian feature statistics, Fréchet distance."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import scipy.linalg
import torch

logger = logging.getLogger(__name__)

# Largest imaginary part on the diagonal of sqrtm's result that is treated as round-off.
IMAGINARY_TOLERANCE = 1e-3


def gaussian_statistics(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the mean ``(D,)`` and the unbiased covariance ``(D, D)`` of ``(N, D)`` features.

    Both are float64 numpy arrays. ``N`` must be at least 2.
    """
    if isinstance(features, torch.Tensor):
        features = features.detach().to("cpu", torch.float64).numpy()
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"expected features of shape (N, D) with N >= 2, got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray, eps: float = 1e-6
) -> float:
    """Return the squared Fréchet (2-Wasserstein) distance between two Gaussians.

        d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^½)

    This is the formula of FID (Heusel et al. 2017), computed in float64. When Σ₁ Σ₂ is
    singular enough that its square root is not finite, ``eps`` is added to both diagonals.
    Round-off can make the square root slightly complex, so its real part is used. A warning
    is logged when the imaginary part of its diagonal exceeds ``IMAGINARY_TOLERANCE``. Tiny
    negative results from round-off are returned as 0.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    cov1 = np.atleast_2d(np.asarray(cov1, np.float64))
    cov2 = np.atleast_2d(np.asarray(cov2, np.float64))
    dim = mu1.shape[0]
    if mu2.shape != (dim,) or cov1.shape != (dim, dim) or cov2.shape != (dim, dim):
        raise ValueError(
            f"mismatched shapes: mu1 {mu1.shape}, cov1 {cov1.shape}, mu2 {mu2.shape}, "
            f"cov2 {cov2.shape}; expected (D,) means and (D, D) covariances"
        )

    covmean = _sqrtm_quiet(cov1 @ cov2)
    if not np.isfinite(covmean).all():
        logger.warning("sqrtm of the covariance product is not finite; adding %g to diagonals", eps)
        offset = np.eye(dim) * eps
        covmean = _sqrtm_quiet((cov1 + offset) @ (cov2 + offset))

    if np.iscomplexobj(covmean):
        largest_imaginary = float(np.abs(np.diagonal(covmean).imag).max())
        if largest_imaginary > IMAGINARY_TOLERANCE:
            logger.warning(
                "sqrtm of the covariance product has imaginary parts up to %.3g, "
                "so only its real part is used",
                largest_imaginary,
            )
        covmean = covmean.real

    difference = mu1 - mu2
    distance = difference @ difference + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean)
    return max(float(distance), 0.0)


def _sqrtm_quiet(matrix: np.ndarray) -> np.ndarray:
    # Covariances of fewer samples than dimensions are singular, and scipy warns on every such
    # call. The caller checks the result for non-finite values instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return scipy.linalg.sqrtm(matrix)
