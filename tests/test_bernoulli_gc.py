"""bernoulli_gc (Charles, Papailiopoulos & Ellenberg 2017): a worked example by hand, what the
optimal decoder makes exact, the one-step decoder's unbiasedness over code draws, and the two
engines' rows. The protocol-wide checks (conformance, fast == des on its examples) run on it
through ``BernoulliGC.examples``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.cluster import gradients
from simulator.coding.bernoulli_gc import BernoulliGC
from simulator.coding.registry import build
from simulator.config import ConfigError, from_dict
from simulator.engine import fast
from simulator.runner import run, run_trials

from .test_fast_engine import NETWORKS, assert_same_rows, check, experiment


def bernoulli(**scheme) -> dict:
    return {"protocol": "bernoulli_gc", **scheme}


def planned(workers: int, **scheme) -> BernoulliGC:
    """The protocol planned for one scheme on ``workers`` workers (no run)."""
    exp = from_dict(
        {"trials": 1, "data": {"dim": 3},
         "cluster": {"workers": workers, "compute": {"dist": "exponential", "rate": 1.0}},
         "schemes": [bernoulli(**scheme)]}
    )  # fmt: skip
    (p,) = build(exp)
    return p


# --------------------------------------------------------------------------------------------
# Worked example: m = N = 4, load 2, k = 2, chunk time 1, W2 down, W3 holds nothing.
#   W0 {D0, D1}: uploads g0 + g1 at t = 2
#   W1 {D0, D1, D2, D3}: uploads g0 + g1 + g2 + g3 = g at t = 4 (the second upload: decode)
#   W2 {D2, D3}: down;  W3 {}: sends nothing
# one_step: constant m / (k load) = 4 / (2 * 2) = 1, g_hat = y0 + y1 = g + (g0 + g1);
#   coefficients (2, 2, 1, 1), residual (2-1)^2 + (2-1)^2 = 2.
# optimal: min ||(w0 + w1, w0 + w1, w1, w1) - 1|| gives w = (0, 1): g_hat = y1 = g exactly
#   (the all-ones vector is row 1 itself), residual 0; A_S A_S^T = [[2, 2], [2, 4]] has
#   eigenvalues 3 -+ sqrt(5), so cond(A_S) = sqrt((3 + sqrt 5) / (3 - sqrt 5)) = (3 + sqrt 5) / 2.

HAND = np.array(
    [[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]],
    dtype=bool,
)


def worked_example(monkeypatch, decoding: str):
    monkeypatch.setattr(BernoulliGC, "draw_assignment", lambda self: HAND)
    exp = from_dict(
        {
            "trials": 1,
            "engine": "des",
            "cluster": {
                "workers": 4,
                "compute": {"dist": "deterministic", "value": 1.0},
                "failures": {"workers": [2]},
            },
            "data": {"dim": 5, "gradients": "gaussian"},
            "output": {"events_trials": 1},
            "schemes": [bernoulli(load=2, k=2, decoding=decoding)],
        }
    )
    result = run(exp)
    (row,) = result.summary.itertuples()
    grads = gradients(exp, 0)
    return row, grads, result.events


@pytest.mark.parametrize("decoding", ["one_step", "optimal"])
def test_worked_example_counts(monkeypatch, decoding):
    row, _, events = worked_example(monkeypatch, decoding)
    assert row.decoded and row.completion_time == 4.0
    assert row.messages == 2 and row.upload_floats == 2 * 5
    assert row.chunks_computed == 6  # W0's two and W1's four; W2 is down, W3 has none
    assert row.chunks_used == 6
    senders = events[events.kind == "upload_sent"].worker.tolist()
    assert senders == [0, 1]


def test_worked_example_one_step(monkeypatch):
    row, grads, _ = worked_example(monkeypatch, "one_step")
    truth = grads.sum(axis=0)
    extra = grads[0] + grads[1]  # g_hat - g
    assert row.rel_error == pytest.approx(float(extra @ extra) / float(truth @ truth), rel=1e-12)
    assert row.residual == 2.0
    assert row.decode_cond == 1.0


def test_worked_example_optimal(monkeypatch):
    row, _, _ = worked_example(monkeypatch, "optimal")
    assert row.rel_error < 1e-28
    assert row.residual < 1e-28
    assert row.decode_cond == pytest.approx((3 + math.sqrt(5)) / 2, rel=1e-12)


def test_decoder_weights_by_hand(monkeypatch):
    """The decoder itself, on the same matrix: a function of the set of senders, so their
    arrival order does not move a bit."""
    monkeypatch.setattr(BernoulliGC, "draw_assignment", lambda self: HAND)
    p = planned(4, load=2, k=2)
    weights, condition, residual = p.solve((0, 1))
    np.testing.assert_allclose(weights, [0.0, 1.0], atol=1e-14)
    grads = np.random.default_rng(0).standard_normal((4, 3))
    ys = {w: p.payload(w, grads) for w in (0, 1)}
    one = p.decode([0, 1], [ys[0], ys[1]])
    other = p.decode([1, 0], [ys[1], ys[0]])
    assert np.array_equal(one.estimate, other.estimate)
    assert (one.cond, one.residual, one.chunks_used) == (other.cond, other.residual, 6)


# --------------------------------------------------------------------------------------------
# Optimal decoding as k -> m


def k_sweep(seed: int, ks=(4, 6, 8, 10, 12), trials: int = 150):
    """Schemes with the same load share one draw (the stream is keyed by the load), so every k
    decodes on the same code and the same realizations."""
    exp = from_dict(
        {
            "seed": seed,
            "trials": trials,
            "cluster": {"workers": 12, "compute": {"dist": "pareto", "scale": 1.0, "alpha": 2.0}},
            "data": {"dim": 8, "gradients": "gaussian"},
            "output": {"events_trials": 0},
            "schemes": [bernoulli(load=4, k=k, label=f"k{k}") for k in ks],
        }
    )
    protocols = build(exp)
    assert all(np.array_equal(p.assignment, protocols[0].assignment) for p in protocols)
    summary = run(exp).summary
    by_k = {k: summary[summary.scheme == f"k{k}"].set_index("trial") for k in ks}
    return protocols[0].assignment, by_k


def test_optimal_decoding_approaches_the_sum_and_is_exact_with_full_rank():
    """Seed 1's draw has rank 12 and no empty worker: at k = m the received rows are all of
    A, an invertible matrix, and the estimate is g. On the way there the first k uploads are
    nested, so a later k never leaves a larger residual, trial by trial."""
    assignment, by_k = k_sweep(seed=1)
    assert np.linalg.matrix_rank(assignment.astype(float)) == 12 and assignment.any(axis=1).all()
    means = [by_k[k].rel_error.mean() for k in by_k]
    assert all(a > b for a, b in zip(means, means[1:], strict=False)), means
    assert means[0] > 0.05
    residuals = np.array([by_k[k].residual.to_numpy() for k in by_k])
    assert np.all(np.diff(residuals, axis=0) <= 1e-12)
    full = by_k[12]
    assert full.decoded.all()
    assert (full.rel_error < 1e-20).all() and (full.residual < 1e-20).all()


def test_optimal_decoding_is_exact_exactly_when_ones_is_in_the_row_span():
    """Seed 4's draw leaves chunk(s) on no worker (rank 11): even every upload cannot give g,
    and the residual counts at least one missing chunk. Wherever the residual is zero (the
    all-ones vector in the row span of the received rows), the estimate is exact."""
    assignment, by_k = k_sweep(seed=4)
    uncovered = int((~assignment.any(axis=0)).sum())
    assert uncovered >= 1
    full = by_k[12]
    assert (full.residual >= uncovered - 1e-9).all() and (full.rel_error > 1e-6).all()
    for k, rows in by_k.items():
        exact = rows.residual < 1e-20
        assert (rows.rel_error[exact] < 1e-20).all(), k
        assert (rows.rel_error[rows.residual > 1e-6] > 1e-12).all(), k


# --------------------------------------------------------------------------------------------
# One-step decoding: unbiased over the code draws, for a set of senders chosen independently


def test_one_step_is_unbiased_over_code_draws():
    """For a fixed set S of k senders, chunk i's coefficient is c * Binomial(k, p) with
    c = 1 / (k p), p = load / m: mean 1, and the residual sum_i (c n_i - 1)^2 has mean
    N (1 - p) / (k p). Checked over 3,000 draws (the protocol's own draw, seed by seed) at
    m = 20, load 3, k = 16, within 4 standard errors."""
    m, load, k, draws = 20, 3, 16, 3000
    p = planned(m, load=load, k=k, decoding="one_step")
    grads = np.random.default_rng(7).standard_normal((m, 3))
    truth = grads.sum(axis=0)
    senders = list(range(k))  # any set chosen without looking at the draw
    projections, residuals, coefficients = [], [], []
    for seed in range(draws):
        p.seed = seed
        p.use(p.draw_assignment())
        held = [w for w in senders if p.orders[w]]  # a worker holding nothing never uploads
        result = p.decode(held, [p.payload(w, grads) for w in held])
        projections.append(float(result.estimate @ truth) / float(truth @ truth))
        residuals.append(result.residual)
        coefficients.append(p.scale * p.assignment[senders].sum(axis=0))
    prob = load / m

    def within(values, expected):
        values = np.asarray(values, dtype=float)
        se = values.std(ddof=1) / math.sqrt(len(values))
        assert abs(values.mean() - expected) < 4 * se, (values.mean(), expected, se)

    within(projections, 1.0)
    within(np.ravel(coefficients), 1.0)
    within(residuals, m * (1 - prob) / (k * prob))


# --------------------------------------------------------------------------------------------
# The engines agree


@pytest.mark.parametrize("decoding", ["one_step", "optimal"])
@pytest.mark.parametrize("network", ["free", "bandwidth"])
def test_fast_equals_des(decoding, network):
    schemes = [
        bernoulli(load=3, k=7, decoding=decoding),
        bernoulli(load=3, fraction=1.0, decoding=decoding, label="all"),
        bernoulli(load=5, k=1, decoding=decoding, label="first"),
    ]
    per_chunk = {"dist": "pareto", "scale": 1.0, "alpha": 2.0, "per": "chunk"}
    des = check(experiment(schemes, compute=per_chunk, network=NETWORKS[network], trials=120))
    assert des.decoded.any()
    check(experiment(schemes, network=NETWORKS[network], trials=60, gradients="none"))


def test_tied_trials_are_replayed(monkeypatch):
    """Equal arrival times (deterministic chunk times, bypassing the engine choice that would
    refuse them) decide which upload is the k-th: those trials go to the event engine."""
    replayed = []
    replay = fast.simulate_row

    def counted(*args):
        replayed.append(args[1].name)
        return replay(*args)

    monkeypatch.setattr(fast, "simulate_row", counted)
    schemes = [bernoulli(load=3, k=6), bernoulli(load=3, k=6, decoding="one_step", label="o")]
    for network in ("free", "latency"):
        exp = experiment(
            schemes,
            compute={"dist": "deterministic", "value": 1.0},
            prob=0.15,
            network=NETWORKS[network],
            cluster={"slowdown": [1.0 + (j % 3) for j in range(12)]},
            trials=30,
        )
        des, _ = run_trials(exp, 0, exp.trials)
        assert_same_rows(des, fast.run_trials_fast(exp, 0, exp.trials, build(exp)))
    assert "bernoulli_gc" in replayed


# --------------------------------------------------------------------------------------------
# Config


@pytest.mark.parametrize(
    "scheme, chunks, key",
    [
        (bernoulli(load=3), None, "schemes.0.k"),
        (bernoulli(load=3, k=4, fraction=0.5), None, "schemes.0.k"),
        (bernoulli(load=3, k=13), None, "schemes.0.k"),
        (bernoulli(load=13, k=3), None, "schemes.0.load"),
        (bernoulli(load=3, k=3), 24, "data.chunks"),
        (bernoulli(load=3, k=3, decoding="exact"), None, "schemes.0.decoding"),
    ],
)
def test_config_problems_name_the_key(scheme, chunks, key):
    compute = {"dist": "exponential", "rate": 1.0}
    data = {"trials": 1, "cluster": {"workers": 12, "compute": compute}, "schemes": [scheme]}
    if chunks:
        data["data"] = {"chunks": chunks}
    with pytest.raises(ConfigError) as error:
        from_dict(data)
    assert key in [k for k, _ in error.value.problems], error.value.problems
