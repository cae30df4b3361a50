"""Documentation pages that describe code: every results column is documented."""

from harness.results import SCHEMA
from tests.conftest import REPO_ROOT


def test_every_results_column_documented():
    page = (REPO_ROOT / "docs" / "results.md").read_text()

    for field in SCHEMA:
        assert f"`{field.name}`" in page, f"docs/results.md does not describe column {field.name}"
