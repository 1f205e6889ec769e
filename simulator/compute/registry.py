"""Every compute-time distribution a config may name, one line each (in the order messages list
them). A new distribution is a module of its own plus its line here; ``Distribution`` (the
``cluster.compute`` type) and ``DIST_NAMES`` follow."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from .base import Dist
from .bimodal import Bimodal
from .deterministic import Deterministic
from .empirical import Empirical
from .exponential import Exponential
from .gamma import Gamma
from .inverse_gaussian import InverseGaussian
from .lognormal import Lognormal
from .pareto import Pareto
from .shifted_exponential import ShiftedExponential
from .weibull import Weibull

DISTRIBUTIONS: tuple[type[Dist], ...] = (
    Deterministic,
    Exponential,
    ShiftedExponential,
    Pareto,
    Weibull,
    Lognormal,
    Gamma,
    Bimodal,
    Empirical,
    InverseGaussian,
)

#: The ``cluster.compute`` type: one of the registered models, chosen by its ``dist`` key.
Distribution = Annotated[Union[DISTRIBUTIONS], Field(discriminator="dist")]  # noqa: UP007
DIST_NAMES: list[str] = [d.name() for d in DISTRIBUTIONS]

for _model in DISTRIBUTIONS:  # models holding distributions (bimodal) resolve the union now
    _model.model_rebuild(_types_namespace={"Distribution": Distribution})


def by_name(name: str) -> type[Dist]:
    """The model registered as ``name`` (KeyError otherwise)."""
    for model in DISTRIBUTIONS:
        if model.name() == name:
            return model
    raise KeyError(name)
