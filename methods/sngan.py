"""SN-GAN (Miyato et al. 2018): SimGD with spectral normalization on every discriminator layer.

    d_φ = g_φ,    d_θ = g_θ,    with each weight W of D replaced by W / σ_max(W)

σ_max is estimated by one power iteration per forward pass in training mode.
"""

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from methods.base import Method, detached, player_gradients

_NORMALIZED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)


class SNGAN(Method):
    name = "sngan"
    uses_gamma = False

    def directions(self, loss_g, loss_d, params_g, params_d, gamma, *, differentiable=False):
        grads_g, grads_d = player_gradients(
            loss_g, loss_d, params_g, params_d, create_graph=differentiable
        )
        return detached(grads_g, keep_graph=differentiable), detached(grads_d, keep_graph=differentiable)

    def prepare_discriminator(self, discriminator: nn.Module) -> nn.Module:
        for module in list(discriminator.modules()):
            if isinstance(module, _NORMALIZED_LAYERS) and not _is_spectral_normalized(module):
                spectral_norm(module)
        return discriminator


def _is_spectral_normalized(module: nn.Module) -> bool:
    parametrizations = getattr(module, "parametrizations", None)
    return parametrizations is not None and "weight" in parametrizations
