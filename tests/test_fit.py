"""``gcsim fit``: maximum-likelihood fits mapped onto our config keys, refusals, the trace path."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from simulator import fit, network_fit
from simulator.compute.registry import by_name
from simulator.config import from_dict, load_config
from simulator.errors import ConfigError
from simulator.runner import run

from .conftest import make_config, tree, write_config


def test_every_registered_law_is_fitted_or_says_why() -> None:
    assert fit.unfitted() == []


@pytest.mark.parametrize("dist", sorted(fit.FITTERS))
def test_fit_recovers_parameters_within_standard_errors(dist: str) -> None:
    """Samples drawn by the simulator's own ``draw`` at the law's example parameters: each
    fitted parameter lies within 4 bootstrap standard errors of the truth, and the law itself
    is not rejected by its KS test."""
    model = by_name(dist)
    truth = model.EXAMPLE
    sample = model.model_validate({"dist": dist, **truth}).draw(np.random.default_rng(7), (1500,))
    fitted = fit.fit_one(dist, sample)
    errors = fit.standard_errors(fitted, sample.size, reps=40, seed=1)
    for key, value in truth.items():
        se = errors[key]
        assert np.isfinite(se) and se > 0, (key, se)
        assert abs(fitted.params[key] - value) <= 4 * se + 1e-12 * abs(value), (key, fitted, se)
    assert fitted.ks_pvalue > 1e-3


def test_fit_ranks_the_true_law_near_the_top() -> None:
    """A clearly Pareto sample: Pareto wins on AIC over the light-tailed laws."""
    sample = by_name("pareto").model_validate({"dist": "pareto", "scale": 0.02, "alpha": 1.5})
    data = sample.draw(np.random.default_rng(3), (2000,))
    ranked = fit.fit_all(data, bootstrap=0)
    assert ranked[0].dist == "pareto"
    assert [f.aic for f in ranked] == sorted(f.aic for f in ranked)


@pytest.mark.parametrize("dist", sorted(fit.FITTERS))
def test_printed_block_loads_as_the_fitted_law(dist: str, tmp_path) -> None:
    """The block the CLI prints goes into a config unchanged (as an override of
    cluster.compute) and gives the same law back."""
    model = by_name(dist).model_validate({"dist": dist, **by_name(dist).EXAMPLE})
    fitted = fit.fit_one(dist, model.draw(np.random.default_rng(2), (300,)))
    value = fitted.block("chunk").removeprefix("compute: ")
    path = write_config(tmp_path / "c.yaml", make_config())
    exp = load_config(path, [f"cluster.compute={value}"])
    assert exp.cluster.compute.dist == dist
    for key, number in fitted.params.items():
        assert getattr(exp.cluster.compute, key) == pytest.approx(number, rel=1e-6)


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ([1.0, 2.0, 3.0], "at least 10"),
        ([1.0] * 9 + [np.nan] * 3, "not finite"),
        ([1.0] * 11 + [-0.5], "<= 0"),
        ([0.25] * 40, "deterministic, value: 0.25"),
    ],
)
def test_refuses_what_it_cannot_fit(values, needle: str, tmp_path, gcsim) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        fit.fit_all(np.array(values))
    pd.DataFrame({"t": values}).to_csv(tmp_path / "t.csv", index=False)
    before = tree(tmp_path)
    result = gcsim(["fit", "t.csv", "--column", "t", "--out", "fitted"], tmp_path)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.output
    assert tree(tmp_path) == before  # nothing written


def test_cli_fits_a_run_trace_and_writes_figure(tmp_path, gcsim) -> None:
    """From a simulated run's events: per-chunk draws give `per: chunk`, the chunk durations
    are the drawn times, and the network fit reads the configured latency back."""
    data = make_config(
        {
            "trials": 30,
            "output.events_trials": 30,
            "cluster.compute": {"dist": "gamma", "shape": 4.0, "scale": 0.25, "per": "chunk"},
            "cluster.network": {"latency": 0.125, "time_per_float": 0.0},
        }
    )
    path = write_config(tmp_path / "c.yaml", data)
    result = run(load_config(path))
    events = result.events
    durations, censored, per = fit.chunk_durations(events)
    assert per == "chunk" and durations.size >= 30 * 6 and censored.size > 0
    fitted, _ = network_fit.fit_network(events)
    assert fitted["latency"] == pytest.approx(0.125, abs=1e-9)
    assert fitted["ps_overhead"] <= 1e-9
    events.to_parquet(tmp_path / "events.parquet")
    out = gcsim(["fit", "events.parquet", "--out", "f", "--bootstrap", "5"], tmp_path)
    assert out.exit_code == 0, out.output
    assert "compute: {dist: " in out.stdout and "per: chunk" in out.stdout
    assert "network: {latency: 0.125, time_per_float: 0}" in out.stdout
    assert (tmp_path / "f" / "fit.png").stat().st_size > 10_000
    ranked = pd.read_csv(tmp_path / "f" / "fits.csv")
    assert len(ranked) == len(fit.FITTERS) and ranked["rank"].tolist() == list(range(1, 8))


def test_per_worker_draws_are_recognised(tmp_path) -> None:
    path = write_config(tmp_path / "c.yaml", make_config({"output.events_trials": 4}))
    _, _, per = fit.chunk_durations(run(load_config(path)).events)
    assert per == "worker"


@pytest.mark.parametrize(
    "compute",
    [
        {"dist": "shifted_exponential", "shift": 1.0, "rate": 2.0},
        {"dist": "weibull", "scale": 1.0, "shape": 1.5},
    ],
    ids=lambda c: c["dist"],
)
def test_chunks_cut_by_the_decode_are_fitted_as_censored(compute) -> None:
    """A trace of multi_message (it decodes while many chunks are running, and the slow ones
    are the likeliest to be cut): fitted as right-censored, the parameters are the injected
    ones within 3 bootstrap standard errors; the completed chunks alone are biased short, far
    beyond their standard errors (which is why the cut ones are kept)."""
    exp = from_dict({
        "seed": 4, "trials": 150, "data": {"dim": 8}, "output": {"events_trials": 150},
        "cluster": {"workers": 8, "compute": {**compute, "per": "chunk"}},
        "schemes": [{"protocol": "multi_message", "load": 3}],
    })  # fmt: skip
    done, cut, _ = fit.chunk_durations(run(exp).events)
    assert cut.size > 0.3 * done.size
    dist = compute["dist"]
    censored = fit.fit_one(dist, done, cut)
    errors = fit.standard_errors(censored, done.size, reps=40, seed=1, censored=cut)
    naive = fit.fit_one(dist, done)
    naive_errors = fit.standard_errors(naive, done.size, reps=40, seed=1)
    key = "rate" if dist == "shifted_exponential" else "scale"
    assert abs(censored.params[key] - compute[key]) <= 3 * errors[key], (censored, errors)
    assert abs(naive.params[key] - compute[key]) > 4 * naive_errors[key], (naive, naive_errors)
    assert math.isnan(censored.ks_pvalue) and 0 < censored.ks < 0.05
