"""engine: des | fast | auto, as a user sets it: same bytes, the right engine, clear refusals."""

from __future__ import annotations

import json

import pytest

from simulator.config import ConfigError, load_config
from simulator.results import write_run
from simulator.runner import chosen_engine, run

from .test_sweep import QUICKSTART


def test_auto_picks_fast_where_exact_and_des_elsewhere():
    assert chosen_engine(load_config(QUICKSTART)) == "fast"
    crashes = load_config(QUICKSTART, ["cluster.failures.crash_rate=0.01"])
    assert chosen_engine(crashes) == "des"
    shared = load_config(QUICKSTART, ["cluster.network.ps_ingress=shared"])
    assert chosen_engine(shared) == "des"


def test_fast_and_des_write_the_same_bytes_and_say_which_ran(tmp_path):
    paths = {}
    for engine in ("des", "fast", "auto"):
        exp = load_config(QUICKSTART, [f"engine={engine}", "trials=700", "data.dim=24"])
        paths[engine] = write_run(run(exp), tmp_path / engine, argv=["test"])
    for name in ("summary.parquet", "events.parquet"):
        reference = (paths["des"] / name).read_bytes()
        assert (paths["fast"] / name).read_bytes() == reference
        assert (paths["auto"] / name).read_bytes() == reference
    manifest = json.loads((paths["fast"] / "manifest.json").read_text())
    assert manifest["engine"].startswith("fast")
    assert manifest["engines"] == dict.fromkeys(manifest["schemes"], "fast")
    assert json.loads((paths["des"] / "manifest.json").read_text())["engine"] == "des"


def test_asking_for_fast_where_it_is_not_exact_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        load_config(QUICKSTART, ["engine=fast", "cluster.failures.crash_rate=0.01"])
    (line,) = info.value.lines()
    assert line.startswith("cluster.failures.crash_rate:") and "engine: fast" in line


def test_split_runs_use_the_engine_too():
    exp = load_config(QUICKSTART, ["engine=fast", "trials=600", "data.gradients=none"])
    split, whole = run(exp, jobs=2), run(exp)
    assert split.summary.equals(whole.summary)
    assert split.engine.startswith("fast")


def test_auto_chooses_per_scheme_and_mixed_rows_equal_the_event_engine():
    """Deterministic compute times tie all the time: partial_gc (order-sensitive) must run on
    the event engine, uncoded (tags.tie_safe) may still run fast. The mixed run's rows are the
    all-des run's, in the same order, and the result says which engine ran each scheme."""
    overrides = ["trials=300", "data.dim=8", "output.events_trials=3",
                 "cluster.compute={dist: deterministic, value: 1.0}",
                 "cluster.slowdown=[1, 2, 1, 3, 1, 1, 2, 1, 1, 1, 2, 1]",
                 "cluster.failures.prob=0.1"]  # fmt: skip
    base = load_config(QUICKSTART, ["cluster.workers=12", *overrides])
    assert {s.protocol for s in base.schemes} >= {"uncoded", "partial_gc"}
    mixed = run(base)
    assert mixed.engines["uncoded"] == "fast" and mixed.engines["partial_gc"] == "des"
    assert "fast for" in mixed.engine and "des for" in mixed.engine
    assert chosen_engine(base) == "mixed"
    des = run(base.model_copy(update={"engine": "des"}))
    assert set(des.engines.values()) == {"des"}
    assert mixed.summary.equals(des.summary)
    assert mixed.events.equals(des.events)
