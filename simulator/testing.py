"""The conformance suite: the checks every protocol must pass, chosen by what it declares.

Like scikit-learn's ``check_estimator``, the suite is part of the package so that a protocol
written outside this repository can be held to the same contract. ``protocol_checks(cls)``
yields ``(name, check)`` pairs; ``check(cls)`` raises ``AssertionError`` when the protocol
breaks the contract. Which checks a protocol gets follows from its ``tags`` (``coding.base.Tags``)
and its ``examples`` (scheme parameters on 12 workers), never from its name:

- every protocol: its config model and plan, decoding against the true gradient, the event
  trace against the summary counts and the declared message kinds, crashes as ``tags.replans``
  says, determinism (same seed, any split into trial ranges), a trial with every worker down;
- ``tags.fast``: the fast engine gives the event engine's rows on several networks (and, through
  its replay, on tied compute times); without it the engine choice keeps the scheme on the event
  engine while the others of a run stay fast, and ``engine: fast`` is refused;
- ``tags.tie_safe``: rows agree on deterministic compute times without any replay needed;
  otherwise such times keep the scheme off the fast engine;
- approximate mode (an example with a deadline): a later deadline never leaves a larger
  residual.

In a test suite::

    from simulator.coding.registry import PROTOCOLS
    from simulator.testing import parametrize_with_checks

    @parametrize_with_checks(PROTOCOLS.values())
    def test_protocol(protocol, check):
        check(protocol)

The experiments are small (12 workers, tens of trials) so the whole suite runs in seconds per
protocol; the properties checked hold trial by trial, so few trials suffice to catch a breach.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .coding.base import Protocol, Trial
from .coding.layout import scheme_assignment
from .coding.registry import PROTOCOLS, build
from .coding.scheme_config import AssignedScheme, LoadedScheme, SplitScheme
from .config import Experiment, from_dict
from .engine.choice import fast_problems, scheme_engines
from .engine.fast import run_trials_fast
from .errors import ConfigError
from .runner import run, run_range, run_trials
from .schema import ENGINE_SUMMARY_COLUMNS, SUMMARY, SUMMARY_COLUMNS, TOLERANCES

if TYPE_CHECKING:
    import pytest

Check = Callable[[type[Protocol]], None]

WORKERS = 12
"""The cluster every example is written for (``Protocol.examples``)."""
EXACT = 1e-20
"""rel_error of an exact decode: rounding only (observed 1e-33 to 1e-23 on these sizes)."""
ZERO_RESIDUAL = 1e-12
"""A coefficient-space residual this small is rounding: the decode is exact."""
NETWORKS = {
    "free": {},
    "latency": {"latency": 0.05},
    "bandwidth": {"latency": 0.01, "time_per_float": 1e-3},
}
"""The networks the engines are compared on: instant, a fixed delay, a size-dependent one."""
PARETO = {"dist": "pareto", "scale": 1.0, "alpha": 2.0}
DETERMINISTIC = {"dist": "deterministic", "value": 1.0}


def experiment(
    name: str,
    example: dict,
    *,
    trials: int = 60,
    seed: int = 11,
    compute: dict | None = None,
    failures: dict | None = None,
    network: dict | None = None,
    events: int = 0,
    engine: str = "auto",
    others: Iterable[dict] = (),
    slowdown: list[float] | None = None,
) -> Experiment:
    """One scheme (``protocol: name`` with the example's parameters, plus ``others``) on the
    suite's cluster: 12 workers, heavy-tailed per-worker times, some workers down."""
    cluster: dict[str, Any] = {
        "workers": WORKERS,
        "compute": compute or {**PARETO, "per": "worker"},
        "failures": {"prob": 0.08} if failures is None else failures,
        "network": network or {},
    }
    if slowdown is not None:
        cluster["slowdown"] = slowdown
    return from_dict(
        {
            "seed": seed,
            "trials": trials,
            "engine": engine,
            "cluster": cluster,
            "data": {"dim": 12, "gradients": "gaussian"},
            "output": {"events_trials": events},
            "schemes": [{"protocol": name, **example}, *others],
        }
    )


def assert_same_rows(des: pd.DataFrame, fast: pd.DataFrame) -> None:
    """Every column of ``schema.SUMMARY`` agrees as its ``agree`` says (exact, time, numeric):
    a column added to the schema is compared without a change here. The frames are a run's
    rows (every column) or an engine's (the columns engines fill)."""
    assert list(fast.columns) == list(des.columns)
    assert list(des.columns) in (list(SUMMARY_COLUMNS), list(ENGINE_SUMMARY_COLUMNS))
    assert fast.dtypes.equals(des.dtypes)
    assert len(fast) == len(des)
    for column in (c for c in SUMMARY if c.name in des.columns):
        a, b = fast[column.name].to_numpy(), des[column.name].to_numpy()
        if column.agree == "exact":
            same = (a == b) | (pd.isna(a) & pd.isna(b))
        else:
            rtol, atol = TOLERANCES[column.agree]
            with np.errstate(invalid="ignore"):
                same = np.isclose(a.astype(float), b.astype(float), rtol=rtol, atol=atol,
                                  equal_nan=True)  # fmt: skip
        if not np.all(same):
            first = int(np.flatnonzero(~same)[0])
            raise AssertionError(
                f"{column.name} differs in {int(np.count_nonzero(~same))} of {len(a)} rows "
                f"({column.agree}); first: scheme {des['scheme'].iloc[first]!r}, trial "
                f"{des['trial'].iloc[first]}: fast {a[first]}, des {b[first]}"
            )


def _des(exp: Experiment) -> tuple[pd.DataFrame, pd.DataFrame]:
    return run_trials(exp, 0, exp.trials)


def _fast(exp: Experiment) -> pd.DataFrame:
    return run_trials_fast(exp, 0, exp.trials, build(exp))


def _protocol(exp: Experiment) -> Protocol:
    (protocol, *_) = build(exp)
    return protocol


# --------------------------------------------------------------------------------------------
# The checks. Each takes the protocol class (and an example where it runs one).


def check_declaration(cls: type[Protocol]) -> None:
    """The protocol is registered under its name and declares examples and a config model:
    without examples the rest of the suite would check nothing, and an unregistered protocol
    is not reachable from a config."""
    assert isinstance(cls.name, str) and cls.name, "a protocol needs a name"
    assert PROTOCOLS.get(cls.name) is cls, f"{cls.name} is not registered in coding/registry.py"
    assert cls.examples, f"{cls.name} declares no examples for the conformance suite"
    protocol = cls.config.model_fields["protocol"].annotation
    assert protocol == typing.Literal[cls.name], (
        f"{cls.config.__name__}.protocol must be Literal[{cls.name!r}], got {protocol}"
    )


def check_config_round_trip(cls: type[Protocol], example: dict) -> None:
    """The example is a valid scheme entry on 12 workers, parses into the protocol's own config
    model, and survives the round trip through the resolved config (what ``config.yaml``
    holds), so a run can be reproduced from its own output. Another protocol's name is
    refused by the model (the discriminator really is the ``protocol`` key)."""
    exp = experiment(cls.name, example)
    spec = exp.schemes[0]
    assert type(spec) is cls.config, f"parsed as {type(spec).__name__}, not {cls.config.__name__}"
    again = from_dict(exp.resolved())
    assert type(again.schemes[0]) is cls.config
    unlabelled = again.schemes[0].model_copy(update={"label": None})
    assert unlabelled == spec, (again.schemes[0], spec)
    assert again.labels() == exp.labels() and again.resolved() == exp.resolved()
    wrong = {**spec.model_dump(), "protocol": f"not_{cls.name}"}
    try:
        cls.config.model_validate(wrong)
    except ValueError:  # pydantic's ValidationError
        pass
    else:
        raise AssertionError(f"{cls.config.__name__} accepted protocol: not_{cls.name}")


def check_plan(cls: type[Protocol], example: dict) -> None:
    """The plan is a processing order per worker over chunks that exist, without repeats,
    covering every chunk (unless ``tags.random_layout``: a random draw may miss one); where the
    scheme has an assignment, each order is a permutation of the worker's assigned chunks and
    every chunk has the copies decoding needs. Planning is a function of the config and seed
    (the same orders twice)."""
    exp = experiment(cls.name, example)
    spec, protocol = exp.schemes[0], _protocol(exp)
    assert isinstance(protocol, cls)
    orders = protocol.orders
    assert len(orders) == WORKERS, f"{len(orders)} orders for {WORKERS} workers"
    held = np.zeros(exp.chunks, dtype=int)
    for worker, order in enumerate(orders):
        assert all(isinstance(c, int | np.integer) and 0 <= c < exp.chunks for c in order), order
        assert len(set(order)) == len(order), f"worker {worker} repeats a chunk: {order}"
        held[list(order)] += 1
    if not cls.tags.random_layout:
        assert held.min() >= 1, f"chunks nobody computes: {np.flatnonzero(held == 0).tolist()}"
    assert protocol.steps == max(1, *(len(order) for order in orders))
    assert 1 <= protocol.upload_size <= exp.data.dim
    if isinstance(spec, SplitScheme):
        assert held.max() == 1, "a split scheme computes each chunk once"
    if isinstance(spec, LoadedScheme) and not cls.tags.random_layout:
        assert all(len(order) == spec.load for order in orders), "every worker holds load chunks"
    if isinstance(spec, AssignedScheme):
        assignment = scheme_assignment(
            spec, WORKERS, exp.chunks, exp.seed, exp.labels()[0], exp.source_dir
        )
        for worker, order in enumerate(orders):
            assert sorted(order) == sorted(assignment[worker]), (worker, order)
        assert held.min() >= spec.copies_needed(), "a chunk has fewer holders than decoding needs"
    assert _protocol(experiment(cls.name, example)).orders == orders, "planning is not repeatable"


def check_decodes_the_gradient(cls: type[Protocol], example: dict) -> None:
    """Decoded estimates are the true gradient sum to the protocol's ``error_bound()`` when it
    is exact. A protocol that is not exact must say why (``tags.approximate`` or a deadline);
    then rel_error is finite, is at rounding level exactly when the decoder's residual is, and
    (``tags.approximate``) really is an approximation on some trial. A deadline means every
    trial decodes by it. Undecoded rows say so in every column (inf, NaN, nothing used)."""
    exp = experiment(cls.name, example)
    protocol = _protocol(exp)
    summary, _ = _des(exp)
    decoded = summary[summary.decoded]
    assert len(decoded) >= 10, "too few decoded trials to check anything"
    errors = decoded.rel_error.to_numpy()
    assert np.isfinite(errors).all(), "a decoded trial has no finite rel_error"
    assert np.isfinite(decoded.completion_time).all()
    assert (decoded.chunks_used <= decoded.chunks_computed).all()
    if protocol.exact:
        bound = protocol.error_bound()
        assert bound < 1, f"an exact decoder must bound its error on {WORKERS} workers"
        worst = decoded.loc[decoded.rel_error.idxmax()]
        assert errors.max() <= bound, (
            f"rel_error {worst.rel_error:.3g} > {bound:g}, trial {worst.trial}"
        )
        assert (decoded.residual <= ZERO_RESIDUAL).all(), "an exact decode left a residual"
    else:
        assert cls.tags.approximate or protocol.deadline is not None, (
            f"{cls.name} is not exact but declares neither tags.approximate nor a deadline"
        )
        zero = decoded.residual.to_numpy() <= ZERO_RESIDUAL
        assert (errors[zero] <= EXACT).all(), "no residual, yet the estimate is off"
        assert (errors[~zero] > EXACT).all(), "a residual, yet the estimate is exact"
    if cls.tags.approximate:
        assert (errors > EXACT).any(), "tags.approximate, yet every decode was exact"
    if protocol.deadline is not None:
        assert summary.decoded.all(), "with a deadline every trial decodes"
        assert (summary.completion_time <= protocol.deadline).all()
    undecoded = summary[~summary.decoded]
    assert np.isinf(undecoded.completion_time).all()
    assert undecoded.rel_error.isna().all() and undecoded.residual.isna().all()
    assert (undecoded.chunks_used == 0).all()


def check_counts_match_the_trace(cls: type[Protocol], example: dict) -> None:
    """Every count of the summary is a sum over the event trace, on a run with crashes and a
    network that costs time; the message kinds are the declared ones (control messages only
    with ``tags.control``, downloads only with ``tags.downloads``) and every upload is
    ``upload_size`` floats. Causality: nothing is sent by a crashed worker after its crash,
    nothing happens after the decode, no upload arrives before a chunk was computed, and an
    exact decode had every chunk computed somewhere."""
    exp = experiment(
        cls.name,
        example,
        trials=40,
        events=40,
        failures={"prob": 0.08, "crash_rate": 0.02, "detect_timeout": 0.5},
        network={"latency": 0.01, "time_per_float": 1e-4},
    )
    protocol = _protocol(exp)
    summary, events = _des(exp)
    assert (events.kind == "crash").any() and summary.decoded.any(), "the run tests nothing"
    assert (summary.upload_floats == summary.messages * protocol.upload_size).all()
    if not cls.tags.control:
        assert (summary.control_messages == 0).all(), "control messages without tags.control"
    if not cls.tags.downloads:
        assert (summary.download_floats == 0).all(), "downloads without tags.downloads"
    uploads = events[events.kind == "upload_sent"]
    assert (uploads["size"] == protocol.upload_size).all()
    assert (events[events.kind == "control_sent"]["size"] == 1).all()
    for row in summary.itertuples():
        ev = events[events.trial == row.trial]
        sent = ev[ev.kind == "upload_sent"]
        assert row.upload_floats == sent["size"].sum(), row.trial
        assert row.messages == len(sent), row.trial
        assert row.control_messages == (ev.kind == "control_sent").sum(), row.trial
        assert row.download_floats == ev[ev.kind == "download_sent"]["size"].sum(), row.trial
        done = ev[ev.kind == "chunk_done"]
        assert row.chunks_computed == len(done), row.trial
        assert (ev.time <= row.completion_time).all(), row.trial
        for crash in ev[ev.kind == "crash"].itertuples():
            after = ev[(ev.worker == crash.worker) & (ev.time > crash.time)]
            assert not after.kind.isin(["control_sent", "upload_sent", "chunk_done"]).any()
        received = ev[ev.kind == "upload_received"].time
        if len(received):
            assert received.min() >= done.time.min(), row.trial
        if row.decoded and protocol.exact:
            assert set(done.chunk) == set(range(exp.chunks)), row.trial


def check_crashes_as_declared(cls: type[Protocol], example: dict) -> None:
    """``tags.replans`` is true exactly when the protocol reacts to a crash the PS notices
    (overrides ``Trial.worker_failed``); without it, when the PS notices a crash changes no
    row, and with it, some row."""
    protocol = _protocol(experiment(cls.name, example))
    trial = protocol.new_trial(np.zeros(WORKERS, dtype=bool), None)
    reacts = type(trial).worker_failed is not Trial.worker_failed
    assert reacts == cls.tags.replans, f"tags.replans={cls.tags.replans}, reacts={reacts}"
    rows = []
    for timeout in (0.0, 1e6):
        failures = {"prob": 0.0, "crash_rate": 0.05, "detect_timeout": timeout}
        summary, events = _des(
            experiment(cls.name, example, trials=40, events=40, failures=failures)
        )
        assert timeout > 0 or (events.kind == "crash_detected").any(), "no crash was noticed"
        rows.append(summary)
    if cls.tags.replans:
        assert not rows[0].equals(rows[1]), "tags.replans, yet noticing crashes changed nothing"
    else:
        pd.testing.assert_frame_equal(rows[0], rows[1])


def check_deterministic(cls: type[Protocol], example: dict) -> None:
    """Same config and seed, same rows and traces; another seed, other draws (the seed is
    used); and any split of the trials into ranges gives the same rows (a range is drawn on
    its own, which parallel and streamed runs rely on), on the engine ``auto`` picks."""
    exp = experiment(cls.name, example, trials=40, events=10)
    first, again = run(exp), run(exp)
    pd.testing.assert_frame_equal(first.summary, again.summary)
    pd.testing.assert_frame_equal(first.events, again.events)
    other = run(experiment(cls.name, example, trials=40, events=10, seed=12)).summary
    assert not first.summary.equals(other), "another seed gave the same rows"
    parts = [run_range(exp, 0, 7), run_range(exp, 7, 26), run_range(exp, 33, 7)]
    pd.testing.assert_frame_equal(
        pd.concat([p[0] for p in parts], ignore_index=True), first.summary
    )
    pd.testing.assert_frame_equal(pd.concat([p[1] for p in parts], ignore_index=True), first.events)


def check_all_down(cls: type[Protocol], example: dict) -> None:
    """With every worker down nothing is computed or sent. Without a deadline the PS never
    decodes; with one it decodes nothing at the deadline: a zero estimate (rel_error 1), no
    chunks used, a positive residual."""
    exp = experiment(cls.name, example, trials=3, failures={"workers": list(range(WORKERS))})
    protocol = _protocol(exp)
    summary, _ = _des(exp)
    for column in ("messages", "upload_floats", "download_floats", "control_messages"):
        assert (summary[column] == 0).all(), column
    assert (summary.chunks_computed == 0).all() and (summary.chunks_used == 0).all()
    if protocol.deadline is None:
        assert not summary.decoded.any(), "decoded with every worker down"
        assert np.isinf(summary.completion_time).all()
    else:
        assert summary.decoded.all() and (summary.completion_time == protocol.deadline).all()
        assert (summary.rel_error == 1.0).all() and (summary.residual > 0).all()


def check_fast_agrees(cls: type[Protocol], example: dict) -> None:
    """``tags.fast``: the fast engine gives the event engine's rows, column by column as the
    schema says, on every network of ``NETWORKS``; no setting of these runs keeps it off."""
    for name, network in NETWORKS.items():
        exp = experiment(cls.name, example, network=network)
        assert fast_problems(exp) == [], (name, fast_problems(exp))
        des, _ = _des(exp)
        assert des.decoded.any()
        assert_same_rows(des, _fast(exp))


def check_not_fast(cls: type[Protocol], example: dict) -> None:
    """Without ``tags.fast``: the engine choice says why (the scheme's protocol key),
    ``engine: fast`` is refused, and ``engine: auto`` runs this scheme on the event engine while
    a fast-capable scheme of the same run stays fast, with the rows of an all-event run."""
    exp = experiment(cls.name, example)
    assert "schemes.0.protocol" in dict(fast_problems(exp)), fast_problems(exp)
    try:
        experiment(cls.name, example, engine="fast")
    except ConfigError as error:
        assert "schemes.0.protocol" in str(error), str(error)
    else:
        raise AssertionError("engine: fast accepted a protocol without tags.fast")
    partner = next((c for c in PROTOCOLS.values() if c is not cls and c.tags.fast), None)
    if partner is None:
        return
    others = [{"protocol": partner.name, **partner.examples[0]}]
    mixed = experiment(cls.name, example, others=others)
    assert scheme_engines(mixed) == ["des", "fast"]
    everything_des = experiment(cls.name, example, others=others, engine="des")
    rows = run_range(mixed, 0, mixed.trials).summary
    assert_same_rows(_des(everything_des)[0], rows)


def check_ties(cls: type[Protocol], example: dict) -> None:
    """Deterministic compute times make events simultaneous. ``tags.tie_safe``: the rows do
    not depend on their order, so the fast engine may run them (and gives the event engine's
    rows); otherwise the engine choice keeps the scheme on the event engine, naming the
    compute key. A fast protocol's replay of tied trials still gives the event engine's rows."""
    slowdown = [1.0 + (j % 3) for j in range(WORKERS)]
    failures = {"prob": 0.15}
    for network in ("free", "latency"):
        exp = experiment(
            cls.name,
            example,
            trials=30,
            compute=DETERMINISTIC,
            failures=failures,
            network=NETWORKS[network],
            slowdown=slowdown,
        )
        if cls.tags.tie_safe:
            assert fast_problems(exp) == [], fast_problems(exp)
        else:
            assert [key for key, _ in fast_problems(exp)][-1] == "cluster.compute.dist"
            assert scheme_engines(exp) == ["des"]
        if cls.tags.fast:
            assert_same_rows(_des(exp)[0], _fast(exp))


def check_later_deadline(cls: type[Protocol], example: dict) -> None:
    """Approximate mode: a later deadline never leaves a larger residual in any trial (the PS
    only learns more by waiting), and the latest leaves less on average than the earliest."""
    residuals = []
    for deadline in (0.5, 1.5, 3.0, 6.0, 12.0):
        exp = experiment(cls.name, {**example, "deadline": deadline}, trials=40)
        residuals.append(_des(exp)[0].sort_values("trial").residual.to_numpy())
    stacked = np.array(residuals)
    assert np.all(np.diff(stacked, axis=0) <= 1e-9), "residual increased with the deadline"
    assert stacked[0].mean() > stacked[-1].mean()


# --------------------------------------------------------------------------------------------
# Which checks a protocol gets


def protocol_checks(cls: type[Protocol]) -> Iterator[tuple[str, Check]]:
    """The checks ``cls`` must pass, by its tags and examples: ``(name, check)`` pairs where
    ``check(cls)`` raises AssertionError on a breach. Names are unique per protocol."""
    yield "check_declaration", check_declaration
    per_example: list[Callable[..., None]] = [
        check_config_round_trip,
        check_plan,
        check_decodes_the_gradient,
        check_counts_match_the_trace,
        check_crashes_as_declared,
        check_deterministic,
        check_all_down,
        check_fast_agrees if cls.tags.fast else check_not_fast,
        check_ties,
    ]
    for i, example in enumerate(cls.examples):
        checks = list(per_example)
        if "deadline" in example:
            checks.append(check_later_deadline)
        for check in checks:
            bound = functools.partial(check, example=example)
            functools.update_wrapper(bound, check)
            yield f"{check.__name__}[{i}]", bound


def parametrize_with_checks(classes: Iterable[type[Protocol]]) -> pytest.MarkDecorator:
    """A ``pytest.mark.parametrize("protocol, check", ...)`` over every check of every class,
    with ids ``<protocol>-<check>[<example>]``; the test body is ``check(protocol)``."""
    import pytest  # a test-time dependency only: the package does not need it to run

    params = [
        pytest.param(cls, check, id=f"{cls.name}-{name}")
        for cls in classes
        for name, check in protocol_checks(cls)
    ]
    return pytest.mark.parametrize("protocol, check", params)
