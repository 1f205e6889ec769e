"""Every protocol by its config name. Adding a scheme: one module, one line here, one config
model in ``config.py``; the conformance tests then cover it."""

from __future__ import annotations

from .. import config as cfg
from .base import Protocol
from .bernoulli_gc import BernoulliGC
from .fastest_k import FastestK
from .frc import FRC
from .multi_message import MultiMessage
from .original_gc import OriginalGC
from .partial_gc import PartialGC
from .uncoded import Uncoded

PROTOCOLS: dict[str, type[Protocol]] = {
    cls.name: cls
    for cls in (Uncoded, FastestK, OriginalGC, PartialGC, FRC, MultiMessage, BernoulliGC)
}


def build(exp: cfg.Experiment) -> list[Protocol]:
    """Plan every scheme of an experiment (assignments, orders, codes)."""
    return [
        PROTOCOLS[spec.protocol](spec, exp, label)
        for spec, label in zip(exp.schemes, exp.labels(), strict=True)
    ]
