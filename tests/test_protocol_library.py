"""The protocol library against its defining properties (PROTOCOLS.md section 3): what is
particular to each protocol. The contract every protocol shares (decoding to the bound, counts
against the trace, declared tags, determinism, engine agreement) is the conformance suite,
``simulator.testing``, run by ``test_conformance.py``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.coding.base import CONTROL, DOWNLOAD, UPLOAD, Message
from simulator.coding.partial_gc import residual
from simulator.coding.registry import build
from simulator.config import from_dict
from simulator.runner import run

from .scenarios import play


def partial_protocol(workers: int, load: int, ell: int, mode="exact", deadline=None, dim=24):
    scheme = {"protocol": "partial_gc", "load": load, "ell": ell, "mode": mode}
    if deadline is not None:
        scheme["deadline"] = deadline
    exp = from_dict(
        {
            "trials": 1,
            "cluster": {"workers": workers, "compute": {"dist": "deterministic", "value": 1.0}},
            "data": {"dim": dim},
            "schemes": [scheme],
        }
    )
    (protocol,) = build(exp)
    return protocol


def drive(protocol, progress: list[int], grads: np.ndarray, approximate: bool):
    """Play the PS side by hand: worker j has processed its first progress[j] chunks."""
    trial = protocol.new_trial(np.zeros(protocol.workers, dtype=bool), grads)
    downloads = []
    for worker, done in enumerate(progress):
        for chunk in protocol.orders[worker][:done]:
            (msg,) = trial.chunk_done(worker, chunk, 0.0).send
            downloads += trial.ps_receive(msg, 0.0).send
    if approximate:
        downloads += trial.at_deadline(1.0).send
    decoded = False
    for msg in downloads:
        assert msg.kind == DOWNLOAD
        (upload,) = trial.worker_receive(msg.worker, msg, 0.0).send
        assert upload.kind == UPLOAD
        decoded = trial.ps_receive(upload, 0.0).decoded
    return trial, decoded


@pytest.mark.parametrize("workers, load", [(12, 4), (50, 6), (200, 10)])
def test_partial_gc_exact_for_every_ell_on_random_decodable_progress(workers, load):
    rng = np.random.default_rng(workers)
    for ell in range(1, load + 1):
        protocol = partial_protocol(workers, load, ell)
        for _ in range(3):
            # Random progress, raised until every chunk has ell processed copies.
            progress = rng.integers(0, load + 1, workers)
            while True:
                counts = np.zeros(workers, dtype=int)
                for j, k in enumerate(progress):
                    counts[protocol.orders[j][:k]] += 1
                if counts.min() >= ell:
                    break
                progress[rng.integers(workers)] = min(load, progress[rng.integers(workers)] + 1)
                progress = np.minimum(progress + (rng.random(workers) < 0.05), load)
            grads = rng.standard_normal((workers, 24))
            trial, decoded = drive(protocol, list(progress), grads, approximate=False)
            assert decoded
            result = trial.result()
            truth = grads.sum(axis=0)
            error = np.sum((result.estimate - truth) ** 2) / np.sum(truth**2)
            assert error < 1e-20, (ell, error, result.cond)
            assert result.residual == 0


@pytest.mark.parametrize("workers, load, ell", [(12, 4, 2), (60, 6, 3), (200, 10, 4)])
def test_partial_gc_residual_is_the_missing_rank(workers, load, ell):
    rng = np.random.default_rng(ell)
    protocol = partial_protocol(workers, load, ell, mode="approximate", deadline=1.0)
    for _ in range(5):
        progress = rng.integers(0, load + 1, workers)
        counts = np.zeros(workers, dtype=int)
        for j, k in enumerate(progress):
            counts[protocol.orders[j][:k]] += 1
        grads = rng.standard_normal((workers, 24))
        trial, _ = drive(protocol, list(progress), grads, approximate=True)
        result = trial.result()
        assert result.residual == residual(counts, ell) == np.maximum(0, ell - counts).sum()
        # Chunks with r_i >= ell are exact; the error is what the others miss, in projection.
        truth = grads.sum(axis=0)
        error = np.sum((result.estimate - truth) ** 2)
        assert (error < 1e-20 * np.sum(truth**2)) == (result.residual == 0)


def test_residual_worked_values():
    assert residual(np.array([0, 1, 2, 3]), 2) == 2 + 1
    assert residual(np.array([5, 5]), 5) == 0


def test_equal_speeds_partial_is_ell_and_original_is_load():
    for ell in (1, 2, 3, 4):
        partial, _, _ = play({"protocol": "partial_gc", "load": 4, "ell": ell}, 12, [1.0] * 12)
        original, _, _ = play({"protocol": "original_gc", "load": 4, "ell": ell}, 12, [1.0] * 12)
        assert partial.completion_time == ell
        assert original.completion_time == 4


def paired_run(ell: int, seed: int):
    exp = from_dict(
        {
            "seed": seed,
            "trials": 150,
            "cluster": {
                "workers": 15,
                "compute": {"dist": "lognormal", "mu": 0.0, "sigma": 1.0, "per": "chunk"},
                "slowdown": [1.0] * 12 + [3.0] * 3,
                "failures": {"prob": 0.1},
            },
            "data": {"dim": 30},
            "schemes": [
                {"protocol": "original_gc", "load": 5, "ell": ell},
                {"protocol": "partial_gc", "load": 5, "ell": ell},
            ],
        }
    )
    summary = run(exp).summary
    original = summary[summary.protocol == "original_gc"].set_index("trial").completion_time
    partial = summary[summary.protocol == "partial_gc"].set_index("trial").completion_time
    return original, partial


@pytest.mark.parametrize("ell", [1, 2, 3])
def test_partial_never_later_than_original_for_every_ell(ell):
    original, partial = paired_run(ell, seed=ell)
    assert (partial <= original).all()
    assert (partial < original).mean() > 0.9


def test_multi_message_finishes_with_partial_ell1_and_uploads_every_computed_chunk():
    exp = from_dict(
        {
            "seed": 5,
            "trials": 200,
            "cluster": {
                "workers": 10,
                "compute": {"dist": "weibull", "scale": 1.0, "shape": 0.7, "per": "chunk"},
                "failures": {"prob": 0.1},
            },
            "data": {"dim": 20},
            "schemes": [
                {"protocol": "multi_message", "load": 3},
                {"protocol": "partial_gc", "load": 3, "ell": 1},
            ],
        }
    )
    summary = run(exp).summary
    multi = summary[summary.protocol == "multi_message"].set_index("trial")
    partial = summary[summary.protocol == "partial_gc"].set_index("trial")
    pd.testing.assert_series_equal(multi.completion_time, partial.completion_time)
    decoded = multi[multi.decoded]
    n, d = 10, 20
    # Every computed chunk is uploaded whole: at least N*d floats (each chunk once), at most
    # one upload per chunk computation, and more than partial_gc's m*d whenever it mattered.
    assert (decoded.upload_floats == decoded.chunks_computed * d).all()
    assert (decoded.upload_floats >= n * d).all()
    assert (decoded.upload_floats >= partial[multi.decoded].upload_floats).all()
    assert decoded.upload_floats.mean() > 1.3 * partial[multi.decoded].upload_floats.mean()


def test_frc_opportunistic_decoding_needs_one_per_group():
    outcome, error, _ = play({"protocol": "frc", "load": 3}, 6, [1, 5, 5, 5, 5, 1], down=[0])
    # groups {0,1,2} and {3,4,5}: group 0's first upload is at 3*5 = 15, group 1's at 3.
    assert outcome.completion_time == 15 and error < 1e-20
    outcome, _, _ = play({"protocol": "frc", "load": 3}, 6, [1] * 6, down=[3, 4, 5])
    assert not outcome.decoded


def test_crashed_worker_sends_nothing_and_messages_carry_their_round():
    protocol = partial_protocol(4, 2, 1)
    trial = protocol.new_trial(np.zeros(4, dtype=bool), None)
    for worker in range(4):
        (msg,) = trial.chunk_done(worker, worker, 1.0).send
        reaction = trial.ps_receive(msg, 1.0)
    assert [m.kind for m in reaction.send] == [DOWNLOAD] * 4
    # Worker 1 fails before uploading: the PS drops chunk 1's only copy and waits.
    assert trial.worker_failed(1, 1.5).send == []
    assert not trial.planned
    # A stale round-1 upload is ignored.
    stale = Message(UPLOAD, 0, 24, payload=(1, None))
    assert not trial.ps_receive(stale, 1.6).decoded
    # Worker 0's second chunk (chunk 1) arrives: a new plan, round 2, without worker 1.
    reaction = trial.ps_receive(Message(CONTROL, 0, 1, chunk=1), 2.0)
    assert {m.worker for m in reaction.send} == {0, 2, 3}
    assert all(m.payload[0] == 2 for m in reaction.send)
