"""Every protocol by its config name. Adding a scheme: its module (config model, plan, event
reactions, fast evaluator, decoder) and one line here; the config's ``Scheme`` union, the engine
choice and the conformance tests then cover it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Protocol
from .bernoulli_gc import BernoulliGC
from .fastest_k import FastestK
from .frc import FRC
from .multi_message import MultiMessage
from .original_gc import OriginalGC
from .partial_gc import PartialGC
from .uncoded import Uncoded

if TYPE_CHECKING:
    from ..config import Experiment

#: One line per protocol, in the order tables and help list them.
PROTOCOLS: dict[str, type[Protocol]] = {
    cls.name: cls
    for cls in (
        Uncoded,
        FastestK,
        OriginalGC,
        PartialGC,
        FRC,
        MultiMessage,
        BernoulliGC,
    )
}


def build(exp: Experiment) -> list[Protocol]:
    """Plan every scheme of an experiment (assignments, orders, codes)."""
    return [
        PROTOCOLS[spec.protocol](spec, exp, label)
        for spec, label in zip(exp.schemes, exp.labels(), strict=True)
    ]
