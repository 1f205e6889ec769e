"""The event engine frees each trial by reference counting: no cycle outlives a trial.

Nested closures referencing one another made every trial a reference cycle holding the
protocol state and all pending timeouts; Python's cycle collector then took about 40% of the
run time (docs/performance.md). This pins the fix for every protocol, with crashes, a shared
PS link and a deadline (which leave timeouts and processes pending when the trial ends).
"""

from __future__ import annotations

import gc
import weakref

import pytest

from simulator.cluster import Cluster
from simulator.coding.registry import build
from simulator.config import from_dict
from simulator.engine.des import EventRecorder, simulate

SCHEMES = [
    {"protocol": "uncoded"},
    {"protocol": "fastest_k", "fraction": 0.5},
    {"protocol": "frc", "load": 2},
    {"protocol": "multi_message", "load": 2},
    {"protocol": "original_gc", "load": 3, "ell": 1},
    {"protocol": "partial_gc", "load": 3, "ell": 2},
    {"protocol": "partial_gc", "load": 3, "ell": 3, "mode": "approximate", "deadline": 2.0},
]


@pytest.mark.parametrize("ingress", ["parallel", "shared"])
@pytest.mark.parametrize("traced", [False, True])
def test_a_finished_trial_leaves_no_garbage_cycle(ingress, traced):
    exp = from_dict(
        {
            "seed": 3,
            "trials": 4,
            "cluster": {
                "workers": 8,
                "compute": {"dist": "exponential", "rate": 1.0},
                "failures": {"prob": 0.1, "crash_rate": 0.2, "detect_timeout": 0.3},
                "network": {"latency": 0.01, "time_per_float": 1e-3, "ps_ingress": ingress},
            },
            "data": {"dim": 6},
            "schemes": SCHEMES,
        }
    )
    protocols = build(exp)
    realization = Cluster(exp, steps=max(p.steps for p in protocols)).draw(0, 4)
    gc.collect()
    gc.disable()
    try:
        for t in range(4):
            draw = realization.trial(t)
            for protocol in protocols:
                trial = protocol.new_trial(draw.down, None)
                alive = weakref.ref(trial)
                recorder = EventRecorder() if traced else None
                outcome = simulate(trial, protocol.orders, draw, exp.cluster.network, recorder, 0.3)
                del trial, outcome
                assert alive() is None, f"{protocol.label} trial {t} is kept alive by a cycle"
    finally:
        gc.enable()
