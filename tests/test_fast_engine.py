"""The fast engine gives the event engine's summary rows, trial by trial.

Tolerances. Times, counts and flags are compared exactly (integers, booleans) or to 1e-12
relative (completion_time; residual also to 1e-25 absolute, since a least-squares residual of
an exact decode is a rounding-level number). rel_error and decode_cond are compared to 1e-9
relative or 1e-25 absolute. The fast engine calls the protocols' own decoders (and the same
SVD for partial_gc's conditioning) with the same matrices in the same order, so in practice
every column is bitwise equal; the tolerances leave room only for what the engines may
legitimately do differently: the summation order of an estimate when a tie makes the arrival
order ambiguous, and BLAS kernels whose rounding may depend on threading. 1e-9 is far above
that noise (about 1e-16 relative on a well-conditioned decode) and far below any real
difference; 1e-25 absolute covers rel_error of exact decodes (1e-33 to 1e-28), whose relative
noise is meaningless.
"""

from __future__ import annotations

import pandas as pd
import pytest

from simulator.coding.base import Tags
from simulator.coding.frc import FRC
from simulator.coding.registry import build
from simulator.config import ConfigError, from_dict
from simulator.engine import choice, fast
from simulator.engine.choice import fast_problems
from simulator.runner import run_trials
from simulator.schema import ENGINE_SUMMARY_COLUMNS
from simulator.testing import NETWORKS, assert_same_rows


def run_trials_fast(exp, first, count, progress=None):
    """The fast engine's rows of every scheme of ``exp``."""
    return fast.run_trials_fast(exp, first, count, build(exp), progress)


def experiment(schemes, workers=12, compute=None, prob=0.08, network=None, **extra):
    data = {
        "seed": extra.pop("seed", 5),
        "trials": extra.pop("trials", 60),
        "cluster": {
            "workers": workers,
            "compute": compute or {"dist": "pareto", "scale": 1.0, "alpha": 2.0},
            "failures": {"prob": prob, **extra.pop("failures", {})},
            "network": network or {},
        },
        "data": {"dim": extra.pop("dim", 10), "gradients": extra.pop("gradients", "gaussian")},
        "output": {"events_trials": 0},
        "schemes": schemes,
    }
    data["cluster"].update(extra.pop("cluster", {}))
    data["data"].update(extra)
    return from_dict(data)


def check(exp, first=0, count=None):
    count = exp.trials if count is None else count
    assert fast_problems(exp) == []
    des, _ = run_trials(exp, first, count)
    assert_same_rows(des, run_trials_fast(exp, first, count))
    return des


# Every protocol's own examples, on every network and without tags.fast: the conformance
# suite (simulator.testing.check_fast_agrees / check_not_fast, run by test_conformance.py).


# --------------------------------------------------------------------------------------------
# A grid: distributions, failures, networks, ell 1..load, exact and approximate


def grid_schemes(load=4, deadlines=(1.5, 4.0, 12.0)):
    schemes = [
        {"protocol": "uncoded"},
        {"protocol": "fastest_k", "k": 7},
        {"protocol": "fastest_k", "fraction": 1.0},
        {"protocol": "frc", "load": 3},
        {"protocol": "frc", "load": 1},
        {"protocol": "multi_message", "load": 3},
        {"protocol": "multi_message", "load": 1},
    ]
    for ell in range(1, load + 1):
        schemes.append({"protocol": "partial_gc", "load": load, "ell": ell})
        schemes.append({"protocol": "original_gc", "load": load, "ell": ell})
    schemes.append(
        {"protocol": "original_gc", "load": load, "ell": 1, "construction": "polynomial"}
    )
    # Other assignments and orders (the engines read them from the protocol's orders).
    schemes += [
        {"protocol": "partial_gc", "load": load, "ell": 2, "assignment": "random_regular",
         "ordering": "random"},
        {"protocol": "partial_gc", "load": load, "ell": 1, "assignment": "graph",
         "ordering": "optimal"},
        {"protocol": "multi_message", "load": 3, "assignment": "random_regular"},
        {"protocol": "original_gc", "load": 3, "construction": "generic",
         "assignment": "random_regular"},
        {"protocol": "original_gc", "load": 3, "construction": "generic", "mode": "approximate",
         "deadline": deadlines[0]},
    ]  # fmt: skip
    for deadline in deadlines:
        for ell in (1, 2, load):
            schemes.append(
                {"protocol": "partial_gc", "load": load, "ell": ell, "mode": "approximate",
                 "deadline": deadline}
            )  # fmt: skip
        schemes.append(
            {"protocol": "original_gc", "load": load, "ell": 2, "mode": "approximate",
             "deadline": deadline}
        )  # fmt: skip
    return schemes


DISTRIBUTIONS = {
    "shifted_exp per chunk": {"dist": "shifted_exponential", "shift": 1.0, "rate": 1.0,
                              "per": "chunk"},
    "bimodal": {"dist": "bimodal", "p_slow": 0.25, "fast": {"dist": "exponential", "rate": 2.0},
                "slow": {"dist": "lognormal", "mu": 1.0, "sigma": 0.5}},
    "bimodal per chunk": {"dist": "bimodal", "p_slow": 0.25, "per": "chunk",
                          "fast": {"dist": "gamma", "shape": 2.0, "scale": 0.5},
                          "slow": {"dist": "weibull", "scale": 3.0, "shape": 1.5}},
    "pareto": {"dist": "pareto", "scale": 0.5, "alpha": 1.5},
    "pareto per chunk": {"dist": "pareto", "scale": 0.5, "alpha": 1.5, "per": "chunk"},
}  # fmt: skip
GRID = [
    ("shifted_exp per chunk", 0.0, "free"),
    ("shifted_exp per chunk", 0.1, "bandwidth"),
    ("bimodal", 0.1, "latency"),
    ("bimodal", 0.3, "free"),
    ("bimodal per chunk", 0.05, "bandwidth"),
    ("pareto", 0.0, "bandwidth"),
    ("pareto", 0.2, "latency"),
    ("pareto per chunk", 0.1, "free"),
]


@pytest.mark.parametrize("dist, prob, network", GRID)
def test_grid_agrees(dist, prob, network):
    exp = experiment(
        grid_schemes(),
        compute=DISTRIBUTIONS[dist],
        prob=prob,
        network=NETWORKS[network],
        dim=7,  # not a multiple of ell: padded blocks
        trials=40,
        seed=len(dist) + int(prob * 100),
    )
    des = check(exp)
    assert des.decoded.any() and (~des.decoded).any() | (prob == 0)


def test_uneven_split_fixed_failures_slowdown_and_no_gradients():
    workers = 8
    exp = experiment(
        [{"protocol": "uncoded"}, {"protocol": "fastest_k", "k": 5},
         {"protocol": "fastest_k", "k": 8}],
        workers=workers,
        compute={"dist": "lognormal", "mu": 0.0, "sigma": 1.0, "per": "chunk"},
        network=NETWORKS["bandwidth"],
        chunks=21,  # 3 chunks for some workers, 2 for others
        failures={"workers": [3]},
        cluster={"slowdown": [1.0, 2.0, 1.0, 1.0, 0.5, 1.0, 3.0, 1.0]},
        trials=80,
    )  # fmt: skip
    check(exp)
    exp = experiment(grid_schemes(deadlines=(3.0,)), gradients="none", trials=60)
    des = check(exp)
    assert des.rel_error.isna().all()


@pytest.mark.parametrize("gradients", ["gaussian", "none"])
def test_decode_cond_off_is_nan_and_changes_nothing_else(gradients):
    """output.decode_cond: false skips the condition numbers (an SVD per trial for original_gc)
    in both engines; every other column keeps its bits, estimates included."""
    on = experiment(grid_schemes(deadlines=(2.0,)), gradients=gradients, trials=40, seed=9)
    off = on.model_copy(update={"output": on.output.model_copy(update={"decode_cond": False})})
    des_on, _ = run_trials(on, 0, on.trials)
    des_off = check(off)
    assert des_off.decode_cond.isna().all()
    assert des_on.decode_cond.notna().any()
    rest = [c for c in ENGINE_SUMMARY_COLUMNS if c != "decode_cond"]
    pd.testing.assert_frame_equal(des_off[rest], des_on[rest], check_exact=True)


def test_ranges_match_the_event_engine_across_block_boundaries():
    exp = experiment(grid_schemes(deadlines=(2.0,)), trials=400, gradients="none")
    check(exp, first=230, count=50)  # crosses the 256-trial realization block
    quick = run_trials_fast(exp, 3, 0)
    des, _ = run_trials(exp, 3, 0)
    assert quick.empty and list(quick.columns) == list(des.columns)
    assert quick.dtypes.equals(des.dtypes)


def test_many_trials_agree_on_the_decisive_statistics():
    """More trials, few columns of work: the order statistics that decide every scheme."""
    exp = experiment(
        grid_schemes(deadlines=(2.5,)),
        compute={"dist": "shifted_exponential", "shift": 0.2, "rate": 1.0, "per": "chunk"},
        prob=0.1,
        network=NETWORKS["latency"],
        gradients="none",
        trials=300,
    )
    check(exp)


# --------------------------------------------------------------------------------------------
# What fast refuses, and its safety net


def test_problems_name_the_keys():
    exp = experiment(
        [{"protocol": "partial_gc", "load": 4}],
        failures={"crash_rate": 0.1},
        network={"ps_ingress": "shared"},
    )
    keys = dict(fast_problems(exp))
    assert "crashes need the event engine" in keys["cluster.failures.crash_rate"]
    assert "shared" in keys["cluster.network.ps_ingress"]
    with pytest.raises(ConfigError) as error:
        from_dict({**exp.resolved(), "engine": "fast"})
    assert "cluster.failures.crash_rate" in str(error.value)


def test_problems_for_atoms_unless_every_scheme_ignores_ties(tmp_path):
    deterministic = {"dist": "deterministic", "value": 1.0}
    exp = experiment([{"protocol": "partial_gc", "load": 4}], compute=deterministic)
    assert [key for key, _ in fast_problems(exp)] == ["cluster.compute.dist"]
    bimodal = {"dist": "bimodal", "p_slow": 0.5, "fast": {"dist": "exponential", "rate": 1.0},
               "slow": deterministic}  # fmt: skip
    exp = experiment([{"protocol": "fastest_k", "k": 3}], compute=bimodal)
    assert [key for key, _ in fast_problems(exp)] == ["cluster.compute.slow.dist"]
    (tmp_path / "times.csv").write_text("t\n1.0\n2.0\n", encoding="utf-8")
    empirical = from_dict(
        {
            "trials": 5,
            "cluster": {"workers": 6, "compute": {"dist": "empirical", "file": "times.csv",
                                                  "column": "t"}},
            "schemes": [{"protocol": "original_gc", "load": 2}],
        },
        source_dir=tmp_path,
    )  # fmt: skip
    assert [key for key, _ in fast_problems(empirical)] == ["cluster.compute.dist"]
    # uncoded waits for everyone: simultaneous events cannot change its rows.
    exp = experiment([{"protocol": "uncoded"}], compute=deterministic, prob=0.0)
    assert fast_problems(exp) == []
    check(exp)


def test_problems_name_a_protocol_fast_does_not_know(monkeypatch):
    monkeypatch.setattr(FRC, "tags", Tags(fast=False))
    exp = experiment([{"protocol": "uncoded"}, {"protocol": "frc", "load": 3}])
    assert [key for key, _ in fast_problems(exp)] == ["schemes.1.protocol"]


def test_tied_trials_are_replayed_by_the_event_engine(monkeypatch):
    """Ties fast does not order itself are replayed by the event engine: chunk times that
    underflow to 0 (a tiny gamma shape) and, past the refusal, deterministic times."""
    replayed = []
    replay = fast.simulate_row

    def counted(*args):
        replayed.append(args[1].name)
        return replay(*args)

    monkeypatch.setattr(fast, "simulate_row", counted)
    tiny = {"dist": "gamma", "shape": 0.01, "scale": 1.0, "per": "chunk"}
    schemes = grid_schemes(deadlines=(0.5,))
    exp = experiment(schemes, compute=tiny, network=NETWORKS["latency"], trials=30)
    check(exp)
    assert replayed
    deterministic = {"dist": "deterministic", "value": 1.0}
    for network in ("free", "latency"):
        exp = experiment(
            schemes,
            compute=deterministic,
            prob=0.15,
            network=NETWORKS[network],
            cluster={"slowdown": [1.0 + (j % 3) for j in range(12)]},
            trials=30,
        )
        des, _ = run_trials(exp, 0, exp.trials)
        assert_same_rows(des, run_trials_fast(exp, 0, exp.trials))


def test_continuous_draws_need_no_replay(monkeypatch):
    monkeypatch.setattr(fast, "simulate_row", lambda *a: pytest.fail("replayed a continuous trial"))
    exp = experiment(grid_schemes(deadlines=(2.0,)), network=NETWORKS["free"], trials=50)
    check(exp)


def test_problems_name_settings_fast_does_not_know(monkeypatch):
    """A setting added to the config later (here: pretend latency is new) is reported once it
    leaves its default, rather than ignored."""
    known = {**choice.KNOWN, "Network": choice.KNOWN["Network"] - {"latency"}}
    monkeypatch.setattr(choice, "KNOWN", known)
    exp = experiment([{"protocol": "uncoded"}], network={"latency": 0.1})
    assert [key for key, _ in fast_problems(exp)] == ["cluster.network.latency"]
    assert fast_problems(experiment([{"protocol": "uncoded"}])) == []


def test_progress_counts_every_trial():
    exp = experiment([{"protocol": "partial_gc", "load": 4}], trials=300, gradients="none")
    seen = []
    run_trials_fast(exp, 10, 290, progress=seen.append)
    assert sum(seen) == 290
