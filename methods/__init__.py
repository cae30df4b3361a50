"""The method registry: one module per update rule, looked up by name.

Adding a rule means adding its module and one line to ``_REGISTRY``.
"""

from methods.base import Method
from methods.conopt import ConOpt
from methods.disc_only import DiscOnly
from methods.gen_only import GenOnly
from methods.jare import JARE
from methods.simgd import SimGD
from methods.sngan import SNGAN

_REGISTRY: dict[str, type[Method]] = {
    "simgd": SimGD,
    "conopt": ConOpt,
    "gen_only": GenOnly,
    "disc_only": DiscOnly,
    "jare": JARE,
    "sngan": SNGAN,
}


class UnknownMethodError(KeyError):
    """Raised for a method name that is not registered."""

    def __str__(self) -> str:
        return self.args[0]


def method_names() -> list[str]:
    return list(_REGISTRY)


def get_method(name: str) -> Method:
    """Return a new instance of the update rule registered as ``name``."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise UnknownMethodError(f"unknown method {name!r}; known methods: {known}") from None


__all__ = ["Method", "UnknownMethodError", "get_method", "method_names"]
