"""The Jacobian of the training update field and its spectrum, taken through a method's own rule.

Training moves ``w = (φ, θ)`` by ``w ← w + η F(w)`` with ``F = −(d_φ, d_θ)``, where ``(d_φ, d_θ)``
are the method's descent directions on the losses of ``harness.trainer.game_losses``. The
Jacobian ``A = ∂F/∂w`` at a point decides local convergence. Its phase factor is
``ζ = max |Im λ| / |Re λ|`` and its conditioning factor ``τ = max |λ| / min |λ|`` over the
eigenvalues λ of A.

Autograd differentiates the directions that ``Method.directions(..., differentiable=True)``
returns, so no update rule is implemented twice. Small games get the dense Jacobian, one
vector–Jacobian product per row. Large ones get their extreme eigenvalues from ARPACK on the
operator ``x ↦ Aᵀx``, since Aᵀ has the same eigenvalues as A and a vector–Jacobian product is
one backward pass.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigs, gmres
from torch import nn

from harness.errors import HarnessInputError
from harness.tasks.base import Game
from harness.trial import TrialConfig
from methods.base import Method

logger = logging.getLogger(__name__)

DENSE_LIMIT = 128
"""Games with at most this many parameters get the dense Jacobian and every eigenvalue."""

RELATIVE_TOLERANCE = 100.0
"""Multiples of the dtype's machine epsilon, times max |λ|, below which a part counts as zero."""

GMRES_RESTART = 200
"""Krylov vectors GMRES keeps between restarts: full GMRES for games up to this size."""

SPECTRUM_COLUMNS = (
    "jacobian_phase_factor",
    "jacobian_conditioning_factor",
    "jacobian_max_abs_eigenvalue",
    "jacobian_min_abs_eigenvalue",
)
"""Result-row keys of a spectrum logged during training, in the order of ``Spectrum.metrics``."""


class JacobianError(HarnessInputError):
    """The update field or its Jacobian is not defined or not finite at the requested point."""


@dataclass(frozen=True)
class Spectrum:
    """Eigenvalues of an update-field Jacobian with its phase and conditioning factors.

    With ``exact`` the eigenvalues are the whole spectrum. Without it they are the ones of
    largest and of smallest magnitude that ARPACK found, so ``phase_factor`` is the maximum over
    those only (a lower bound of the true ζ), and ``conditioning_factor`` is NaN when no
    smallest-magnitude eigenvalue converged.
    """

    eigenvalues: np.ndarray
    phase_factor: float
    conditioning_factor: float
    exact: bool

    @property
    def max_abs(self) -> float:
        return float(np.abs(self.eigenvalues).max()) if self.eigenvalues.size else float("nan")

    @property
    def min_abs(self) -> float:
        return float(np.abs(self.eigenvalues).min()) if self.eigenvalues.size else float("nan")

    def metrics(self) -> dict[str, float]:
        """Return ζ, τ, max |λ| and min |λ| under the result-row keys of ``SPECTRUM_COLUMNS``."""
        # Without a converged smallest-magnitude eigenvalue, the smallest one found is not min |λ|.
        min_abs = float("nan") if math.isnan(self.conditioning_factor) else self.min_abs
        values = (self.phase_factor, self.conditioning_factor, self.max_abs, min_abs)
        return dict(zip(SPECTRUM_COLUMNS, values, strict=True))


def phase_factor(eigenvalues: np.ndarray, rtol: float) -> float:
    """Return ``max |Im λ| / |Re λ|``: infinite when an eigenvalue lies on the imaginary axis.

    Parts smaller than ``rtol · max |λ|`` count as zero, so rounding noise neither turns a real
    eigenvalue complex nor moves an imaginary one off the axis. Zero eigenvalues have no phase
    and are skipped; NaN when every eigenvalue is zero.
    """
    values = np.asarray(eigenvalues, dtype=complex)
    scale = np.abs(values).max(initial=0.0)
    if scale == 0:
        return float("nan")
    real = np.where(np.abs(values.real) <= rtol * scale, 0.0, np.abs(values.real))
    imag = np.where(np.abs(values.imag) <= rtol * scale, 0.0, np.abs(values.imag))
    nonzero = (real > 0) | (imag > 0)
    if (nonzero & (real == 0)).any():
        return float("inf")
    return float((imag[nonzero] / real[nonzero]).max())


def conditioning_factor(eigenvalues: np.ndarray, rtol: float) -> float:
    """Return ``max |λ| / min |λ|``: infinite when an eigenvalue is zero within ``rtol · max |λ|``."""
    magnitudes = np.abs(np.asarray(eigenvalues, dtype=complex))
    if magnitudes.size == 0 or magnitudes.max() == 0:
        return float("nan")
    smallest = magnitudes.min()
    if smallest <= rtol * magnitudes.max():
        return float("inf")
    return float(magnitudes.max() / smallest)


def tolerance_for(dtype: torch.dtype) -> float:
    return RELATIVE_TOLERANCE * torch.finfo(dtype).eps


def spectrum_of(matrix: np.ndarray, rtol: float) -> Spectrum:
    """Return the whole spectrum of a dense Jacobian."""
    eigenvalues = sort_eigenvalues(np.linalg.eigvals(matrix))
    return Spectrum(eigenvalues, phase_factor(eigenvalues, rtol), conditioning_factor(eigenvalues, rtol), exact=True)


def sort_eigenvalues(eigenvalues: np.ndarray) -> np.ndarray:
    """Order by magnitude, largest first, then by imaginary part, positive first."""
    values = np.asarray(eigenvalues, dtype=complex)
    order = np.lexsort((-values.imag, -np.abs(values)))
    return values[order]


class UpdateField:
    """``F(w) = −(d_φ, d_θ)`` at the game's current parameters, kept with its autograd graph.

    One pair of batches is drawn when the field is built, and every Jacobian product reuses its
    graph, so all of them see the same samples. The losses are those of the training loop
    (``harness.trainer.game_losses``); ``loss`` selects the saturating or non-saturating form.
    """

    def __init__(self, method: Method, game: Game, gamma: float, batch_size: int,
                 loss: str = "saturating") -> None:
        from harness.trainer import game_losses, trainable_parameters

        self.game = game
        self.params_g = trainable_parameters(game.generator)
        self.params_d = trainable_parameters(game.discriminator)
        self.params = [*self.params_g, *self.params_d]
        self.size = sum(p.numel() for p in self.params)
        self.dtype = self.params[0].dtype

        loss_g, loss_d = game_losses(game, batch_size, loss)
        if not bool(torch.isfinite(loss_g) & torch.isfinite(loss_d)):
            raise JacobianError(f"the losses are not finite at this point{self._cause()}")

        directions_g, directions_d = method.directions(
            loss_g, loss_d, self.params_g, self.params_d, gamma, differentiable=True
        )
        self.values = -torch.cat([d.reshape(-1) for d in [*directions_g, *directions_d]])
        if not bool(torch.isfinite(self.values).all()):
            raise JacobianError(f"the update field of {method.name} is not finite at this point{self._cause()}")

    def vjp(self, vector: torch.Tensor) -> torch.Tensor:
        """Return ``Aᵀ vector``, the vector–Jacobian product ``vectorᵀ A`` as a flat tensor."""
        if not self.values.requires_grad:
            return torch.zeros(self.size, dtype=self.dtype, device=self.values.device)
        grads = torch.autograd.grad(
            self.values, self.params, grad_outputs=vector, retain_graph=True, allow_unused=True
        )
        return torch.cat([
            (torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, self.params, strict=True)
        ])

    def jacobian(self) -> torch.Tensor:
        """Return the dense ``A = ∂F/∂w``, one vector–Jacobian product per row."""
        basis = torch.eye(self.size, dtype=self.dtype, device=self.values.device)
        matrix = torch.stack([self.vjp(row) for row in basis])
        if not bool(torch.isfinite(matrix).all()):
            raise JacobianError(f"the Jacobian is not finite at this point{self._cause()}")
        return matrix

    def operator(self) -> LinearOperator:
        """Return ``x ↦ Aᵀx`` as a float64 SciPy operator, computed without forming A."""
        device = self.values.device

        def matvec(x: np.ndarray) -> np.ndarray:
            vector = torch.as_tensor(np.ascontiguousarray(x).reshape(-1), device=device).to(self.dtype)
            product = self.vjp(vector).detach().to("cpu", torch.float64).numpy()
            if not np.isfinite(product).all():
                raise JacobianError(f"a Jacobian product is not finite at this point{self._cause()}")
            return product

        return LinearOperator((self.size, self.size), matvec=matvec, dtype=np.float64)

    def _cause(self) -> str:
        """Return a clause naming a spectrally normalized weight of zero norm, else a generic one."""
        names = zero_spectral_norm_weights([self.game.generator, self.game.discriminator])
        if not names:
            return ": a value overflows or is divided by zero there"
        return (
            f": spectral normalization divides the weight {names[0]} by its spectral norm, which is 0 "
            "there (θ = 0), so this rule has no Jacobian at this point"
        )


def zero_spectral_norm_weights(modules: Sequence[nn.Module]) -> list[str]:
    """Return the names of the spectrally normalized weights whose entries are all zero."""
    names = []
    for module in modules:
        for name, sub in module.named_modules():
            parametrizations = getattr(sub, "parametrizations", None)
            if parametrizations is None or "weight" not in parametrizations:
                continue
            if not bool(parametrizations["weight"].original.detach().abs().sum() > 0):
                names.append(f"{name or type(sub).__name__}.weight")
    return names


def dense_spectrum(field: UpdateField) -> Spectrum:
    matrix = field.jacobian().detach().to("cpu", torch.float64).numpy()
    return spectrum_of(matrix, tolerance_for(field.dtype))


def extreme_eigenvalues(field: UpdateField, count: int, *, seed: int = 0, maxiter: int = 300,
                        max_solve_products: int = 2_000) -> Spectrum:
    """Return ARPACK's ``count`` largest- and ``count`` smallest-magnitude eigenvalues of A.

    Both runs work on the operator ``x ↦ Aᵀx``. The largest come from ``which="LM"``. The
    smallest come from shift-invert at 0: ARPACK finds the largest eigenvalues of A⁻ᵀ, and GMRES
    applies A⁻ᵀ with products only. Plain ``which="SM"`` does not converge on real networks,
    whose eigenvalues crowd near zero. The solves stop after ``max_solve_products`` products in
    all. When they stop, or when GMRES does not converge because A is singular or nearly so, the
    smallest are missing, τ is NaN and a warning is logged. ARPACK's relative tolerance is ten machine
    epsilons of the parameters' dtype for the largest and its square root for the smallest.
    """
    size = field.size
    if size < 3:
        return dense_spectrum(field)
    count = max(1, min(count, size - 2))
    operator = field.operator()
    start = np.random.default_rng(seed).standard_normal(size)
    tol = 10 * torch.finfo(field.dtype).eps

    largest = _arpack(operator, count, start, tol, maxiter)
    if largest.size == 0:
        raise JacobianError(f"ARPACK found no eigenvalue of largest magnitude within {maxiter} restarts")
    # GMRES cannot reach a residual of a few epsilons, so the inverse runs at √ε instead.
    inverse_tol = math.sqrt(torch.finfo(field.dtype).eps)
    smallest = _smallest_by_shift_invert(operator, count, start, inverse_tol, maxiter, max_solve_products)

    rtol = tolerance_for(field.dtype)
    found = sort_eigenvalues(np.concatenate([largest, smallest]))
    conditioning = float(np.abs(largest).max() / np.abs(smallest).min()) if smallest.size else float("nan")
    return Spectrum(found, phase_factor(found, rtol), conditioning, exact=False)


class _SolveFailed(Exception):
    """GMRES did not reach its tolerance, or the product budget ran out."""


def _arpack(operator: LinearOperator, count: int, start: np.ndarray, tol: float, maxiter: int,
            **shift_invert) -> np.ndarray:
    try:
        return eigs(operator, k=count, which="LM", v0=start, tol=tol, maxiter=maxiter,
                    return_eigenvectors=False, **shift_invert)
    except ArpackNoConvergence as error:
        logger.warning("ARPACK converged for %d of %d eigenvalues", len(error.eigenvalues), count)
        return np.asarray(error.eigenvalues, dtype=complex)


def _smallest_by_shift_invert(operator: LinearOperator, count: int, start: np.ndarray, tol: float,
                              maxiter: int, max_products: int) -> np.ndarray:
    size = operator.shape[0]
    restart = min(size, GMRES_RESTART)
    used = 0

    def solve(rhs: np.ndarray) -> np.ndarray:
        nonlocal used
        budget = max_products - used
        if budget < restart:
            raise _SolveFailed(f"the budget of {max_products} Jacobian products ran out")
        counted = _CountingOperator(operator)
        # GMRES works to 10× ARPACK's tolerance, so the inverse is accurate enough for ARPACK.
        solution, info = gmres(counted, rhs, rtol=tol / 10, restart=restart, maxiter=budget // restart)
        used += counted.products
        if info != 0:
            raise _SolveFailed(f"GMRES did not converge within {counted.products} products (A may be singular)")
        return solution

    inverse = LinearOperator(operator.shape, matvec=solve, dtype=np.float64)
    try:
        return _arpack(operator, count, start, tol, maxiter, sigma=0.0, OPinv=inverse)
    except _SolveFailed as error:
        logger.warning("no smallest-magnitude eigenvalues: %s", error)
        return np.zeros(0, dtype=complex)


class _CountingOperator(LinearOperator):
    """An operator that counts its products, so that GMRES can be held to a budget."""

    def __init__(self, operator: LinearOperator) -> None:
        super().__init__(dtype=operator.dtype, shape=operator.shape)
        self.operator = operator
        self.products = 0

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        self.products += 1
        return self.operator.matvec(x)


def estimate_spectrum(field: UpdateField, count: int, *, dense_limit: int = DENSE_LIMIT, seed: int = 0) -> Spectrum:
    """Return the dense spectrum for small games, else ARPACK's extreme eigenvalues."""
    if field.size <= dense_limit:
        return dense_spectrum(field)
    return extreme_eigenvalues(field, count, seed=seed)


@contextmanager
def preserved_state(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Restore torch's RNG streams and every buffer of ``modules`` on exit.

    Drawing the batches of a Jacobian and running the networks in training mode move the RNG,
    batch-norm running statistics and the power-iteration vectors of spectral normalization.
    Inside this block they may move, and training continues afterwards as if nothing ran.
    """
    buffers = [buffer for module in modules for buffer in module.buffers()]
    saved = [buffer.detach().clone() for buffer in buffers]
    devices = sorted({buffer.device.index for buffer in buffers if buffer.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            with torch.no_grad():
                for buffer, value in zip(buffers, saved, strict=True):
                    buffer.copy_(value)


def training_spectrum(method: Method, game: Game, gamma: float, batch_size: int, loss: str,
                      count: int, *, seed: int = 0) -> Spectrum:
    """Return the spectrum of a rule's update field at the game's current parameters.

    The field uses one fresh pair of batches of ``batch_size`` samples and the training loss.
    Games with at most ``DENSE_LIMIT`` parameters get every eigenvalue, larger ones ARPACK's
    ``count`` largest- and smallest-magnitude ones. Training state is left as it was.
    """
    with preserved_state([game.generator, game.discriminator]):
        field = UpdateField(method, game, gamma, batch_size, loss)
        return estimate_spectrum(field, count, seed=seed)


def checkpoint_spectrum(config: TrialConfig, checkpoint: Path) -> Spectrum:
    """Return the spectrum of a trial's update field at one of its trainer checkpoints.

    The trial is rebuilt from ``config``, which Ray Tune stores as the trial's ``params.json``.
    The checkpoint restores its parameters and RNG state. The field then uses the trial's rule,
    γ, loss and batch size, as ``train.spectrum_every`` does during training.
    """
    from harness.trainer import Trainer

    trainer = Trainer(config)
    trainer.load_checkpoint(checkpoint)
    return training_spectrum(trainer.method, trainer.game, config.gamma, config.batch_size, config.loss,
                             config.spectrum_eigenvalues, seed=config.seed)
