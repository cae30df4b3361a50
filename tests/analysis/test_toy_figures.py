"""The toy-experiment and spectrum figures, from a results table built by hand."""

import math

import numpy as np
import pytest
from PIL import Image

from analysis.report import write_report
from analysis.toy import (
    GAMMAS,
    equilibrium_factors,
    gaussian_parameters,
    plot_equilibrium_spectra,
    plot_gaussian_distance,
    plot_mixture_metrics,
    plot_training_spectra,
)
from harness.results import TrialResults, load_results


def add_trial(folder, trial_id, method, task, setting, rows, objective):
    static = {"sweep_id": "s1", "config_id": trial_id, "task": task, "setting": setting, "method": method,
              "seed": 0, "gamma": 10.0, "objective": objective, "objective_mode": "min"}
    trial = TrialResults(folder, trial_id, static)
    for index, values in enumerate(rows, start=1):
        status = "finished" if index == len(rows) else "running"
        trial.append({"step": 100 * index, "wall_time_s": 0.1 * index, "status": status, **values})


@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "results"
    for method, distances in (("simgd", [3.0, 2.5, 2.0]), ("jare", [3.0, 0.5, 0.01])):
        for setting in ("mu2", "mu6"):
            rows = [{"distance_to_equilibrium": d, "jacobian_phase_factor": 1.0 + i,
                     "jacobian_conditioning_factor": 10.0 * (i + 1)} for i, d in enumerate(distances)]
            add_trial(folder, f"{method}-{setting}", method, "gaussian", setting, rows, "distance_to_equilibrium")
    diverged = TrialResults(folder, "conopt-mu6", {
        "sweep_id": "s1", "config_id": "c", "task": "gaussian", "setting": "mu6", "method": "conopt", "seed": 0,
        "gamma": 10.0, "objective": "distance_to_equilibrium", "objective_mode": "min"})
    diverged.append({"step": 100, "status": "running", "distance_to_equilibrium": 5.0})
    diverged.append({"step": 150, "status": "diverged", "distance_to_equilibrium": math.nan})
    for method in ("simgd", "jare"):
        rows = [{"modes_covered": m, "high_quality_fraction": q} for m, q in ((1, 0.1), (4, 0.5), (8, 0.9))]
        add_trial(folder, f"{method}-r2", method, "mog", "r2", rows, "high_quality_fraction")
    return tmp_path


def assert_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 300


def test_gaussian_parameters_from_registry():
    assert gaussian_parameters("mu6") == (6.0, 0.2)
    assert gaussian_parameters("sigma0.5") == (2.0, 0.5)


def test_equilibrium_factors_simgd_closed_form():
    frame = equilibrium_factors("simgd", 2.0, 0.5)

    # Theorem 1 with v = (0, 2), σ² = 0.25: ζ = √((2/σ²)² − 1), τ = ¼(β² + √(β⁴ − 4))², β² = 4.25.
    assert set(frame["gamma"]) == set(GAMMAS)
    assert frame["zeta"].to_numpy() == pytest.approx(np.full(len(frame), math.sqrt(63)))
    assert frame["tau"].to_numpy() == pytest.approx(np.full(len(frame), (4.25 + math.sqrt(4.25**2 - 4)) ** 2 / 4))
    assert len(frame) == 4 * len(GAMMAS)


def test_equilibrium_factors_jare_fall_with_gamma():
    frame = equilibrium_factors("jare", 6.0, 0.2)
    factors = frame.groupby("gamma")[["zeta", "tau"]].first()

    tail = factors[factors.index >= 2]
    assert (np.diff(tail["tau"].to_numpy()) < 0).all()
    assert (np.diff(factors["zeta"].to_numpy()) <= 0).all()


def test_toy_figures_written(results, tmp_path):
    frame = load_results(results)
    out = tmp_path / "figures"
    out.mkdir()

    gaussian = plot_gaussian_distance(frame, out)
    mixture = plot_mixture_metrics(frame, out)
    spectra = plot_training_spectra(frame, out)
    equilibrium = plot_equilibrium_spectra(frame, out)

    assert [p.name for p in gaussian] == ["toy_gaussian_distance.png"]
    assert [p.name for p in mixture] == ["toy_mog_metrics.png"]
    assert sorted(p.name for p in spectra) == ["spectrum_gaussian_mu2.png", "spectrum_gaussian_mu6.png"]
    assert sorted(p.name for p in equilibrium) == [
        "eigenvalues_gaussian_mu2.png", "eigenvalues_gaussian_mu6.png",
        "factors_gaussian_mu2.png", "factors_gaussian_mu6.png",
    ]
    for path in gaussian + mixture + spectra + equilibrium:
        assert_png(path)


def test_no_toy_figures_without_toy_tasks(tmp_path):
    folder = tmp_path / "results"
    add_trial(folder, "c0", "jare", "cifar10", "A", [{"pixel_frechet_distance": 3.0}], "pixel_frechet_distance")
    frame = load_results(tmp_path)
    out = tmp_path / "figures"
    out.mkdir()

    assert plot_gaussian_distance(frame, out) == []
    assert plot_mixture_metrics(frame, out) == []
    assert plot_training_spectra(frame, out) == []
    assert plot_equilibrium_spectra(frame, out) == []


def test_report_includes_toy_figures(results):
    report = write_report(results)

    names = {p.name for p in report.figures}
    assert {"toy_gaussian_distance.png", "toy_mog_metrics.png", "factors_gaussian_mu6.png"} <= names
