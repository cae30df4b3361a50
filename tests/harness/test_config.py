"""Spec validation: valid specs load, overrides apply, and every error names its field."""

from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.config import load_spec, validate_spec
from harness.errors import HarnessInputError
from tests.conftest import REPO_ROOT

MINIMAL = {
    "name": "tiny",
    "grid": {"methods": ["simgd", "jare"], "settings": ["gaussian"], "seeds": [0, 1]},
    "search": {"gamma": {"distribution": "loguniform", "low": 0.1, "high": 10}},
    "train": {"steps": 20, "eval_every": 10},
}


def write_spec(tmp_path: Path, raw) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw) if not isinstance(raw, str) else raw)
    return path


def error_of(tmp_path, raw, overrides=()) -> str:
    with pytest.raises(HarnessInputError) as error:
        load_spec(write_spec(tmp_path, raw), list(overrides))
    return str(error.value)


def test_minimal_spec_fills_defaults(tmp_path):
    spec = load_spec(write_spec(tmp_path, MINIMAL))

    assert spec.grid.settings == ["gaussian/default"]
    assert spec.sweep.num_samples == 4
    assert spec.train.batch_size is None
    assert spec.data.root is None


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_specs_are_valid(path):
    load_spec(path, ["data.root=/nonexistent.zip"])


def test_overrides_set_required_paths(tmp_path):
    spec = load_spec(
        write_spec(tmp_path, MINIMAL),
        [
            "train.steps=200",
            "train.batch_size=32",
            "grid.seeds=[0]",
            "grid.methods=[conopt]",
            "grid.settings=[mog/r10]",
            "sweep.num_samples=7",
            "data.root=some/folder",
        ],
    )

    assert spec.train.steps == 200
    assert spec.train.batch_size == 32
    assert spec.grid.seeds == [0]
    assert spec.grid.methods == ["conopt"]
    assert spec.grid.settings == ["mog/r10"]
    assert spec.sweep.num_samples == 7
    assert spec.data.root == Path("some/folder")


def test_override_without_equals_is_rejected(tmp_path):
    message = error_of(tmp_path, MINIMAL, ["train.steps"])
    assert "KEY=VALUE" in message


def test_unknown_key_names_path_and_allowed_keys(tmp_path):
    raw = {**MINIMAL, "train": {"steps": 20, "stpes": 3}}
    message = error_of(tmp_path, raw)
    assert "train.stpes" in message
    assert "allowed keys here" in message
    assert "eval_every" in message


def test_unknown_top_level_key(tmp_path):
    message = error_of(tmp_path, {**MINIMAL, "grdi": {}})
    assert "grdi: unknown key" in message


def test_unknown_method_lists_known(tmp_path):
    message = error_of(tmp_path, MINIMAL, ["grid.methods=[simgd, wgan]"])
    assert "grid.methods" in message
    assert "'wgan'" in message
    assert "jare" in message


def test_unknown_setting_lists_known(tmp_path):
    message = error_of(tmp_path, MINIMAL, ["grid.settings=[cifar10/Z]"])
    assert "grid.settings" in message
    assert "'Z'" in message
    assert "A" in message


def test_unknown_task(tmp_path):
    message = error_of(tmp_path, MINIMAL, ["grid.settings=[mnist]"])
    assert "unknown task 'mnist'" in message


def test_negative_learning_rate(tmp_path):
    message = error_of(tmp_path, MINIMAL, ["train.lr=-0.1"])
    assert "train.lr" in message
    assert "greater than 0" in message


def test_negative_steps(tmp_path):
    message = error_of(tmp_path, MINIMAL, ["train.steps=-5"])
    assert "train.steps" in message


def test_search_bounds_ordered(tmp_path):
    message = error_of(tmp_path, MINIMAL, ["search.gamma={distribution: loguniform, low: 5, high: 1}"])
    assert "search.gamma" in message
    assert "greater than low" in message


def test_unsearchable_parameter(tmp_path):
    message = error_of(tmp_path, MINIMAL, ["search.momentum={distribution: uniform, low: 0, high: 1}"])
    assert "cannot search momentum" in message


def test_image_task_needs_data_root(tmp_path):
    message = error_of(tmp_path, MINIMAL, ["grid.settings=[cifar10/A]"])
    assert "data.root" in message


def test_malformed_yaml(tmp_path):
    message = error_of(tmp_path, "name: [unclosed\n")
    assert "invalid YAML" in message
    assert "spec.yaml" in message


def test_spec_must_be_mapping(tmp_path):
    message = error_of(tmp_path, "- just\n- a list\n")
    assert "mapping" in message


def test_duplicate_seeds(tmp_path):
    message = error_of(tmp_path, MINIMAL, ["grid.seeds=[0, 0]"])
    assert "duplicate" in message


def test_validate_spec_reports_every_error():
    with pytest.raises(HarnessInputError) as error:
        validate_spec({"name": "x", "grid": {"methods": ["nope"], "settings": ["nope"]}})
    message = str(error.value)
    assert "grid.methods" in message
    assert "grid.settings" in message


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["train.lr=-1"], "train.lr"),
        (["grid.methods=[nope]"], "grid.methods"),
        (["train.steps=0"], "train.steps"),
    ],
)
def test_cli_bad_spec_exits_2_and_writes_nothing(tmp_path, capsys, overrides, needle):
    spec = write_spec(tmp_path, MINIMAL)
    output = tmp_path / "out"
    args = ["sweep", str(spec), "--output", str(output)]
    for item in overrides:
        args += ["--set", item]

    code = main(args)

    assert code == 2
    assert needle in capsys.readouterr().err
    assert not output.exists()


def test_cli_missing_data_exits_2_and_writes_nothing(tmp_path, capsys):
    spec = write_spec(tmp_path, MINIMAL)
    output = tmp_path / "out"
    missing = tmp_path / "no-such-data.zip"

    code = main(["sweep", str(spec), "--output", str(output), "--set", "grid.settings=[cifar10/A]",
                 "--set", f"data.root={missing}"])

    assert code == 2
    assert str(missing) in capsys.readouterr().err
    assert not output.exists()


def test_cli_missing_spec_file(tmp_path, capsys):
    code = main(["sweep", str(tmp_path / "absent.yaml")])

    assert code == 2
    assert "absent.yaml" in capsys.readouterr().err


def test_unknown_task_option_named(tmp_path):
    message = error_of(tmp_path, MINIMAL, ["train.task_options={gaussian: {mu: 4, muu: 1}}"])
    assert "train.task_options.gaussian" in message
    assert "muu" in message
    assert "sigma" in message


def test_task_options_for_task_outside_grid(tmp_path):
    message = error_of(tmp_path, MINIMAL, ["train.task_options={mog: {radius: 4}}"])
    assert "not in grid.settings" in message


def test_known_task_option_accepted(tmp_path):
    spec = load_spec(write_spec(tmp_path, MINIMAL), ["train.task_options={gaussian: {mu: 4}}"])
    assert spec.train.task_options == {"gaussian": {"mu": 4}}
