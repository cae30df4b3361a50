"""The interface every update rule implements, and the gradient helpers the rules share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import nn

Tensors = list[torch.Tensor]


class Method(ABC):
    """An update rule: turns the two players' losses into update directions.

    The generator (parameters φ) minimizes ``loss_g`` and the discriminator (parameters θ)
    minimizes ``loss_d``. ``directions`` returns ``(d_φ, d_θ)``, descent directions that one
    shared optimizer step applies to both players simultaneously: ``w ← w − η d`` for SGD.

    With ``differentiable=True`` the directions keep their autograd graph, so that the Jacobian
    of the update field can be taken through the rule itself; training leaves it False.
    """

    name: str
    uses_gamma: bool = True
    """Whether the rule reads γ. Sweeps do not search γ for rules that ignore it."""
    default_gamma: float = 10.0
    """γ when the spec sets none: the JARE authors' CIFAR-10 value, 10 (as for ConOpt)."""

    @abstractmethod
    def directions(
        self,
        loss_g: torch.Tensor,
        loss_d: torch.Tensor,
        params_g: Sequence[torch.Tensor],
        params_d: Sequence[torch.Tensor],
        gamma: float | torch.Tensor,
        *,
        differentiable: bool = False,
    ) -> tuple[Tensors, Tensors]:
        """Return the update directions ``(d_φ, d_θ)``, one tensor per parameter.

        ``gamma`` is a float, or for parameters stacked over batched trials a tensor with one
        γ per trial along their first dimension.
        """

    def prepare_discriminator(self, discriminator: nn.Module) -> nn.Module:
        """Return the discriminator this rule trains; most rules use it unchanged."""
        return discriminator


def player_gradients(
    loss_g: torch.Tensor,
    loss_d: torch.Tensor,
    params_g: Sequence[torch.Tensor],
    params_d: Sequence[torch.Tensor],
    create_graph: bool = False,
    *,
    create_graph_g: bool = False,
    create_graph_d: bool = False,
) -> tuple[Tensors, Tensors]:
    """Return ``g_φ = ∇_φ loss_g`` and ``g_θ = ∇_θ loss_d``.

    With ``create_graph`` both gradients stay differentiable, which the regularized rules need to
    differentiate gradient norms. ``create_graph_g`` and ``create_graph_d`` request it for one
    player only, so that a rule does not record the double-backward graph of a gradient it
    never differentiates. Parameters a loss does not reach get a zero gradient.
    """
    grads_g = torch.autograd.grad(
        loss_g, params_g, create_graph=create_graph or create_graph_g, retain_graph=True,
        allow_unused=True,
    )
    grads_d = torch.autograd.grad(
        loss_d, params_d, create_graph=create_graph or create_graph_d, retain_graph=True,
        allow_unused=True,
    )
    return _zeros_for_unused(grads_g, params_g), _zeros_for_unused(grads_d, params_d)


def half_squared_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Return ½‖(t₁, t₂, …)‖², the squared Euclidean norm of all entries over two."""
    return 0.5 * sum(t.pow(2).sum() for t in tensors)


def gradient_of(
    scalar: torch.Tensor,
    params: Sequence[torch.Tensor],
    *,
    retain_graph: bool = True,
    create_graph: bool = False,
) -> Tensors:
    """Return ∇ scalar with respect to ``params``, zeros where ``params`` do not reach it."""
    if not scalar.requires_grad:
        return [torch.zeros_like(p) for p in params]
    grads = torch.autograd.grad(
        scalar, params, retain_graph=retain_graph or create_graph, create_graph=create_graph,
        allow_unused=True,
    )
    return _zeros_for_unused(grads, params)


def add_scaled(
    base: Tensors, extra: Tensors, scale: float | torch.Tensor, *, keep_graph: bool = False
) -> Tensors:
    """Return ``base + scale · extra``, entry by entry, detached unless ``keep_graph``.

    A tensor ``scale`` contains one value per trial for parameters stacked along their first
    dimension (batched trials), and scales each trial's slice by its own value.
    """
    summed = [b + _per_slice(scale, e) * e for b, e in zip(base, extra, strict=True)]
    return summed if keep_graph else detached(summed)


def _per_slice(scale: float | torch.Tensor, stacked: torch.Tensor) -> float | torch.Tensor:
    if not isinstance(scale, torch.Tensor) or scale.dim() == 0:
        return scale
    return scale.view(-1, *([1] * (stacked.dim() - 1)))


def detached(tensors: Sequence[torch.Tensor], *, keep_graph: bool = False) -> Tensors:
    return list(tensors) if keep_graph else [t.detach() for t in tensors]


def _zeros_for_unused(
    grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor]
) -> Tensors:
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]
