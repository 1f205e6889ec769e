"""schemes.parquet: every scheme's parameters as data, so outputs are joined on ``scheme``.

The table is read off the validated specs; these tests pin its values for every protocol, the
fallback for run directories written before the file existed, and that figures and the paper
reproduction take a scheme's parameters from it, never from its label.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from simulator import plots
from simulator.config import from_dict
from simulator.parameters import read_schemes, scheme_table
from simulator.reproduce.paper import _stats, _with_parameters
from simulator.results import run_problem, write_run
from simulator.runner import run
from simulator.schema import SCHEME_COLUMNS
from simulator.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]

#: Every protocol, with a parameter of each kind set away from its default somewhere, and a
#: label that lies about ell ("x ell=3" has ell 1).
CONFIG = {
    "name": "every_protocol",
    "seed": 5,
    "trials": 3,
    "engine": "des",
    "cluster": {"workers": 6, "compute": {"dist": "exponential", "rate": 1.0}},
    "data": {"dim": 12},
    "output": {"events_trials": 1},
    "schemes": [
        {"protocol": "uncoded"},
        {"protocol": "fastest_k", "k": 4},
        {"protocol": "frc", "load": 2},
        {"protocol": "multi_message", "load": 2, "assignment": "random_regular",
         "ordering": "random"},
        {"protocol": "original_gc", "load": 2, "ell": 1, "construction": "generic",
         "assignment": "random_regular", "label": "x ell=3"},
        {"protocol": "original_gc", "load": 3, "ell": 2, "mode": "approximate", "deadline": 2.5},
        {"protocol": "partial_gc", "load": 2, "ell": 2, "mode": "approximate", "deadline": 3.0,
         "ordering": [[1, 0], [2, 1], [3, 2], [4, 3], [5, 4], [0, 5]]},
    ],
}  # fmt: skip

NAN = math.nan
#: scheme, protocol, load, ell, mode, deadline, assignment, ordering, construction, engine
EXPECTED = [
    ("uncoded", "uncoded", -1, -1, "", NAN, "", "", "", "des"),
    ("fastest_k", "fastest_k", -1, -1, "", NAN, "", "", "", "des"),
    ("frc", "frc", 2, -1, "", NAN, "", "", "", "des"),
    ("multi_message", "multi_message", 2, -1, "", NAN, "random_regular", "random", "", "des"),
    ("x ell=3", "original_gc", 2, 1, "exact", NAN, "random_regular", "natural", "generic", "des"),
    ("original_gc", "original_gc", 3, 2, "approximate", 2.5, "cyclic", "natural", "polynomial",
     "des"),
    ("partial_gc", "partial_gc", 2, 2, "approximate", 3.0, "cyclic", "explicit", "", "des"),
]  # fmt: skip


def expected_table() -> pd.DataFrame:
    """EXPECTED, plus the ``parameters`` column: the resolved scheme entries without label."""
    columns = [c for c in SCHEME_COLUMNS if c != "parameters"]
    table = pd.DataFrame(EXPECTED, columns=columns)
    entries = from_dict(CONFIG).resolved()["schemes"]
    table["parameters"] = [
        json.dumps({k: v for k, v in entry.items() if k != "label"}, sort_keys=True)
        for entry in entries
    ]
    return table[list(SCHEME_COLUMNS)].astype(SCHEME_COLUMNS)


def test_parameters_keep_what_has_no_column_of_its_own() -> None:
    table = scheme_table(from_dict(CONFIG))
    fastest = json.loads(table.loc[table.scheme == "fastest_k", "parameters"].item())
    assert fastest == {"protocol": "fastest_k", "k": 4, "fraction": None}
    coded = json.loads(table.loc[table.scheme == "original_gc", "parameters"].item())
    assert coded["candidates"] == 16 and coded["points"] == "chebyshev"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("schemes")
    return write_run(run(from_dict(CONFIG)), root / "run", argv=["test"])


def test_schemes_parquet_holds_every_protocols_parameters(run_dir: Path) -> None:
    table = pd.read_parquet(run_dir / "schemes.parquet")
    pd.testing.assert_frame_equal(table.astype(SCHEME_COLUMNS), expected_table())
    assert list(table.columns) == list(SCHEME_COLUMNS)
    # Recorded in the manifest like the other files, and checked: an edit is caught.
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert "schemes.parquet" in manifest["files"]
    assert run_problem(run_dir) is None


def test_an_edited_schemes_file_fails_the_check(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    copy.mkdir()
    for path in run_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "schemes.parquet").write_bytes((copy / "schemes.parquet").read_bytes() + b"x")
    assert run_problem(copy) == "schemes.parquet does not match its checksum"


def test_engine_column_is_the_runs_engine_of_each_scheme() -> None:
    exp = from_dict(CONFIG | {"engine": "auto"})
    result = run(exp)
    table = scheme_table(exp, result.engines)
    assert list(table["engine"]) == [result.engines[label] for label in exp.labels()]
    assert set(table["engine"]) <= {"fast", "des"}
    assert set(scheme_table(exp)["engine"]) == {""}  # not run: unknown


def test_an_older_run_directory_gets_the_table_from_its_config(
    run_dir: Path, tmp_path: Path
) -> None:
    """A run directory written before schemes.parquet: the same function on its config.yaml,
    with the engine unknown; a config that no longer validates is refused with the fix."""
    old = tmp_path / "old"
    old.mkdir()
    for name in ("config.yaml", "summary.parquet", "manifest.json"):
        (old / name).write_bytes((run_dir / name).read_bytes())
    expected = expected_table().assign(engine="")
    pd.testing.assert_frame_equal(read_schemes(old), expected)
    config = yaml.safe_load((old / "config.yaml").read_text(encoding="utf-8"))
    config["schemes"][0]["retired_key"] = 1
    (old / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(ValueError, match="does not validate.*rerun its config"):
        read_schemes(old)
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        read_schemes(tmp_path)


def test_plots_take_ell_from_the_table_not_the_label(run_dir: Path) -> None:
    """Two approximate partial_gc schemes labelled against their ell: each series is named by
    the ell it ran with."""
    data = json.loads(json.dumps(CONFIG))
    data["schemes"] = [
        {"protocol": "partial_gc", "load": 3, "ell": 1, "mode": "approximate", "deadline": 1.5,
         "label": "x ell=3"},
        {"protocol": "partial_gc", "load": 3, "ell": 3, "mode": "approximate", "deadline": 1.5,
         "label": "y ell=1"},
    ]  # fmt: skip
    exp = from_dict(data)
    result = run(exp)
    rows = plots._approximate_rows(result.summary, scheme_table(exp), {})
    summary = result.summary
    by_series = rows.groupby("series")["rel_error"].apply(list).to_dict()
    assert set(by_series) == {"partial_gc ell=1", "partial_gc ell=3"}
    for label, series in (("x ell=3", "partial_gc ell=1"), ("y ell=1", "partial_gc ell=3")):
        expected = summary.loc[summary["scheme"] == label, "rel_error"].tolist()
        assert by_series[series] == pytest.approx(expected, nan_ok=True)


def test_paper_groups_by_parameters_not_labels() -> None:
    """The reproduction's family and ell come from the scheme table: a label saying ell=3 on
    an ell = 1 scheme, or naming another family, changes nothing."""
    data = json.loads(json.dumps(CONFIG))
    data["schemes"] = [
        {"protocol": "partial_gc", "load": 3, "ell": 1, "label": "original ell=3"},
        {"protocol": "partial_gc", "load": 3, "ell": 2, "ordering": "random",
         "label": "partial ell=1"},
        {"protocol": "original_gc", "load": 3, "ell": 3, "label": "random order ell=2"},
    ]  # fmt: skip
    exp = from_dict(data)
    result = run(exp)
    stats = _with_parameters(_stats(result.summary, ["scheme"]), scheme_table(exp), ["scheme"])
    assert list(stats["ell"]) == [1, 2, 3]
    assert list(stats["family"]) == ["partial", "random order", "original"]


def test_sweep_combines_the_tables_with_the_grid(tmp_path: Path) -> None:
    """schemes.parquet beside the combined summary: every point's table, point and grid
    columns first; a grid key named like a scheme column is kept apart."""
    config = tmp_path / "c.yaml"
    data = json.loads(json.dumps(CONFIG))
    data["schemes"] = [{"protocol": "uncoded"}, {"protocol": "partial_gc", "load": 2}]
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    grids = ["schemes.1.ell=1,2", "engine=des,auto"]
    report = run_sweep(config, grids, jobs=1, out=tmp_path / "s")
    schemes = report.schemes
    assert list(schemes.columns[:3]) == ["point", "schemes.1.ell", "engine (grid)"]
    assert list(schemes.columns[3:]) == list(SCHEME_COLUMNS)
    summary = report.summary
    assert set(zip(schemes.point, schemes.scheme, strict=True)) == set(
        zip(summary.point, summary.scheme, strict=True)
    )
    partial = schemes[schemes.scheme == "partial_gc"]
    assert list(partial["ell"]) == list(partial["schemes.1.ell"]) == [1, 1, 2, 2]
    assert list(partial["engine (grid)"]) == ["des", "auto", "des", "auto"]
    for point in report.grid["point"]:
        own = read_schemes(tmp_path / "s" / "points" / point)
        combined = schemes[schemes.point == point][list(SCHEME_COLUMNS)]
        pd.testing.assert_frame_equal(combined.reset_index(drop=True).astype(SCHEME_COLUMNS), own)


def test_a_sweep_point_without_schemes_parquet_is_recomputed(tmp_path: Path) -> None:
    """A point written before schemes.parquet existed is not combined as it is: it is run
    again (its results are the same bytes), and then has its table."""
    config = tmp_path / "c.yaml"
    data = json.loads(json.dumps(CONFIG))
    data["schemes"] = [{"protocol": "uncoded"}]
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    first = run_sweep(config, ["cluster.workers=4,6"], jobs=1, out=tmp_path / "s")
    before = (tmp_path / "s" / "summary.parquet").read_bytes()
    point = tmp_path / "s" / "points" / first.grid["point"][0]
    (point / "schemes.parquet").unlink()
    again = run_sweep(config, ["cluster.workers=4,6"], jobs=1, out=tmp_path / "s")
    assert again.recomputed == {point.name: "missing schemes.parquet"}
    assert (point / "schemes.parquet").is_file()
    assert (tmp_path / "s" / "summary.parquet").read_bytes() == before
