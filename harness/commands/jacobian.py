"""``harness jacobian``: the update-field Jacobian of a rule at the simple GAN's equilibrium."""

from __future__ import annotations

import argparse
import json
import math

NAME = "jacobian"
HELP = "Print the eigenvalues, phase factor and conditioning factor of a rule's Jacobian at the simple GAN's equilibrium."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Compute A = ∂F/∂w for the update w ← w + ηF(w) of one rule at the equilibrium φ = v, θ = 0 "
        "of the simple vanilla GAN (data N(v, σ²I), G_φ(z) = φ + z), by autograd through the rule's "
        "own update directions. An infinite factor prints as the string \"inf\" in JSON."
    )
    parser.add_argument("--method", required=True, help="Update rule by registry name, e.g. jare.")
    parser.add_argument(
        "--gamma", type=float,
        help="Regularization weight γ ≥ 0; required by the rules that use it, ignored by simgd and sngan.",
    )
    parser.add_argument("--v", required=True, type=_float_list, metavar="V1,V2,...",
                        help="Data mean v, comma-separated; its length is the dimension n. Write --v=-1,2 when the first entry is negative.")
    parser.add_argument("--sigma", required=True, type=float, help="Standard deviation σ ≥ 0 of data and latent noise.")
    parser.add_argument(
        "--discriminator", choices=("linear", "exp"), default="linear",
        help="linear: D_θ(x) = θᵀx; exp: D_θ(x) = θ·e^x, which needs n = 1 and σ = 0 (default linear).",
    )
    parser.add_argument("--json", action="store_true", help="Print one JSON object instead of a table.")


def run(args: argparse.Namespace) -> int:
    from harness.errors import HarnessInputError
    from harness.simple_gan import equilibrium_jacobian
    from methods import UnknownMethodError, get_method

    try:
        method = get_method(args.method)
    except UnknownMethodError as error:
        raise HarnessInputError(str(error)) from None
    if args.gamma is None and method.uses_gamma:
        raise HarnessInputError(f"--gamma is required for method {args.method}, which uses γ")
    gamma = 0.0 if args.gamma is None else args.gamma

    _, spectrum = equilibrium_jacobian(args.method, gamma, args.v, args.sigma, args.discriminator)

    result = {
        "method": args.method,
        "gamma": gamma,
        "v": args.v,
        "sigma": args.sigma,
        "discriminator": args.discriminator,
        "eigenvalues": [[float(value.real), float(value.imag)] for value in spectrum.eigenvalues],
        "phase_factor": _json_number(spectrum.phase_factor),
        "conditioning_factor": _json_number(spectrum.conditioning_factor),
    }
    print(json.dumps(result) if args.json else format_table(result))
    return 0


def format_table(result: dict) -> str:
    v = ", ".join(f"{x:g}" for x in result["v"])
    lines = [
        f"method {result['method']}, γ = {result['gamma']:g}, v = ({v}), σ = {result['sigma']:g}, "
        f"discriminator {result['discriminator']}",
        "",
        f"{'':>4}  {'Re λ':>14}  {'Im λ':>14}  {'|λ|':>14}",
    ]
    for index, (real, imag) in enumerate(result["eigenvalues"], start=1):
        lines.append(f"{'λ' + str(index):>4}  {real:>14.8g}  {imag:>14.8g}  {math.hypot(real, imag):>14.8g}")
    lines += [
        "",
        f"phase factor ζ = max |Im λ| / |Re λ| = {result['phase_factor']}",
        f"conditioning factor τ = max |λ| / min |λ| = {result['conditioning_factor']}",
    ]
    return "\n".join(lines)


def _json_number(value: float) -> float | str:
    """Return ``value``, or "inf" / "nan" where strict JSON has no number for it."""
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else "inf"


def _float_list(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid list {text!r}: expected numbers separated by commas, e.g. 0,2") from None
    if not values:
        raise argparse.ArgumentTypeError(f"invalid list {text!r}: expected at least one number, e.g. 0,2")
    return values
