"""Discriminator-only gradient regularization.

    d_φ = g_φ,    d_θ = g_θ + γ ∇_θ ½‖g_φ‖²

The discriminator also descends the norm of the generator's gradient; the generator is plain
SimGD.
"""

from methods.base import Method, add_scaled, detached, gradient_of, half_squared_norm, player_gradients


class DiscOnly(Method):
    name = "disc_only"

    def directions(self, loss_g, loss_d, params_g, params_d, gamma, *, differentiable=False):
        grads_g, grads_d = player_gradients(
            loss_g, loss_d, params_g, params_d, create_graph=differentiable, create_graph_g=True
        )

        reg_d = gradient_of(
            half_squared_norm(grads_g), params_d, retain_graph=False, create_graph=differentiable
        )

        return (
            detached(grads_g, keep_graph=differentiable),
            add_scaled(grads_d, reg_d, gamma, keep_graph=differentiable),
        )
