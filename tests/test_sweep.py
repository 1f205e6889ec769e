"""Sweeps: reproducible whatever runs them, resumable after SIGKILL, never merging bad points."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from simulator import sweep as sweep_module
from simulator.config import ConfigError
from simulator.sweep import grid_points, parse_grid, point_seed, run_sweep

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
GRIDS = ["cluster.workers=8,12", "schemes.*.ell=1,2"]
SMALL = ["trials=60", "data.dim=16"]


def sweep(out: Path, **kwargs):
    kwargs.setdefault("overrides", SMALL)
    return run_sweep(QUICKSTART, GRIDS, out=out, **kwargs)


def test_parse_grid_values_are_yaml_and_brackets_do_not_split():
    assert parse_grid("cluster.workers=8,12") == ("cluster.workers", [8, 12])
    assert parse_grid("cluster.slowdown=[1, 2],[3, 4]") == ("cluster.slowdown", [[1, 2], [3, 4]])
    assert parse_grid("schemes.0.mode=exact,approximate")[1] == ["exact", "approximate"]
    for bad in ("nokey", "=1,2", "a..b=1", "a=1,,2", "a=1,1"):
        with pytest.raises(ConfigError):
            parse_grid(bad)


def test_product_and_zip():
    grids = [("a", [1, 2]), ("b", [3, 4])]
    assert grid_points(grids, zipped=False) == [
        {"a": 1, "b": 3},
        {"a": 1, "b": 4},
        {"a": 2, "b": 3},
        {"a": 2, "b": 4},
    ]
    assert grid_points(grids, zipped=True) == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]
    with pytest.raises(ConfigError):
        grid_points([("a", [1, 2]), ("b", [3])], zipped=True)


def test_point_seeds_are_the_config_seed_unless_the_seed_is_a_grid_key():
    """Common random numbers across the grid (see tests/test_fair.py for the paired rows)."""
    assert point_seed(5, {"x": 1}) == point_seed(5, {"x": 2}) == 5
    assert point_seed(6, {"x": 1}) == 6
    assert point_seed(5, {"seed": 17}) == 17


def test_combined_summary_has_grid_columns_and_every_point(tmp_path):
    report = sweep(tmp_path / "s", jobs=1)
    summary = pd.read_parquet(tmp_path / "s" / "summary.parquet")
    assert list(summary.columns[:3]) == ["point", "cluster.workers", "schemes.*.ell"]
    assert len(summary) == 4 * 4 * 60  # points x schemes x trials
    spec = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert spec["grid"] == {"cluster.workers": [8, 12], "schemes.*.ell": [1, 2]}
    assert [p["status"] for p in spec["points"]] == ["done"] * 4
    assert len(report.ran) == 4 and not report.failed
    # The wildcard set ell on both coded schemes, and the point's seed is the config's.
    point = spec["points"][3]
    config = (tmp_path / "s" / point["dir"] / "config.yaml").read_text()
    assert config.count("ell: 2") == 2 and f"seed: {point['seed']}" in config


def test_jobs_1_jobs_2_and_dask_give_identical_summaries(tmp_path):
    pytest.importorskip("distributed")
    sweep(tmp_path / "j1", jobs=1)
    sweep(tmp_path / "j2", jobs=2)
    report = sweep(tmp_path / "dask", jobs=2, dask="local")
    assert "Dask LocalCluster" in report.executor
    reference = (tmp_path / "j1" / "summary.parquet").read_bytes()
    assert (tmp_path / "j2" / "summary.parquet").read_bytes() == reference
    assert (tmp_path / "dask" / "summary.parquet").read_bytes() == reference


def test_rerun_skips_finished_points_and_force_recomputes(tmp_path):
    sweep(tmp_path / "s", jobs=1)
    again = sweep(tmp_path / "s", jobs=1)
    assert len(again.skipped) == 4 and not again.ran
    forced = sweep(tmp_path / "s", jobs=1, force=True)
    assert len(forced.ran) == 4


def test_corrupt_and_partial_points_are_recomputed_never_merged(tmp_path):
    sweep(tmp_path / "clean", jobs=1)
    sweep(tmp_path / "s", jobs=1)
    points = sorted((tmp_path / "s" / "points").iterdir())
    # Truncate one summary, edit another's events, delete a third's manifest, and leave a
    # staging directory as a killed writer would.
    summary = points[0] / "summary.parquet"
    summary.write_bytes(summary.read_bytes()[:100])
    events = points[1] / "events.parquet"
    events.write_bytes(events.read_bytes() + b"x")
    (points[2] / "manifest.json").unlink()
    (tmp_path / "s" / "points" / f".{points[3].name}.tmp-999").mkdir()
    report = sweep(tmp_path / "s", jobs=1)
    assert set(report.recomputed) == {p.name for p in points[:3]}
    assert "summary.parquet does not match its checksum" in report.recomputed[points[0].name]
    assert len(report.skipped) == 1
    assert not list((tmp_path / "s" / "points").glob(".*"))
    assert (tmp_path / "s" / "summary.parquet").read_bytes() == (
        tmp_path / "clean" / "summary.parquet"
    ).read_bytes()


def test_changed_config_recomputes_and_other_sweep_is_refused(tmp_path):
    sweep(tmp_path / "s", jobs=1)
    with pytest.raises(ConfigError, match="different sweep"):
        run_sweep(QUICKSTART, ["cluster.workers=8,16"], overrides=SMALL, out=tmp_path / "s")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a sweep"):
        sweep(tmp_path / "other", jobs=1)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_a_sweep_killed_midway_resumes_to_the_same_summary(tmp_path):
    overrides = ["--set", "trials=900", "--set", "data.gradients=none"]
    grid = ["--grid", "cluster.workers=8,12,16", "--grid", "schemes.*.ell=1,2"]
    command = [
        sys.executable,
        "-m",
        "simulator",
        "sweep",
        str(QUICKSTART),
        *grid,
        *overrides,
        "--jobs",
        "1",
        "-q",
    ]
    subprocess.run([*command, "--out", str(tmp_path / "whole")], check=True, capture_output=True)
    expected = (tmp_path / "whole" / "summary.parquet").read_bytes()

    out = tmp_path / "killed"
    process = subprocess.Popen(
        [*command, "--out", str(out)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        finished = [p for p in (out / "points").glob("p*")] if (out / "points").exists() else []
        if len(finished) >= 2:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list((out / "points").glob("p*")))
    assert 2 <= done_before < 6, "the sweep was not killed mid-way"
    assert not (out / "summary.parquet").exists()

    rerun = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{done_before} points already done (skipped)" in rerun.stdout
    assert (out / "summary.parquet").read_bytes() == expected


@contextlib.contextmanager
def thread_executor(jobs, dask):
    with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
        yield pool, "threads (test)"


def test_failing_points_are_retried_then_reported_without_stopping_others(tmp_path, monkeypatch):
    real = sweep_module.run_point
    calls: dict[str, int] = {}

    def flaky(task):
        calls[task.point.id] = calls.get(task.point.id, 0) + 1
        workers = task.point.params["cluster.workers"]
        ell = task.point.params["schemes.*.ell"]
        if workers == 8 and ell == 2:
            raise RuntimeError("this point always fails")
        if workers == 12 and ell == 1 and calls[task.point.id] == 1:
            raise cf.process.BrokenProcessPool("a worker died")  # transient
        return real(task)

    monkeypatch.setattr(sweep_module, "open_executor", thread_executor)
    monkeypatch.setattr(sweep_module, "run_point", flaky)
    report = sweep(tmp_path / "s", jobs=2, retries=2)
    assert len(report.failed) == 1
    (error,) = report.failed.values()
    assert "RuntimeError: this point always fails" in error
    assert len(report.ran) == 3
    assert sorted(calls.values()) == [1, 1, 2, 3]  # retried once (transient), 3x (permanent)
    spec = json.loads((tmp_path / "s" / "sweep.json").read_text())
    statuses = sorted(p["status"] for p in spec["points"])
    assert statuses == ["done", "done", "done", "failed"]
    summary = pd.read_parquet(tmp_path / "s" / "summary.parquet")
    assert summary.point.nunique() == 3


def test_cli_sweep_reports_failure_exit_and_bad_grid(tmp_path):
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "sweep",
            str(QUICKSTART),
            "--grid",
            "cluster.workers=2,8",
            "--out",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "schemes.2.load" in bad.stderr and "at grid point cluster.workers=2" in bad.stderr
    assert not (tmp_path / "s").exists()


def test_a_single_run_split_over_processes_gives_the_same_rows():
    from simulator.config import load_config
    from simulator.runner import run, trial_ranges

    assert trial_ranges(1000, 3) == [(0, 512), (512, 488)]
    assert sum(count for _, count in trial_ranges(700, 8)) == 700
    exp = load_config(QUICKSTART, ["trials=600", "data.dim=16"])
    split = run(exp, jobs=2)
    whole = run(exp)
    assert "process pool" in split.executor
    pd.testing.assert_frame_equal(split.summary, whole.summary)
    pd.testing.assert_frame_equal(split.events, whole.events)


# --------------------------------------------------------------------------------------------
# The combined summary, written one point at a time


def _old_combine(root, points, report):
    """The combine that held every point's rows in one frame: the bytes to reproduce."""
    from simulator.parquet import write_parquet

    frames = []
    for point in points:
        if point.id in report.failed:
            continue
        summary = pd.read_parquet(root / "points" / point.id / "summary.parquet")
        for position, (key, value) in enumerate(point.params.items()):
            summary.insert(position, key, [value] * len(summary))
        summary.insert(0, "point", point.id)
        frames.append(summary)
    combined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    write_parquet(combined, root / "old.parquet")
    return combined


def _old_sweep_table(root, summary):
    """The CLI table computed from the whole combined frame (before the table read points):
    each point's rows through ``runner.scheme_table``, its grid values as the frame holds them."""
    from simulator.runner import scheme_table
    from simulator.tables import sweep_layout, terminal_tables

    if summary is None or summary.empty:
        return terminal_tables(sweep_layout(pd.DataFrame(), [], f"sweep {root}"), 200)
    keys = [c for c in summary.columns[1 : summary.columns.get_loc("scheme")]]
    frames = []
    for _, group in summary.groupby("point", sort=False):
        stats = scheme_table(group.iloc[:, len(keys) + 1 :])
        for index, key in enumerate(["point", *keys]):
            stats.insert(index, key, group[key].iloc[[0]].repeat(len(stats)).array)
        frames.append(stats)
    frame = pd.concat(frames, ignore_index=True)
    return terminal_tables(sweep_layout(frame, keys, f"sweep {root}"), 200)


def _text(tables) -> str:
    from rich.console import Console

    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    for table in tables if isinstance(tables, list) else [tables]:
        console.print(table)
    return console.export_text()


@pytest.fixture(scope="module")
def point_summaries():
    """Four small real summaries (different trials and seeds) to stand for sweep points."""
    from simulator.config import load_config
    from simulator.runner import run

    return [
        run(load_config(QUICKSTART, [f"trials={trials}", "data.dim=16", f"seed={seed}"])).summary
        for seed, trials in [(1, 30), (2, 45), (3, 20), (4, 33)]
    ]


def fake_sweep(root: Path, summaries, grids: dict, failed=(), repeat: int = 1):
    """A sweep directory with one point per zipped grid value (summaries reused in turn), each
    point with the quickstart's scheme table."""
    from simulator.config import load_config
    from simulator.parameters import scheme_table
    from simulator.parquet import write_parquet
    from simulator.runner import SUMMARY_COLUMNS
    from simulator.schema import SCHEME_COLUMNS

    schemes = scheme_table(load_config(QUICKSTART))

    params = [dict(zip(grids, combo, strict=True)) for combo in zip(*grids.values(), strict=True)]
    points = [
        sweep_module.Point(f"p{i}-{sweep_module.point_id(p)}", p, {}, "")
        for i, p in enumerate(params)
    ]
    for i, point in enumerate(points):
        (root / "points" / point.id).mkdir(parents=True)
        summary = pd.concat([summaries[i % len(summaries)]] * repeat, ignore_index=True)
        write_parquet(summary, root / "points" / point.id / "summary.parquet", SUMMARY_COLUMNS)
        write_parquet(schemes, root / "points" / point.id / "schemes.parquet", SCHEME_COLUMNS)
    report = sweep_module.SweepReport(root, "test", failed={points[i].id: "x" for i in failed})
    return points, report


COMBINE_GRIDS = [
    ({"cluster.workers": [8, 12, 8, 12], "schemes.*.ell": [1, 1, 2, 2]}, ()),
    ({"cluster.compute.rate": [1, 1.5, 2]}, ()),  # int and float: float64
    ({"cluster.compute.rate": [1, 1.5, 2]}, (1,)),  # the float point failed: int64
    ({"schemes.*.ordering": ["natural", "optimal"], "cluster.compute.rate": [2, 2.5]}, ()),
    ({"a": ["x", "y", "z"], "b": [1, 2.0, 3], "c": [True, False, True]}, (0,)),
    ({"flag": [True, 1]}, ()),
    ({"maybe": [None, 1]}, ()),
    ({"maybe": ["a", None]}, ()),
    ({"maybe": [None, None]}, ()),
    ({"slowdown": [[1, 2], [3]], "d": [{"a": 1}, {"b": 2.5}]}, ()),
    ({"cluster.workers": [8, 12]}, (0, 1)),  # every point failed: an empty file
]


@pytest.mark.parametrize(("grids", "failed"), COMBINE_GRIDS)
def test_combine_streams_the_same_bytes_as_one_frame(tmp_path, point_summaries, grids, failed):
    points, report = fake_sweep(tmp_path, point_summaries, grids, failed)
    old = _old_combine(tmp_path, points, report)
    grid = sweep_module._combine(tmp_path, points, report)
    assert (tmp_path / "summary.parquet").read_bytes() == (tmp_path / "old.parquet").read_bytes()
    report.grid = grid
    pd.testing.assert_frame_equal(report.summary, pd.read_parquet(tmp_path / "old.parquet"))
    if not old.empty:  # the grid frame holds each point's values in the combined dtypes
        first = old.groupby("point", sort=False).head(1).reset_index(drop=True)
        pd.testing.assert_frame_equal(grid, first[list(grid.columns)])
    # The combined scheme tables: each finished point's four schemes, with the point's grid
    # values as the combined summary holds them.
    schemes = pd.read_parquet(tmp_path / "schemes.parquet")
    assert list(schemes.columns[: len(grid.columns)]) == list(grid.columns)
    assert len(schemes) == 4 * len(grid)
    n = len(grid.columns)
    assert (
        list(pq.read_schema(tmp_path / "schemes.parquet"))[:n]
        == list(pq.read_schema(tmp_path / "summary.parquet"))[:n]
    )
    if not old.empty:
        combined = report.summary.groupby("point", sort=False).head(1).reset_index(drop=True)
        per_point = schemes.groupby("point", sort=False).head(1).reset_index(drop=True)
        columns = list(grid.columns)
        pd.testing.assert_frame_equal(per_point[columns], combined[columns])
        assert list(schemes.scheme) == list(old.scheme.unique()) * len(grid)


def test_combine_writes_values_arrow_cannot_mix_as_json_text(tmp_path, point_summaries):
    # One frame could not be written at all (arrow has no column of 1 and "a").
    points, report = fake_sweep(tmp_path, point_summaries, {"m": [1, "a", [2]], "k": [1, 2, 3]})
    with pytest.raises(Exception, match="convert|mix"):
        _old_combine(tmp_path, points, report)
    sweep_module._combine(tmp_path, points, report)
    summary = pd.read_parquet(tmp_path / "summary.parquet")
    sizes = [len(point_summaries[i]) for i in range(3)]
    assert summary.m.tolist() == ["1"] * sizes[0] + ['"a"'] * sizes[1] + ["[2]"] * sizes[2]
    assert summary.k.dtype == "int64" and len(summary) == sum(sizes)


def test_combine_holds_one_point_at_a_time(tmp_path, point_summaries):
    import tracemalloc

    def peak(count: int) -> tuple[int, int]:
        root = tmp_path / str(count)
        points, report = fake_sweep(root, point_summaries, {"x": list(range(count))}, repeat=20)
        tracemalloc.start()
        sweep_module._combine(root, points, report)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top, pq_rows(root / "summary.parquet")

    def pq_rows(path):
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows

    small, few_rows = peak(4)
    large, many_rows = peak(24)
    # One frame would grow by ~260 bytes a row; streaming stays at one point's rows.
    assert many_rows == 6 * few_rows
    assert large - small < 0.1 * 260 * (many_rows - few_rows), (small, large)


def test_cli_table_reads_points_and_matches_the_whole_frame_table(tmp_path):
    grids = ["cluster.compute.rate=1,1.5", "schemes.3.ordering=natural,optimal"]
    report = run_sweep(QUICKSTART, grids, overrides=SMALL, out=tmp_path / "s", jobs=1, zipped=True)
    points = [
        sweep_module.Point(p["id"], p["params"], {}, "")
        for p in json.loads((tmp_path / "s" / "sweep.json").read_text())["points"]
    ]
    old = _old_combine(tmp_path / "s", points, report)
    assert (tmp_path / "s" / "summary.parquet").read_bytes() == (
        tmp_path / "s" / "old.parquet"
    ).read_bytes()
    from simulator.cli import sweep_table

    new_text = _text(sweep_table(report, 200))
    assert new_text == _text(_old_sweep_table(report.root, old))
    assert "1.0" in new_text and "optimal" in new_text  # concat made the rates float


@pytest.mark.parametrize(("grids", "failed"), COMBINE_GRIDS)
def test_cli_table_unchanged_on_mixed_grids(tmp_path, point_summaries, grids, failed):
    from simulator.cli import sweep_table

    points, report = fake_sweep(tmp_path, point_summaries, grids, failed)
    old = _old_combine(tmp_path, points, report)
    report.grid = sweep_module._combine(tmp_path, points, report)
    assert _text(sweep_table(report, 200)) == _text(_old_sweep_table(report.root, old))
