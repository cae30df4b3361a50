"""Jacobian regularization (JARE, Nie and Patel 2019).

    d_φ = g_φ + γ ∇_φ ½‖g_θ‖²,    d_θ = g_θ + γ ∇_θ ½‖g_φ‖²

Each player descends the norm of the *other* player's gradient. In the zero-sum simple GAN the
regularization matrix is Γ = [[I, γ/2·I], [−γ/2·I, I]], which shrinks both the phase factor and
the conditioning factor of the Jacobian as γ grows. The reference code used γ = 100 on CIFAR-10.
"""

from methods.base import Method, add_scaled, gradient_of, half_squared_norm, player_gradients


class JARE(Method):
    name = "jare"
    default_gamma = 100.0

    def directions(self, loss_g, loss_d, params_g, params_d, gamma, *, differentiable=False):
        grads_g, grads_d = player_gradients(loss_g, loss_d, params_g, params_d, create_graph=True)

        reg_g = gradient_of(half_squared_norm(grads_d), params_g, create_graph=differentiable)
        reg_d = gradient_of(
            half_squared_norm(grads_g), params_d, retain_graph=False, create_graph=differentiable
        )

        return (
            add_scaled(grads_g, reg_g, gamma, keep_graph=differentiable),
            add_scaled(grads_d, reg_d, gamma, keep_graph=differentiable),
        )
