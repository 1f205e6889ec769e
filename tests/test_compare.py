"""``gcsim compare``: per-trial pairing of a simulation with a real run, and its refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from simulator.compare import compare

from .conftest import make_config, tree, write_config


@pytest.fixture
def runs(tmp_path, gcsim):
    """A simulated run, and a copy posing as its real run: completion times 5% longer (10% for
    the first trial), one upload fewer in trial 1, manifest marked real."""
    data = make_config({"trials": 20, "output.events_trials": 2})
    write_config(tmp_path / "c.yaml", data)
    assert gcsim(["run", "c.yaml", "--out", "sim", "-q"], tmp_path).exit_code == 0
    shutil.copytree(tmp_path / "sim", tmp_path / "real")
    summary = pd.read_parquet(tmp_path / "real" / "summary.parquet")
    factor = np.where(summary["trial"] == 0, 1.10, 1.05)
    summary["completion_time"] = summary["completion_time"] * factor
    summary.loc[summary["trial"] == 1, "messages"] -= 1
    summary.to_parquet(tmp_path / "real" / "summary.parquet")
    manifest = json.loads((tmp_path / "real" / "manifest.json").read_text())
    manifest.update(real=True, time_scale=0.01)
    (tmp_path / "real" / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def test_compare_pairs_trials_and_reports_errors(runs, gcsim) -> None:
    result = compare(runs / "sim", runs / "real")
    table = result["table"].set_index("scheme")
    assert list(table.index) == ["uncoded", "original_gc", "partial_gc", "fastest_k"]
    assert np.allclose(table["median_rel_error"], 0.05)
    # 19 trials at 5%, one at 10%: the interpolated 95th percentile is 5% + 0.05 x 5%
    assert np.allclose(table["p95_rel_error"], 0.0525)
    assert (table["messages_equal"] == 19 / 20).all()
    assert (table["upload_floats_equal"] == 1.0).all()
    out = gcsim(["compare", "sim", "real", "--out", "cmp"], runs)
    assert out.exit_code == 0, out.output
    assert "5.0%" in out.stdout
    for name in ("pairs.csv", "table.csv", "delays.csv", "scatter.png", "cdf.png"):
        assert (runs / "cmp" / name).stat().st_size > 0


def test_compare_refuses_other_configs_and_simulations(runs, gcsim) -> None:
    write_config(runs / "d.yaml", make_config({"trials": 20, "seed": 99}))
    assert gcsim(["run", "d.yaml", "--out", "other", "-q"], runs).exit_code == 0
    before = tree(runs)
    out = gcsim(["compare", "other", "real"], runs)
    assert out.exit_code == 2 and "differs in: seed" in out.stderr
    out = gcsim(["compare", "sim", "sim"], runs)
    assert out.exit_code == 2 and "not marked real" in out.stderr
    out = gcsim(["compare", "sim", "nowhere"], runs)
    assert out.exit_code == 2 and "not a run directory" in out.stderr
    assert "Traceback" not in out.output
    assert tree(runs) == before


def test_a_real_run_with_its_comparison_is_still_replaceable(runs, gcsim) -> None:
    """``compare/`` (default output) is gcsim's own: ``--force`` replaces the run holding it,
    but not one holding a file gcsim did not write there."""
    assert gcsim(["compare", "sim", "real"], runs).exit_code == 0
    assert (runs / "real" / "compare" / "cdf.png").is_file()
    again = gcsim(["run", "c.yaml", "--out", "real", "--force", "-q"], runs)
    assert again.exit_code == 0, again.output
    assert gcsim(["compare", "sim", "sim"], runs).exit_code == 2  # a simulation, not a real run
    (runs / "sim" / "compare").mkdir()
    (runs / "sim" / "compare" / "notes.txt").write_text("mine")
    refused = gcsim(["run", "c.yaml", "--out", "sim", "--force", "-q"], runs)
    assert refused.exit_code == 2 and "compare/notes.txt" in refused.stderr
