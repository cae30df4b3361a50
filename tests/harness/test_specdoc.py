"""The generated spec reference: up to date with the schema, and covering every field."""

from harness.config import SweepSpec
from harness.specdoc import render
from tests.conftest import REPO_ROOT


def test_docs_spec_is_current():
    committed = (REPO_ROOT / "docs" / "spec.md").read_text()

    assert committed == render(), "docs/spec.md is stale: run `harness spec-reference --output docs/spec.md`"


def test_every_field_documented():
    text = render()

    for name, field in SweepSpec.model_fields.items():
        model = field.annotation
        if hasattr(model, "model_fields"):
            for sub in model.model_fields:
                assert f"`{name}.{sub}`" in text
        else:
            assert f"`{name}`" in text


def test_every_setting_listed():
    text = render()

    for key in ("gaussian/default", "mog/r2", "cifar10/A"):
        assert f"`{key}`" in text
