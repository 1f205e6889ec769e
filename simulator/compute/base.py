"""What every compute-time distribution is: a config model that draws and, where known, describes
its law.

A distribution is one pydantic model (its YAML keys and their checks) that also carries
everything the rest of the simulator asks of it, so adding one is one module plus a registry
line (see docs/design.md, "How to add a compute-time distribution"):

- ``sampler(source_dir)``: an object that draws blocks of times (``draw(rng, shape)``). A
  parametric distribution is its own sampler; one that needs data (empirical) or parts
  (bimodal) builds one, loading files once.
- ``mean()``, ``var()``, ``cdf(x)``, ``sf(x)``: the law, for ``theory`` and the validation
  suite; None where the model alone cannot say (a heavy tail's mean is ``inf``, not None).
  Give a scipy frozen distribution from ``frozen()`` and all four follow.
- ``tail_time()``: a time exceeded with probability at most ``TAIL`` (the config refuses
  settings whose times would overflow when added up).
- ``atoms(key)``: where the law puts mass on single values, so draws tie (the fast engine
  cannot reproduce the event engine's order among simultaneous events).
- ``problems(key, nested)`` and ``data_problems(key, source_dir)``: what pydantic's types
  cannot say, without and with reading files.
"""

from __future__ import annotations

import math
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
from numpy.typing import ArrayLike

from ..models import Strict

#: Compute times are judged at this upper-tail probability (rarer draws are never seen).
TAIL = 1e-12
#: log(1 / TAIL): the exponent a light tail must reach.
LOG_TAIL = math.log(1 / TAIL)


def capped_exp(x: float) -> float:
    """exp(x), or inf where it would overflow (a tail bound that large is refused anyway)."""
    return math.inf if x > 709.0 else math.exp(x)


class Sampler(Protocol):
    """What draws compute times: a distribution's law, with its data loaded if it needs any."""

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray: ...

    def mean(self) -> float | None: ...

    def var(self) -> float | None: ...

    def cdf(self, x: ArrayLike) -> np.ndarray | None: ...

    def sf(self, x: ArrayLike) -> np.ndarray | None: ...

    def tail_time(self) -> float: ...


class Dist(Strict):
    """Base of every compute-time distribution model (the ``dist`` key selects the subclass)."""

    per: Literal["worker", "chunk"] = "worker"
    """worker: one draw per worker per trial (a slow worker is slow on every chunk);
    chunk: a fresh draw for every chunk a worker computes."""

    #: Parameters that make a typical instance (docs, tests, ``gcsim`` examples): a plug-in's
    #: tests are generated from it. Keys other than ``dist`` and ``per``.
    EXAMPLE: ClassVar[dict[str, Any]] = {}

    @classmethod
    def name(cls) -> str:
        """The ``dist`` value that selects this model."""
        return typing.get_args(cls.model_fields["dist"].annotation)[0]

    # -- drawing -------------------------------------------------------------------------

    def sampler(self, source_dir: Path) -> Sampler:
        """What draws this distribution's times (files under ``source_dir`` read once, here)."""
        return self  # a parametric distribution draws by itself

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Times of the given shape. The NumPy calls and their order are part of the results:
        changing them changes every run's numbers."""
        raise NotImplementedError(f"{self.name()} draws through sampler(source_dir)")

    # -- the law, where known ------------------------------------------------------------

    def frozen(self) -> Any:
        """The law as a scipy.stats frozen distribution, or None (then override what is known)."""
        return None

    def mean(self) -> float | None:
        law = self.frozen()
        return None if law is None else float(law.mean())

    def var(self) -> float | None:
        law = self.frozen()
        return None if law is None else float(law.var())

    def cdf(self, x: ArrayLike) -> np.ndarray | None:
        """P(time <= x), elementwise."""
        law = self.frozen()
        return None if law is None else law.cdf(np.asarray(x, dtype=float))

    def sf(self, x: ArrayLike) -> np.ndarray | None:
        """P(time > x), elementwise: 1 - cdf, but exact where the cdf rounds to 1 (the heavy
        tails whose mean ``theory`` integrates)."""
        law = self.frozen()
        if law is not None:
            return law.sf(np.asarray(x, dtype=float))
        cdf = self.cdf(x)
        return None if cdf is None else 1.0 - cdf

    def tail_time(self) -> float:
        """A time a draw exceeds with probability at most ``TAIL`` (an upper bound where the
        quantile has no closed form; inf where it overflows)."""
        raise NotImplementedError

    def atoms(self, key: str) -> list[tuple[str, str]]:
        """(dotted key, kind) for each part of the law with mass on single values."""
        return []

    # -- checks beyond the types -----------------------------------------------------------

    def problems(self, key: str, nested: bool) -> list[tuple[str, str]]:
        """(dotted key, message) for what the types cannot say; ``nested``: inside another
        distribution (which alone says ``per``)."""
        if nested and "per" in self.model_fields_set:
            return [(f"{key}.per", "set 'per' on the outer (bimodal) distribution only")]
        return []

    def data_problems(self, key: str, source_dir: Path) -> list[tuple[str, str]]:
        """Problems with files the distribution reads (relative to ``source_dir``)."""
        return []
