"""Hand-built scenarios with known answers: crashes mid-trial, network delays, a shared link."""

from __future__ import annotations

import math

import pytest

from .scenarios import play


def kinds(rows):
    return [(time, kind, worker) for time, kind, worker, _, _ in rows]


def test_crash_after_plan_triggers_a_replan_without_the_worker():
    """m = 4, load = 2, ell = 1, chunk time 1, latency 0.5 on every message.

    t = 1: every worker finishes its first chunk (worker j: chunk j); reports arrive at 1.5, the
    PS plans (round 1) and sends coefficients, which arrive at 2.0. Worker 2 crashes at 1.6;
    the PS notices at 1.9, drops it: chunk 2 has no other reported copy, so the PS waits. Worker
    1 finishes chunk 2 at t = 2, reported at 2.5: re-plan (round 2); coefficients arrive at 3.0,
    uploads at 3.5. The round-1 uploads sent at 2.0 arrive at 2.5 and are ignored.
    """
    scheme = {"protocol": "partial_gc", "load": 2, "ell": 1}
    network = {"latency": 0.5, "time_per_float": 0.0}
    outcome, error, rows = play(
        scheme,
        4,
        [1.0] * 4,
        crash={2: 1.6},
        trace=True,
        cluster_extra={"network": network, "failures": {"detect_timeout": 0.3}},
    )
    events = kinds(rows)
    assert (1.6, "crash", 2) in events
    assert (pytest.approx(1.9), "crash_detected", -1) in events
    assert outcome.decoded
    assert outcome.completion_time == pytest.approx(3.5)
    assert error < 1e-20
    downloads = [r for r in rows if r[1] == "download_sent"]
    assert sorted({r[0] for r in downloads}) == [1.5, 2.5]  # two plans
    assert {r[2] for r in downloads if r[0] == 2.5} == {0, 1, 3}
    assert (2.0, "download_lost", 2) in events  # it crashed at 1.6
    # Uploads: 3 stale ones from round 1 (workers 0, 1, 3) and 3 from round 2, all counted.
    assert outcome.messages == 6


def test_crash_before_plan_needs_no_replan():
    scheme = {"protocol": "partial_gc", "load": 2, "ell": 1}
    # Worker 3 crashes at 0.5, before finishing anything; chunk 3 is also held by worker 2.
    outcome, error, rows = play(
        scheme,
        4,
        [1.0] * 4,
        crash={3: 0.5},
        trace=True,
        cluster_extra={"failures": {"detect_timeout": 0.1}},
    )
    assert outcome.completion_time == 2.0  # chunk 3 second copy: worker 2's second step
    assert error < 1e-20
    assert len([r for r in rows if r[1] == "download_sent"]) == 3  # workers 0, 1, 2


def test_crash_leaves_a_chunk_without_holders_never_decodes():
    scheme = {"protocol": "partial_gc", "load": 2, "ell": 1}
    outcome, _, _ = play(scheme, 4, [1.0] * 4, down=[3], crash={2: 0.5})
    assert not outcome.decoded and math.isinf(outcome.completion_time)


def test_original_gc_waits_for_enough_uploads_despite_crash():
    scheme = {"protocol": "original_gc", "load": 2, "ell": 1}  # s = 1
    outcome, error, _ = play(scheme, 4, [1.0, 1.0, 3.0, 1.0], crash={0: 1.5})
    # Workers 1 and 3 upload at t = 2, worker 0 crashed, worker 2 uploads at t = 6.
    assert outcome.completion_time == 6.0 and error < 1e-20
    outcome, _, _ = play(scheme, 4, [1.0] * 4, crash={0: 1.5, 1: 1.5})
    assert not outcome.decoded


def test_network_delay_adds_to_completion():
    scheme = {"protocol": "original_gc", "load": 2, "ell": 1}
    network = {"latency": 0.25, "time_per_float": 0.01}  # dim 12: upload of 12 floats 0.12
    outcome, _, _ = play(scheme, 4, [1.0] * 4, cluster_extra={"network": network})
    assert outcome.completion_time == pytest.approx(2.0 + 0.25 + 0.12)


def test_partial_gc_pays_three_hops_on_a_slow_network():
    scheme = {"protocol": "partial_gc", "load": 2, "ell": 1}
    network = {"latency": 0.25, "time_per_float": 0.01}
    outcome, _, _ = play(scheme, 4, [1.0] * 4, cluster_extra={"network": network})
    # control (size 1) at 1 + 0.26; download (1 coefficient per chunk) 0.26; upload 0.37.
    assert outcome.completion_time == pytest.approx(1.0 + 0.26 + 0.26 + 0.37)


def test_shared_ingress_serializes_uploads():
    scheme = {"protocol": "multi_message", "load": 1}
    parallel, _, _ = play(scheme, 4, [1.0] * 4, cluster_extra={"network": {"time_per_float": 0.1}})
    shared, _, _ = play(
        scheme,
        4,
        [1.0] * 4,
        cluster_extra={"network": {"time_per_float": 0.1, "ps_ingress": "shared"}},
    )
    # four uploads of 12 floats at t = 1: in parallel all land at 2.2; shared, one after another.
    assert parallel.completion_time == pytest.approx(1.0 + 1.2)
    assert shared.completion_time == pytest.approx(1.0 + 4 * 1.2)
