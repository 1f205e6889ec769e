"""The base of every config model, in a module below everything that declares one.

``config`` assembles the experiment from models that live with what they configure (a compute
time distribution in ``compute/``, a scheme with its protocol); those modules cannot import
``config`` (it imports them), so the shared base and the number types live here.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, no silent coercion (``true`` is not
    a worker count, ``"3"`` is not a number), values are checked on assignment.

    Every float is finite (``allow_inf_nan=False``, so YAML's ``.nan`` and ``.inf`` and a
    ``1.0e+999`` that overflows are refused): a NaN compute time made rows that said decoded
    with a NaN completion time, and an infinite shift, latency or slowdown ones that said
    decoded at time inf. No key gives infinity a meaning ("never" is spelled otherwise: a
    ``crash_rate`` of 0, ``mode: exact`` instead of an infinite deadline); a key that ever
    should must say so in its docstring and opt out with ``Field(allow_inf_nan=True)``.
    """

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False
    )


PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
