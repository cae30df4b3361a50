"""Generator-only gradient regularization.

    d_φ = g_φ + γ ∇_φ ½‖g_θ‖²,    d_θ = g_θ

The generator also descends the norm of the discriminator's gradient; the discriminator is
plain SimGD. In the zero-sum simple GAN this is the appendix's update (21).
"""

from methods.base import Method, add_scaled, detached, gradient_of, half_squared_norm, player_gradients


class GenOnly(Method):
    name = "gen_only"

    def directions(self, loss_g, loss_d, params_g, params_d, gamma, *, differentiable=False):
        grads_g, grads_d = player_gradients(
            loss_g, loss_d, params_g, params_d, create_graph=differentiable, create_graph_d=True
        )

        reg_g = gradient_of(
            half_squared_norm(grads_d), params_g, retain_graph=False, create_graph=differentiable
        )

        return (
            add_scaled(grads_g, reg_g, gamma, keep_graph=differentiable),
            detached(grads_d, keep_graph=differentiable),
        )
