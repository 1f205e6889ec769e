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
