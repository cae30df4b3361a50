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


def write_random_inception_weights(path: Path, seed: int = 0) -> Path:
    """Write a state_dict of torch-fidelity's inception-v3-compat network with random weights.

    The official weights are a download; this file has the same architecture and keys, so the
    real metric code path runs offline. He-normal convolutions keep the activations' scale
    through the network's depth, so features differ between inputs; they carry no meaning.
    """
    import torch
    from torch import nn
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        # The constructor loads weights; keeping the random initialization is the point here.
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None

    empty = path.with_name(f"{path.stem}-empty.pt")
    torch.save({}, empty)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        network = Unloaded("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
        for module in network.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=module.in_features ** -0.5)
    torch.save(network.state_dict(), path)
    empty.unlink()
    return path


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory) -> Path:
    """A random-weights file for inception-v3-compat, built once per test session."""
    return write_random_inception_weights(tmp_path_factory.mktemp("inception") / "inception-random.pt")
