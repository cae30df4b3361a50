"""Consensus optimization (ConOpt, Mescheder et al. 2017).

    L = ½‖(g_φ, g_θ)‖²
    d_φ = g_φ + γ ∇_φ L,    d_θ = g_θ + γ ∇_θ L

Both players also descend the squared norm of the whole gradient field. The reference code
used γ = 10 on CIFAR-10.
"""

from methods.base import Method, add_scaled, gradient_of, half_squared_norm, player_gradients


class ConOpt(Method):
    name = "conopt"

    def directions(self, loss_g, loss_d, params_g, params_d, gamma, *, differentiable=False):
        grads_g, grads_d = player_gradients(loss_g, loss_d, params_g, params_d, create_graph=True)

        consensus = half_squared_norm([*grads_g, *grads_d])
        reg = gradient_of(
            consensus, [*params_g, *params_d], retain_graph=False, create_graph=differentiable
        )
        reg_g, reg_d = reg[: len(params_g)], reg[len(params_g) :]

        return (
            add_scaled(grads_g, reg_g, gamma, keep_graph=differentiable),
            add_scaled(grads_d, reg_d, gamma, keep_graph=differentiable),
        )
