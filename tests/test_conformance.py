"""Every registered protocol against the conformance suite (``simulator.testing``), the way
scikit-learn checks every estimator with ``parametrize_with_checks``. The suite picks each
protocol's checks from its tags and examples; what each check protects is in its docstring."""

from __future__ import annotations

import pytest

from simulator.coding.base import Tags
from simulator.coding.frc import FRC
from simulator.coding.registry import PROTOCOLS
from simulator.testing import (
    check_fast_agrees,
    check_not_fast,
    check_ties,
    parametrize_with_checks,
    protocol_checks,
)


@parametrize_with_checks(PROTOCOLS.values())
def test_protocol(protocol, check):
    check(protocol)


def test_the_checks_follow_the_tags(monkeypatch):
    """A protocol without tags.fast gets the engine-choice checks instead of the engine
    comparison (the branch no registered protocol takes while every one is fast)."""
    names = dict(protocol_checks(FRC))
    assert "check_fast_agrees[0]" in names and "check_not_fast[0]" not in names
    monkeypatch.setattr(FRC, "tags", Tags(fast=False))
    names = dict(protocol_checks(FRC))
    assert "check_not_fast[0]" in names and "check_fast_agrees[0]" not in names
    deadlines = [n for n, _ in protocol_checks(PROTOCOLS["partial_gc"]) if "deadline" in n]
    assert deadlines == ["check_later_deadline[2]"]


def test_a_protocol_without_fast_stays_on_the_event_engine(monkeypatch):
    """An event-only protocol (a registered one with tags.fast off): the engine choice keeps it
    on des, refuses engine: fast, and runs a fast-capable scheme of the same run fast."""
    monkeypatch.setattr(FRC, "tags", Tags(fast=False))
    check_not_fast(FRC, FRC.examples[0])
    check_ties(FRC, FRC.examples[0])


def test_the_suite_catches_false_claims(monkeypatch):
    """The checks can fail: a tie-safe claim by a protocol that is not (fastest_k counts the
    first k uploads, so which arrive first at one instant matters), and a fast evaluator that
    miscounts one column, are each caught."""
    fastest_k = PROTOCOLS["fastest_k"]
    monkeypatch.setattr(fastest_k, "tags", Tags(approximate=True, tie_safe=True))
    with pytest.raises(AssertionError, match="rel_error"):
        check_ties(fastest_k, fastest_k.examples[0])
    multi = PROTOCOLS["multi_message"]
    evaluator = multi.evaluator

    def miscounting(self, exp):
        inner = evaluator(self, exp)
        evaluate = inner.evaluate

        def one_more(block):
            rows = evaluate(block)
            rows["chunks_computed"] = rows["chunks_computed"] + 1
            return rows

        inner.evaluate = one_more
        return inner

    monkeypatch.setattr(multi, "evaluator", miscounting)
    with pytest.raises(AssertionError, match="chunks_computed"):
        check_fast_agrees(multi, multi.examples[0])
