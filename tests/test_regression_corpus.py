"""Results do not change: a few configs of the regression corpus (experiments/regression)
against the per-column digests of the committed baseline, so that the default test run
catches an unintended change in any column of summary.parquet or events.parquet.

The whole corpus (60 runs, about a minute) is ``python experiments/regression/run_corpus.py
check experiments/regression/baseline-577c788.json``; this runs the fastest configs that
between them cover both engines and every protocol, through the same code (the CLI, in this
process). The BLAS-dependent float columns (rel_error, decode_cond, residual) are accepted at
the documented tolerance with a warning when their bits moved: another CPU picks other
OpenBLAS kernels. ``check`` compares them bit for bit.
"""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS_DIR = ROOT / "experiments" / "regression"
BASELINE = CORPUS_DIR / "baseline-577c788.json"

#: The fastest runs that cover both engines (des: p16, f03, n03; fast: p17, p10, x06, p20),
#: every protocol (p16 and p17 run the six of the first corpus, p20 bernoulli_gc), the three
#: original_gc constructions (random and polynomial in p16/p17, generic in p10), crashes (f03),
#: the network with a shared link (n03), a file-based assignment (p10) and a run over several
#: realization blocks with traced trials split from the rest (x06).
QUICK = (
    "p16_all_protocols_des",
    "p17_all_protocols_fast",
    "p10_original_generic_explicit",
    "f03_crashes",
    "n03_shared_ingress",
    "x06_several_blocks",
    "p20_bernoulli_gc_fast",
    "h03_markov_iterations_fast",
    "h04_training_synthetic",
)


@pytest.fixture(scope="module")
def corpus() -> ModuleType:
    """experiments/regression/run_corpus.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("run_corpus", CORPUS_DIR / "run_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def baseline() -> dict:
    return {run["name"]: run for run in json.loads(BASELINE.read_text("utf-8"))["runs"]}


@pytest.mark.parametrize("name", QUICK)
def test_results_match_the_baseline(name: str, corpus, baseline, tmp_path: Path) -> None:
    (entry,) = corpus.corpus([name])
    now = corpus.run_entry(entry, tmp_path)
    assert now["exit"] == 0, now.get("error")
    verdict = corpus.compare_run(baseline[name], now, tolerant=True)
    cells = {f: corpus.describe_file(c) for f, c in verdict["files"].items()}
    assert verdict["ok"], f"{name}: {verdict['verdict']}: {cells}"
    if verdict["verdict"] == "equal at tolerance":
        warnings.warn(
            f"{name}: BLAS-dependent columns equal only at tolerance: {cells}", stacklevel=1
        )


def test_quick_set_covers_both_engines_and_every_protocol(corpus) -> None:
    from simulator.config import load_config, protocol_names
    from simulator.runner import chosen_engine

    configs = [load_config(run["config"]) for run in corpus.corpus(list(QUICK))]
    assert {chosen_engine(exp) for exp in configs} == {"des", "fast"}
    used = {scheme.protocol for exp in configs for scheme in exp.schemes}
    assert used == set(protocol_names())
    constructions = {
        s.construction for exp in configs for s in exp.schemes if s.protocol == "original_gc"
    }
    assert constructions == {"random", "polynomial", "generic"}


def test_corpus_covers_every_protocol_distribution_and_engine(corpus) -> None:
    """A protocol or distribution added to the simulator must be added to the corpus too."""
    from simulator.config import DIST_NAMES, load_config, protocol_names

    configs = [load_config(run["config"]) for run in corpus.corpus() if "@" not in run["name"]]
    assert len(configs) >= 40
    assert {s.protocol for exp in configs for s in exp.schemes} == set(protocol_names())
    from simulator.workers import laws

    dists = set()
    for exp in configs:
        for _, dist, _, _ in laws(exp.cluster):
            dists.add(dist.dist)
            if dist.dist == "bimodal":
                dists |= {dist.fast.dist, dist.slow.dist}
    assert dists == set(DIST_NAMES)
    # Workers that differ and trials of several iterations, on both engines, and training.
    assert any(exp.cluster.groups and exp.cluster.delay for exp in configs)
    assert {exp.engine for exp in configs if exp.cluster.stragglers} >= {"des", "fast"}
    assert any(exp.training is not None for exp in configs)
    assert {exp.engine for exp in configs} == {"des", "fast", "auto"}


def test_baseline_has_every_run_of_the_corpus(corpus, baseline) -> None:
    names = [run["name"] for run in corpus.corpus()]
    assert sorted(baseline) == sorted(names)
    assert all(run["exit"] == 0 for run in baseline.values())


# -------------------------------------------------------------------------------------------
# The comparison itself, on small hand-made files: it must see what it promises to see.


def _write(path: Path, columns: dict[str, pa.Array]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def _summary(rel_error: list[float], **extra: pa.Array) -> dict[str, pa.Array]:
    trials = [0, 0, 1, 1, 2, 2]
    columns = {
        "scheme": pa.array(["a", "b"] * 3),
        "trial": pa.array(trials, pa.int64()),
        "completion_time": pa.array([1.0, 2.0, math.inf, 3.0, 1.5, math.nan]),
        "rel_error": pa.array(rel_error, pa.float64()),
    }
    columns.update(extra)
    return columns


REL = [0.25, 1e-31, 0.5, 2e-30, 1.0 / 3.0, math.nan]


def _compare(corpus, tmp_path: Path, before: dict, after: dict, tolerant: bool = False) -> dict:
    tolerant_columns = ("rel_error",)
    old = corpus.digest_file(_write(tmp_path / "old.parquet", before), tolerant_columns)
    new = corpus.digest_file(_write(tmp_path / "new.parquet", after), tolerant_columns)
    return corpus.compare_file(old, new, tolerant)


def test_same_values_same_digests(corpus, tmp_path: Path) -> None:
    result = _compare(corpus, tmp_path, _summary(REL), _summary(REL))
    assert result["same_bytes"] and not result["changed"] and not result["missing"]


def test_nan_payload_is_no_change_but_negative_zero_is(corpus, tmp_path: Path) -> None:
    import numpy as np

    other_nan = np.array([np.nan]).view(np.uint64) | np.uint64(0x8000_0000_0000_0001)
    weird = list(REL[:-1]) + [float(other_nan.view(np.float64)[0])]
    assert math.isnan(weird[-1])
    assert not _compare(corpus, tmp_path, _summary(REL), _summary(weird))["changed"]
    zeros = [0.0] + REL[1:]
    negative = [-0.0] + REL[1:]
    result = _compare(corpus, tmp_path, _summary(zeros), _summary(negative))
    assert result["changed"] == {"rel_error": "first at trial 0"}


def test_a_changed_value_is_located_at_its_trial(corpus, tmp_path: Path) -> None:
    after = _summary(REL)
    after["completion_time"] = pa.array([1.0, 2.0, math.inf, 3.0, 1.5000000000000002, math.nan])
    result = _compare(corpus, tmp_path, _summary(REL), after)
    assert result["changed"] == {"completion_time": "first at trial 2"}
    assert not result["same_bytes"]


def test_new_columns_are_allowed_missing_and_retyped_ones_are_not(corpus, tmp_path: Path) -> None:
    added = _summary(REL, extra=pa.array([1, 2, 3, 4, 5, 6], pa.int64()))
    result = _compare(corpus, tmp_path, _summary(REL), added)
    assert result["added"] == ["extra"] and not result["changed"] and not result["missing"]
    dropped = _summary(REL)
    del dropped["completion_time"]
    assert _compare(corpus, tmp_path, _summary(REL), dropped)["missing"] == ["completion_time"]
    retyped = _summary(REL)
    retyped["trial"] = pa.array([0.0, 0.0, 1.0, 1.0, 2.0, 2.0])
    result = _compare(corpus, tmp_path, _summary(REL), retyped)
    assert result["changed"] == {"trial": "type int64 -> double"}


def test_tolerance_forgives_last_bits_only(corpus, tmp_path: Path) -> None:
    last_bits = [math.nextafter(REL[0], 1.0), 7e-29, *REL[2:]]  # an ulp; noise stays noise
    loose = _compare(corpus, tmp_path, _summary(REL), _summary(last_bits), tolerant=True)
    strict = _compare(corpus, tmp_path, _summary(REL), _summary(last_bits), tolerant=False)
    assert loose["close"] == ["rel_error"] and not loose["changed"]
    assert strict["changed"] == {"rel_error": "first at trial 0"}
    moved = [REL[0] * (1 + 1e-4), *REL[1:]]
    result = _compare(corpus, tmp_path, _summary(REL), _summary(moved), tolerant=True)
    assert result["changed"] == {"rel_error": "first at trial 0"}


def test_rows_of_a_new_trial_are_located(corpus, tmp_path: Path) -> None:
    longer = {k: pa.concat_arrays([v, v.slice(0, 1)]) for k, v in _summary(REL).items()}
    longer["trial"] = pa.array([0, 0, 1, 1, 2, 2, 3], pa.int64())
    result = _compare(corpus, tmp_path, _summary(REL), longer)
    assert result["rows"] == (6, 7)
    assert result["changed"]["scheme"] == "trial 3 new"
