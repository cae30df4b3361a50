"""Simultaneous gradient descent (SimGD).

    d_φ = g_φ,    d_θ = g_θ

Each player follows the gradient of its own loss; both step at once.
"""

from methods.base import Method, detached, player_gradients


class SimGD(Method):
    name = "simgd"
    uses_gamma = False

    def directions(self, loss_g, loss_d, params_g, params_d, gamma, *, differentiable=False):
        grads_g, grads_d = player_gradients(
            loss_g, loss_d, params_g, params_d, create_graph=differentiable
        )
        return detached(grads_g, keep_graph=differentiable), detached(grads_d, keep_graph=differentiable)
