"""``harness jacobian``: its JSON and table output, and the errors for bad input."""

import json
import math

import numpy as np
import pytest

from harness.cli import main


def run(capsys, *args):
    code = main(["jacobian", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_matches_theorem_3(capsys):
    code, out, _ = run(capsys, "--method", "jare", "--gamma", "2", "--v", "0,2", "--sigma", "0.5", "--json")

    assert code == 0
    result = json.loads(out)
    eigenvalues = [complex(real, imag) for real, imag in result["eigenvalues"]]
    # Roots of 2λ² + (γ + s)λ + γ²/8 + ½ = 0 for s = σ² = 0.25 and s = β² = 4.25, with γ = 2.
    expected = [*np.roots([2.0, 2.25, 1.0]), *np.roots([2.0, 6.25, 1.0])]
    assert len(eigenvalues) == 4
    for value in expected:
        assert min(abs(value - found) for found in eigenvalues) < 1e-9
    assert result["phase_factor"] == pytest.approx(math.sqrt(8 - 2.25**2) / 2.25)
    largest, smallest = (6.25 + math.sqrt(6.25**2 - 8)) / 4, (6.25 - math.sqrt(6.25**2 - 8)) / 4
    assert result["conditioning_factor"] == pytest.approx(largest / smallest)
    assert result["method"] == "jare"
    assert result["v"] == [0.0, 2.0]


def test_json_writes_infinity_as_string(capsys):
    code, out, _ = run(capsys, "--method", "simgd", "--v", "0", "--sigma", "0", "--json")

    assert code == 0
    assert json.loads(out)["phase_factor"] == "inf"


def test_table_output(capsys):
    code, out, _ = run(capsys, "--method", "simgd", "--v", "0,2", "--sigma", "0.5")

    assert code == 0
    assert "phase factor ζ" in out
    assert "conditioning factor τ = max |λ| / min |λ| = 16" in out
    assert out.count("λ") >= 4


def test_exp_discriminator_appendix_b(capsys):
    code, out, _ = run(capsys, "--method", "simgd", "--v", "0", "--sigma", "0", "--discriminator", "exp", "--json")

    assert code == 0
    assert json.loads(out)["phase_factor"] == pytest.approx(math.sqrt(3))


@pytest.mark.parametrize("args, message", [
    (["--method", "sngan", "--v", "0,2", "--sigma", "0.5"], "spectral norm"),
    (["--method", "simgd", "--v", "1,2", "--sigma", "0", "--discriminator", "exp"], "v has 2 entries"),
    (["--method", "simgd", "--v", "1e200,1", "--sigma", "0.5"], "not finite"),
    (["--method", "simgd", "--v", "800", "--sigma", "0", "--discriminator", "exp"], "not finite"),
    (["--method", "jare", "--v", "0,2", "--sigma", "0.5"], "--gamma is required"),
    (["--method", "jare", "--gamma", "-1", "--v", "0,2", "--sigma", "0.5"], "gamma must be finite and ≥ 0"),
    (["--method", "nope", "--v", "0,2", "--sigma", "0.5"], "unknown method 'nope'"),
    (["--method", "simgd", "--v", "0,2", "--sigma", "-1"], "sigma must be finite and ≥ 0"),
    (["--method", "simgd", "--v", "0,2", "--sigma", "0.5", "--discriminator", "exp"], "v has 2 entries"),
])
def test_bad_input_exits_2(capsys, args, message):
    code, out, err = run(capsys, *args)

    assert code == 2
    assert out == ""
    assert message in err


def test_invalid_v_list_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["jacobian", "--method", "simgd", "--v", "0,x", "--sigma", "1"])

    assert exit_info.value.code == 2
    assert "invalid list '0,x'" in capsys.readouterr().err
