"""Every registered compute-time distribution against its own law, and the generic theory
against the closed forms.

The tests are parametrised over ``compute.registry.DISTRIBUTIONS`` with each model's ``EXAMPLE``
parameters, so a distribution added to the registry is checked here without a new test: its
draws follow its cdf (KS, or the DKW bound where the law has atoms), their mean is within 4
standard errors of ``mean()``, ``tail_time()`` is exceeded with probability at most 1e-12,
draws are reproducible and any range of trials draws the same numbers as a longer run, and
(continuous laws) both engines give the same rows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from simulator import theory
from simulator.cluster import Cluster
from simulator.compute.base import TAIL, Dist
from simulator.compute.registry import DIST_NAMES, DISTRIBUTIONS, Distribution, by_name
from simulator.config import ConfigError, from_dict
from simulator.runner import run
from simulator.streams import TRIAL_BLOCK, generator
from simulator.workers import FixedFactors

DRAWS = 20_000
P_MIN = 1e-3
Z = 4.0
IDS = [model.name() for model in DISTRIBUTIONS]


def _spec(model: type[Dist]) -> dict[str, Any]:
    return {"dist": model.name(), **model.EXAMPLE}


def _write_data(source_dir: Path, spec: dict[str, Any]) -> None:
    """The data files an example names (an empirical column): fixed, skewed samples."""
    if "file" in spec:
        values = generator(7, "test data").gamma(2.0, 0.5, 400)
        pd.DataFrame({spec["column"]: values}).to_csv(source_dir / spec["file"], index=False)
    for part in ("fast", "slow"):
        if isinstance(spec.get(part), dict):
            _write_data(source_dir, spec[part])


def _model(model: type[Dist], source_dir: Path) -> Dist:
    spec = _spec(model)
    _write_data(source_dir, spec)
    dist = model.model_validate(spec)
    assert dist.data_problems("cluster.compute", source_dir) == []
    return dist


@pytest.fixture(params=DISTRIBUTIONS, ids=IDS)
def example(request, tmp_path: Path):
    """(model instance, its sampler, source dir) of a registered distribution's example."""
    dist = _model(request.param, tmp_path)
    return dist, dist.sampler(tmp_path), tmp_path


def test_registry_names_are_unique_and_the_union_is_built_from_it() -> None:
    assert len(set(DIST_NAMES)) == len(DIST_NAMES) == len(DISTRIBUTIONS)
    for name in DIST_NAMES:
        assert by_name(name).name() == name
    members = {m.name() for m in Distribution.__origin__.__args__}
    assert members == set(DIST_NAMES)


def test_draws_follow_the_cdf(example) -> None:
    dist, law, _ = example
    x = law.draw(generator(1, "ks"), (DRAWS,))
    assert x.shape == (DRAWS,) and np.isfinite(x).all() and (x >= 0).all()
    if not dist.atoms("k"):
        assert stats.kstest(x, law.cdf).pvalue > P_MIN
    else:  # atoms: KS's p-value is wrong; the DKW bound on sup |F_n - F| holds for any law
        xs = np.sort(x)
        ecdf = np.searchsorted(xs, xs, side="right") / DRAWS
        bound = math.sqrt(math.log(2 / P_MIN) / (2 * DRAWS))
        assert np.max(np.abs(ecdf - law.cdf(xs))) < bound
    np.testing.assert_allclose(law.sf(x[:100]), 1.0 - law.cdf(x[:100]), atol=1e-12)


def _integration_rel(dist: Dist) -> float:
    """How close theory's integral of a survival function comes: steps (atoms) that fall
    between its pieces converge slowly (an empirical law has hundreds)."""
    return 1e-3 if dist.atoms("k") else 1e-7


def test_sample_mean_matches_mean(example) -> None:
    dist, law, _ = example
    mean, var = law.mean(), law.var()
    assert mean is not None and var is not None
    x = law.draw(generator(2, "mean"), (DRAWS,))
    if math.isfinite(var):
        assert abs(x.mean() - mean) <= Z * math.sqrt(var / DRAWS) + 1e-12
    # var() against the law's own survival function: E[X^2] = integral of P(X^2 > t) dt
    second = theory.mean_from_sf(lambda t: law.sf(np.sqrt(t)))
    if math.isfinite(var):
        assert var == pytest.approx(second - mean**2, rel=_integration_rel(dist), abs=1e-12)
    else:
        assert second == math.inf


def test_tail_time_is_exceeded_at_most_with_probability_tail(example) -> None:
    dist, law, _ = example
    tail = law.tail_time()
    assert math.isfinite(tail)
    assert law.sf(tail) <= TAIL * (1 + 1e-9)
    assert law.draw(generator(3, "tail"), (DRAWS,)).max() <= tail
    assert dist.tail_time() <= tail or not dist.data_problems("k", Path("/nonexistent"))


@pytest.mark.parametrize(
    "model", [m for m in DISTRIBUTIONS if not _spec(m).get("file")], ids=lambda m: m.name()
)
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_tail_bound_holds_across_scales(model: type[Dist], scale: float) -> None:
    """The bound at other parameter values: every positive parameter scaled."""
    spec = {
        k: (v * scale if isinstance(v, float) and v > 0 and k != "p_slow" else v)
        for k, v in _spec(model).items()
    }
    dist = model.model_validate(spec)
    tail = dist.tail_time()
    if math.isfinite(tail):
        assert dist.sf(tail) <= TAIL * (1 + 1e-9)


def test_draws_are_reproducible(example) -> None:
    _, law, _ = example
    a = law.draw(generator(4, "same"), (50, 3))
    b = law.draw(generator(4, "same"), (50, 3))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("per", ["worker", "chunk"])
def test_any_range_of_trials_draws_the_same_numbers(example, per: str) -> None:
    dist, law, source_dir = example
    data = {
        "seed": 11,
        "trials": 3 * TRIAL_BLOCK,
        "engine": "des",
        "cluster": {"workers": 3, "compute": {**dist.model_dump(exclude_unset=True), "per": per}},
        "data": {"dim": 2, "gradients": "none"},
        "output": {"events_trials": 0},
        "schemes": [{"protocol": "original_gc", "load": 2}],
    }
    exp = from_dict(data, source_dir=source_dir)
    cluster = Cluster(exp, steps=2)
    whole = cluster.draw(0, 3 * TRIAL_BLOCK)
    for first, count in ((0, 5), (TRIAL_BLOCK - 2, 4), (300, 400), (2 * TRIAL_BLOCK, 1)):
        part = cluster.draw(first, count)
        np.testing.assert_array_equal(part.step_times, whole.step_times[first : first + count])
    if per == "worker":  # one draw per worker: every step of a trial takes the same time
        assert (whole.step_times == whole.step_times[:, :, :1]).all()
    elif law.var() != 0:  # a fresh draw per chunk
        assert (whole.step_times[:, :, 0] != whole.step_times[:, :, 1]).any()


@pytest.mark.parametrize(
    "model", [m for m in DISTRIBUTIONS if not _spec(m).get("file")], ids=lambda m: m.name()
)
def test_continuous_laws_run_equal_on_both_engines(model: type[Dist], tmp_path: Path) -> None:
    dist = _model(model, tmp_path)
    if dist.atoms("cluster.compute"):
        pytest.skip("atoms make events simultaneous: the fast engine refuses them")
    data = {
        "seed": 3,
        "trials": 40,
        "cluster": {"workers": 6, "compute": _spec(model), "failures": {"prob": 0.1}},
        "data": {"dim": 5},
        "output": {"events_trials": 0},
        "schemes": [
            {"protocol": "uncoded"},
            {"protocol": "original_gc", "load": 3},
            {"protocol": "partial_gc", "load": 3, "ell": 2},
            {"protocol": "partial_gc", "load": 3, "mode": "approximate", "deadline": 2.0},
            {"protocol": "frc", "load": 3},
            {"protocol": "multi_message", "load": 2},
        ],
    }
    des = run(from_dict({**data, "engine": "des"}, source_dir=tmp_path)).summary
    fast = run(from_dict({**data, "engine": "fast"}, source_dir=tmp_path)).summary
    floats = ["completion_time", "rel_error", "decode_cond"]
    exact = [c for c in des.columns if c not in floats and c != "residual"]
    pd.testing.assert_frame_equal(fast[exact], des[exact])
    for column in floats:
        np.testing.assert_allclose(fast[column], des[column], rtol=1e-9, atol=1e-25)
    assert des.decoded.any()


def test_inverse_gaussian_is_a_plug_in_with_its_moments() -> None:
    dist = by_name("inverse_gaussian").model_validate({"dist": "inverse_gaussian", "mu": 2.0,
                                                       "shape": 5.0})  # fmt: skip
    assert dist.mean() == pytest.approx(2.0) and dist.var() == pytest.approx(8.0 / 5.0)
    assert dist.atoms("k") == []
    with pytest.raises(ConfigError) as err:
        from_dict({"trials": 1, "cluster": {"workers": 2, "compute": {
            "dist": "inverse_gaussian", "mu": 1e60, "shape": 1e-60}},
            "schemes": [{"protocol": "uncoded"}]})  # fmt: skip
    assert err.value.problems[0][0] == "cluster.compute"


def test_nested_per_and_empirical_files_are_the_distributions_own_problems(tmp_path) -> None:
    spec = {"dist": "bimodal", "p_slow": 0.5, "per": "chunk",
            "fast": {"dist": "exponential", "rate": 1.0, "per": "worker"},
            "slow": {"dist": "empirical", "file": "missing.csv", "column": "t"}}  # fmt: skip
    dist = by_name("bimodal").model_validate(spec)
    assert dist.problems("cluster.compute", nested=False) == [
        ("cluster.compute.fast.per", "set 'per' on the outer (bimodal) distribution only")
    ]
    (key, message), = dist.data_problems("cluster.compute", tmp_path)  # fmt: skip
    assert key == "cluster.compute.slow.file" and "not found" in message
    assert dist.atoms("c") == [("c.slow.dist", "empirical (resampled, so repeated)")]


def test_default_worker_states_multiply_by_the_slowdown() -> None:
    states = FixedFactors(np.array([1.0, 2.5, 4.0]))
    factors = states.factors_of(block=3)
    np.testing.assert_array_equal(np.broadcast_to(factors, (TRIAL_BLOCK, 3))[7], [1.0, 2.5, 4.0])


# --------------------------------------------------------------------------------------------
# Generic theory against the closed forms


def _law(**spec: Any) -> Dist:
    return by_name(spec["dist"]).model_validate(spec)


@pytest.mark.parametrize(
    "n, k, shift, rate", [(20, 20, 1.0, 1.0), (20, 17, 1.0, 2.0), (50, 1, 0.0, 1.0), (1, 1, 0.5, 3)]
)
def test_generic_order_statistics_match_the_exponential_closed_forms(n, k, shift, rate) -> None:
    law = _law(dist="shifted_exponential", shift=shift, rate=float(rate))
    exact = theory.exp_order_mean(n, k, shift, rate)
    assert theory.order_mean(law, n, k) == pytest.approx(exact, rel=1e-9)
    x = np.linspace(0.0, 3 * exact, 50)
    np.testing.assert_allclose(
        theory.order_cdf(law, x, n, k), theory.exp_order_cdf(x, n, k, shift, rate), atol=1e-12
    )
    np.testing.assert_allclose(
        theory.order_sf(law, x, n, k), 1 - theory.exp_order_cdf(x, n, k, shift, rate), atol=1e-12
    )


@pytest.mark.parametrize(
    "n, k, scale, alpha",
    [
        (20, 20, 1.0, 3.0),
        (20, 17, 1.0, 1.5),
        (10, 1, 1.0, 2.5),
        (10, 8, 2.0, 0.6),
        (10, 10, 2.0, 0.6),
    ],
)
def test_generic_order_statistics_match_the_pareto_closed_forms(n, k, scale, alpha) -> None:
    law = _law(dist="pareto", scale=scale, alpha=alpha)
    exact = theory.pareto_order_mean(n, k, scale, alpha)
    if math.isinf(exact):
        assert theory.order_mean(law, n, k) == math.inf
    else:
        assert theory.order_mean(law, n, k) == pytest.approx(exact, rel=1e-9)
    x = np.geomspace(scale, 100 * scale, 50)
    np.testing.assert_allclose(
        theory.order_cdf(law, x, n, k), theory.pareto_order_cdf(x, n, k, scale, alpha), atol=1e-12
    )


@pytest.mark.parametrize("m, load", [(20, 4), (12, 3), (6, 6)])
def test_generic_frc_matches_its_closed_form(m: int, load: int) -> None:
    law = _law(dist="shifted_exponential", shift=0.5, rate=2.0)
    assert theory.frc_group_mean(law, m, load) == pytest.approx(
        theory.frc_mean(m, load, 0.5, 2.0), rel=1e-9
    )
    x = np.linspace(0.0, 20.0, 40)
    np.testing.assert_allclose(
        theory.frc_group_cdf(law, x, m, load), theory.frc_cdf(x, m, load, 0.5, 2.0), atol=1e-12
    )


def test_generic_mean_of_one_draw_is_the_laws_mean(example) -> None:
    """order_mean(law, 1, 1) integrates the law's own survival function: it must give mean()
    for every registered law with a finite mean (atoms, mixtures and data included)."""
    dist, law, _ = example
    assert theory.order_mean(law, 1, 1) == pytest.approx(law.mean(), rel=_integration_rel(dist))
