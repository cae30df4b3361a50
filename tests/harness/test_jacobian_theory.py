"""The update-field Jacobians of every rule at the simple GAN's equilibrium against closed forms.

The Jacobians come from autograd through the rules' own ``directions`` on the training losses.
The expected values are written out here from the appendix of Nie and Patel (UAI 2019,
arXiv 1806.09235). With ``S = σ²I + vvᵀ`` and ``β² = σ² + ‖v‖²`` the SimGD Jacobian is
``M = [[0, ½I], [−½I, −½S]]``. Each family of eigenvalues solves ``2λ² + pλ + q = 0``: once for
``p`` built from β² (eigenvectors with ``vᵀy₂ ≠ 0``) and ``n − 1`` times for ``p`` built from σ².
"""

import math

import numpy as np
import pytest
import torch

from harness.simple_gan import equilibrium_jacobian, game_jacobian, linear_game

V = [1.0, -0.5, 2.0]
SIGMA = 0.6
SIGMA2 = SIGMA**2
BETA2 = SIGMA2 + sum(x * x for x in V)
TOL = 1e-6


def roots(p: float, q: float) -> list[complex]:
    """Return both roots of ``2λ² + pλ + q = 0``."""
    root = np.sqrt(complex(p * p - 8 * q))
    return [(-p + root) / 4, (-p - root) / 4]


def family_spectrum(p_sigma: float, p_beta: float, q: float, n: int = len(V)) -> list[complex]:
    return roots(p_sigma, q) * (n - 1) + roots(p_beta, q)


def simgd_matrix(v=V, sigma2=SIGMA2) -> np.ndarray:
    n = len(v)
    scatter = sigma2 * np.eye(n) + np.outer(v, v)
    return np.block([[np.zeros((n, n)), 0.5 * np.eye(n)], [-0.5 * np.eye(n), -0.5 * scatter]])


def regularization(upper: float, lower: float, n: int = len(V)) -> np.ndarray:
    """Return ``Γ = [[I, upper·I], [lower·I, I]]``."""
    eye = np.eye(n)
    return np.block([[eye, upper * eye], [lower * eye, eye]])


def assert_same_spectrum(actual, expected, tol=TOL):
    """Match each expected eigenvalue to a distinct computed one within ``tol``."""
    remaining = list(np.asarray(actual, dtype=complex))
    assert len(remaining) == len(expected)
    for value in expected:
        distances = [abs(value - other) for other in remaining]
        nearest = int(np.argmin(distances))
        assert distances[nearest] < tol, f"no eigenvalue near {value}; computed {actual}"
        remaining.pop(nearest)


def jacobian(method, gamma, v=V, sigma=SIGMA, discriminator="linear"):
    matrix, spectrum = equilibrium_jacobian(method, gamma, v, sigma, discriminator)
    return matrix.numpy(), spectrum


def test_simgd_theorem_1():
    matrix, spectrum = jacobian("simgd", 0.0)

    np.testing.assert_allclose(matrix, simgd_matrix(), atol=TOL)
    assert_same_spectrum(spectrum.eigenvalues, family_spectrum(SIGMA2, BETA2, 0.5))


def test_simgd_phase_and_conditioning_factors():
    _, spectrum = jacobian("simgd", 0.0)

    assert spectrum.phase_factor == pytest.approx(math.sqrt((2 / SIGMA2) ** 2 - 1), abs=TOL)
    assert spectrum.conditioning_factor == pytest.approx(0.25 * (BETA2 + math.sqrt(BETA2**2 - 4)) ** 2, abs=TOL)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.0])
def test_gen_only_equation_25(gamma):
    matrix, spectrum = jacobian("gen_only", gamma)

    np.testing.assert_allclose(matrix, regularization(gamma / 2, 0.0) @ simgd_matrix(), atol=TOL)
    assert_same_spectrum(spectrum.eigenvalues, family_spectrum(SIGMA2 + gamma / 2, BETA2 + gamma / 2, 0.5))


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.0])
def test_disc_only_equation_27(gamma):
    matrix, spectrum = jacobian("disc_only", gamma)

    np.testing.assert_allclose(matrix, regularization(0.0, -gamma / 2) @ simgd_matrix(), atol=TOL)
    assert_same_spectrum(spectrum.eigenvalues, family_spectrum(SIGMA2 + gamma / 2, BETA2 + gamma / 2, 0.5))


def test_one_sided_factors_against_gamma():
    # While σ² + γ/2 < 2 the phase factor falls as γ grows, but the conditioning factor rises.
    gammas = [0.5, 1.0, 2.0, 3.0]
    for method in ("gen_only", "disc_only"):
        spectra = [jacobian(method, gamma)[1] for gamma in gammas]
        for gamma, spectrum in zip(gammas, spectra):
            shifted_sigma, shifted_beta = SIGMA2 + gamma / 2, BETA2 + gamma / 2
            want_zeta = math.sqrt((2 / shifted_sigma) ** 2 - 1)
            want_tau = (shifted_beta + math.sqrt(shifted_beta**2 - 4)) ** 2 / 4
            assert spectrum.phase_factor == pytest.approx(want_zeta, abs=TOL)
            assert spectrum.conditioning_factor == pytest.approx(want_tau, abs=TOL)
        taus = [s.conditioning_factor for s in spectra]
        assert taus == sorted(taus)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 4.0, 10.0])
def test_jare_theorem_3(gamma):
    matrix, spectrum = jacobian("jare", gamma)

    np.testing.assert_allclose(matrix, regularization(gamma / 2, -gamma / 2) @ simgd_matrix(), atol=TOL)
    q = gamma**2 / 8 + 0.5
    assert_same_spectrum(spectrum.eigenvalues, family_spectrum(SIGMA2 + gamma, BETA2 + gamma, q))


def corollary_3_zeta(gamma: float) -> float:
    if gamma >= 2 / SIGMA2 - SIGMA2 / 2:
        return 0.0
    return math.sqrt((gamma**2 + 4) / (SIGMA2 + gamma) ** 2 - 1)


def corollary_3_tau(gamma: float) -> float:
    # The appendix prints (35) as (√h₂ + √(h₂² − 1))²; the ratio of the two real roots of
    # 2λ² + (γ + β²)λ + γ²/8 + ½ = 0 is (√h₂ + √(h₂ − 1))², which is what this returns.
    h2 = (BETA2 + gamma) ** 2 / (gamma**2 + 4)
    return (math.sqrt(h2) + math.sqrt(h2 - 1)) ** 2 if h2 > 1 else 1.0


def test_jare_corollary_3_monotonic_fall():
    gammas = [2.0, 3.0, 5.0, 8.0, 13.0, 30.0, 100.0, 1000.0, 1e5]
    spectra = [jacobian("jare", gamma)[1] for gamma in gammas]
    zetas = [s.phase_factor for s in spectra]
    taus = [s.conditioning_factor for s in spectra]

    for gamma, zeta, tau in zip(gammas, zetas, taus):
        assert zeta == pytest.approx(corollary_3_zeta(gamma), abs=TOL)
        assert tau == pytest.approx(corollary_3_tau(gamma), abs=TOL)
    assert all(later <= earlier for earlier, later in zip(zetas, zetas[1:]))
    assert all(later < earlier for earlier, later in zip(taus, taus[1:]))
    assert zetas[-1] == 0.0
    assert taus[-1] < 1.03


def test_jare_phase_factor_falls_from_zero_gamma():
    # Below γ = 4/β² τ may rise, but ζ falls for every γ ≥ 0.
    gammas = [0.0, 0.1, 0.3, 1.0, 2.0, 4.0]
    zetas = [jacobian("jare", gamma)[1].phase_factor for gamma in gammas]

    for gamma, zeta in zip(gammas, zetas):
        assert zeta == pytest.approx(corollary_3_zeta(gamma), abs=TOL)
    assert all(later < earlier for earlier, later in zip(zetas, zetas[1:]))


@pytest.mark.parametrize("gamma", [0.1, 1.0, 10.0, 100.0])
def test_conopt_bound_30(gamma):
    simgd = simgd_matrix()
    matrix, spectrum = jacobian("conopt", gamma)
    simgd_abs = np.abs(np.linalg.eigvals(simgd))

    np.testing.assert_allclose(matrix, simgd - gamma * simgd.T @ simgd, atol=TOL * max(1.0, gamma))
    tau_simgd = simgd_abs.max() / simgd_abs.min()
    bound = tau_simgd * (1 + gamma * simgd_abs.max()) / (1 + gamma * simgd_abs.min())
    assert spectrum.conditioning_factor >= bound - TOL
    assert spectrum.conditioning_factor > tau_simgd


def test_appendix_b_linear_discriminator_zero_noise():
    for v in (0.5, 1.0, 5.0):
        matrix, spectrum = jacobian("simgd", 0.0, v=[v], sigma=0.0)

        np.testing.assert_allclose(matrix, [[0, 0.5], [-0.5, -0.5 * v * v]], atol=TOL)
        assert_same_spectrum(spectrum.eigenvalues, roots(v * v, 0.5))


def test_appendix_b_linear_discriminator_at_zero_mean():
    _, spectrum = jacobian("simgd", 0.0, v=[0.0], sigma=0.0)

    assert_same_spectrum(spectrum.eigenvalues, [0.5j, -0.5j])
    assert spectrum.phase_factor == math.inf


@pytest.mark.parametrize("v", [0.0, 0.5, 2.0, 5.0])
def test_appendix_b_full_rank_discriminator(v):
    matrix, spectrum = jacobian("simgd", 0.0, v=[v], sigma=0.0, discriminator="exp")

    e_v = math.exp(v)
    np.testing.assert_allclose(matrix, [[0, 0.5 * e_v], [-0.5 * e_v, -0.5 * e_v**2]], rtol=1e-12, atol=TOL)
    # Equation (20): λ = (−e^{2v} ± √(e^{4v} − 4e^{2v})) / 4.
    want = roots(e_v**2, 0.5 * e_v**2)
    assert_same_spectrum(spectrum.eigenvalues, want, tol=TOL * max(1.0, e_v**2))


def test_appendix_b_phase_factor_near_zero_mean():
    _, spectrum = jacobian("simgd", 0.0, v=[0.0], sigma=0.0, discriminator="exp")

    assert spectrum.phase_factor == pytest.approx(math.sqrt(3), abs=TOL)


def test_appendix_b_conditioning_at_v_5():
    # Linear D: τ = (25 + √621)² / 4, about 623, of order v⁴. Full-rank D: τ of order e^{2v}
    # (about 2.2·10⁴ at v = 5; the appendix states Ω(10⁵)).
    _, linear = jacobian("simgd", 0.0, v=[5.0], sigma=0.0)
    _, full_rank = jacobian("simgd", 0.0, v=[5.0], sigma=0.0, discriminator="exp")

    assert linear.conditioning_factor == pytest.approx((25 + math.sqrt(621)) ** 2 / 4, rel=1e-9)
    a, b = math.exp(10), math.sqrt(math.exp(20) - 4 * math.exp(10))
    assert full_rank.conditioning_factor == pytest.approx((a + b) / (a - b), rel=1e-6)
    assert 2.2e4 < full_rank.conditioning_factor < 2.21e4


def random_linear_game(gen_params: int, disc_params: int, dim: int = 4, seed: int = 3):
    rng = torch.Generator().manual_seed(seed)
    mixing = torch.randn(dim, gen_params, generator=rng, dtype=torch.float64)
    features = torch.randn(disc_params, dim, generator=rng, dtype=torch.float64)
    phi_star = torch.randn(gen_params, generator=rng, dtype=torch.float64)
    sigma = 0.3
    # Lemma 3's P = ∇²_φθ f and Q = ∇²_θθ f, with g₂'(0) = −½ and g₁''(0) + g₂''(0) = −½.
    p = -0.5 * (mixing.T @ features.T).numpy()
    mean = (mixing @ phi_star).numpy()
    q = -0.5 * features.numpy() @ (sigma**2 * np.eye(dim) + np.outer(mean, mean)) @ features.numpy().T
    return linear_game(mixing, features, phi_star, sigma), p, q


@pytest.mark.parametrize("shape", [(3, 2), (2, 2), (2, 3)])
def test_jare_theorem_5_jacobian(shape):
    game, p, q = random_linear_game(*shape)
    gamma = 7.0
    simgd = np.block([[np.zeros((shape[0], shape[0])), -p], [p.T, q]])
    gamma_matrix = np.block([[np.eye(shape[0]), -gamma * p], [gamma * p.T, np.eye(shape[1])]])

    matrix, _ = game_jacobian("simgd", 0.0, game)
    np.testing.assert_allclose(matrix.numpy(), simgd, atol=TOL)
    matrix, _ = game_jacobian("jare", gamma, game)
    np.testing.assert_allclose(matrix.numpy(), gamma_matrix @ simgd, atol=TOL * gamma)


@pytest.mark.parametrize("shape", [(3, 2), (2, 2), (2, 3)])
def test_jare_theorem_5_large_gamma_limit(shape):
    game, p, _ = random_linear_game(*shape)
    limit = -np.concatenate([np.linalg.eigvalsh(p @ p.T), np.linalg.eigvalsh(p.T @ p)])
    scale = np.abs(limit).max()

    errors = []
    for gamma in (1e4, 1e6, 1e8):
        _, spectrum = game_jacobian("jare", gamma, game)
        scaled = spectrum.eigenvalues / gamma
        assert_same_spectrum(scaled, limit, tol=0.05 * scale)
        errors.append(max(min(abs(value - scaled)) for value in limit) / scale)

    # −γλ(PPᵀ) and −γλ(PᵀP) share their nonzero values, and the limit matrix has Jordan blocks
    # there, so the scaled eigenvalues converge like γ^(−1/2), not γ^(−1): about 10× per 100× γ.
    assert errors[1] < errors[0] / 5
    assert errors[2] < errors[1] / 5
    assert errors[2] < 1e-3


def test_jare_theorem_5_limit_at_rounding_scale():
    # At γ = 1e16 the O(1) part of A is below float64 rounding of the O(γ) part, so A/γ is the
    # limit matrix and its eigenvalues are −λ(PPᵀ) and −λ(PᵀP) to 1e-6.
    game, p, _ = random_linear_game(3, 2)
    limit = -np.concatenate([np.linalg.eigvalsh(p @ p.T), np.linalg.eigvalsh(p.T @ p)])

    _, spectrum = game_jacobian("jare", 1e16, game)

    assert_same_spectrum(spectrum.eigenvalues / 1e16, limit)
