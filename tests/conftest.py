"""Shared fixtures: the repository root and the CIFAR-10 subset shipped beside the checkout."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CIFAR_ZIP = REPO_ROOT.parent / "shared" / "data" / "cifar10-subset.zip"


@pytest.fixture
def cifar_zip() -> Path:
    if not CIFAR_ZIP.is_file():
        pytest.skip(f"{CIFAR_ZIP} not found: the CIFAR-10 subset ships beside the checkout in ../shared/data")
    return CIFAR_ZIP
