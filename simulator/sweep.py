"""Sweeps: a grid of runs over any config keys, on a process pool or a Dask cluster.

A sweep directory holds ``sweep.json`` (the grid and every point's status), ``points/<id>/``
(one run directory per point), ``summary.parquet`` (every point's summary rows with one
column per grid key, written one point at a time: memory does not grow with the sweep) and
``schemes.parquet`` (every point's scheme table, ``parameters.py``, with the same point and grid
columns: a few rows per point).
Guarantees:

- reproducible: a point's seed derives from (config seed, point key) through SeedSequence, and
  the combined summary is assembled in grid order, so ``--jobs 1``, ``--jobs 4`` and Dask give
  the same bytes;
- resumable: a point directory appears whole (temporary name, then rename) with checksums in its
  manifest; a rerun skips every point whose files and config check out, recomputes the rest,
  and never merges a corrupt or partial point;
- robust: a point whose worker dies or raises is retried; one that keeps failing is reported
  with its error and does not stop the others.
"""

from __future__ import annotations

import concurrent.futures as cf
import errno
import hashlib
import itertools
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from . import config as cfg
from .executors import check_dask_address, open_executor
from .parameters import read_schemes
from .parquet import ParquetStream, schema_of, write_parquet
from .paths import make_dirs, remove_if_empty
from .replace import foreign_entries, kind_of, target_lock
from .results import TRAINING_FILE, config_hash, confined, run_problem, write_run
from .runner import run
from .schema import SCHEME_COLUMNS, TRAINING_COLUMNS
from .scratch import create_exclusive, recover_retired, scratch_path, sweep_stale

# --------------------------------------------------------------------------------------------
# Grids and points


def parse_grid(text: str) -> tuple[str, list[Any]]:
    """``key=v1,v2,...`` -> (key, YAML-parsed values). Commas inside [] or {} do not split."""
    if "=" not in text:
        raise cfg.ConfigError([("--grid", f"expected KEY=V1,V2,... got {text!r}")])
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise cfg.ConfigError([("--grid", f"bad key {key!r}: use dotted keys like schemes.1.ell")])
    items, depth, current = [], 0, ""
    for char in raw:
        if char == "," and depth == 0:
            items.append(current)
            current = ""
            continue
        depth += char in "[{"
        depth -= char in "]}"
        current += char
    items.append(current)
    values = []
    for item in items:
        if not item.strip():
            raise cfg.ConfigError([(key, f"--grid has an empty value in {raw!r}")])
        values.append(cfg.parse_value(item, key, "--grid"))  # YAML within the config's limits
    if len(set(map(repr, values))) != len(values):
        raise cfg.ConfigError([(key, f"--grid repeats a value in {raw!r}")])
    return key, values


def grid_points(grids: list[tuple[str, list[Any]]], zipped: bool) -> list[dict[str, Any]]:
    """Every point of the grid, in order: the cartesian product, or the values paired (--zip)."""
    keys = [key for key, _ in grids]
    if len(set(keys)) != len(keys):
        raise cfg.ConfigError([("--grid", "a key is given twice")])
    if zipped:
        lengths = {len(values) for _, values in grids}
        if len(lengths) > 1:
            raise cfg.ConfigError(
                [("--zip", f"needs grids of equal length, got {sorted(lengths)} values")]
            )
        combos = zip(*(values for _, values in grids), strict=True)
    else:
        combos = itertools.product(*(values for _, values in grids))
    return [dict(zip(keys, combo, strict=True)) for combo in combos]


def point_key(params: dict[str, Any]) -> str:
    """Canonical text of a point: what its id and seed derive from."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def point_id(params: dict[str, Any]) -> str:
    return "p" + hashlib.sha256(point_key(params).encode("utf-8")).hexdigest()[:10]


def point_seed(base_seed: int, params: dict[str, Any]) -> int:
    """A point's seed: the config's own at every point (common random numbers), so schemes are
    paired across the grid and a difference between points is the grid key's effect, not
    another draw's; a grid over ``seed`` itself is kept (independent replicates)."""
    if "seed" in params:
        return int(params["seed"])
    return base_seed


@dataclass(frozen=True)
class Point:
    id: str
    params: dict[str, Any]
    data: dict[str, Any]  # the point's full raw config
    config_sha256: str


def plan_points(
    config_path: Path, overrides: list[str], grids: list[str], zipped: bool
) -> tuple[cfg.Experiment, list[Point]]:
    """Validate the base config and every point before anything runs (ConfigError lists all)."""
    config_path = Path(config_path)
    raw = cfg.apply_overrides(cfg.read_yaml(config_path), overrides)
    raw.setdefault("name", config_path.stem)
    base = cfg.from_dict(raw, source_dir=config_path.parent)
    parsed = [parse_grid(text) for text in grids]
    if not parsed:
        raise cfg.ConfigError([("--grid", "give at least one --grid KEY=V1,V2,...")])
    points, problems = [], []
    for params in grid_points(parsed, zipped):
        data = cfg.apply_overrides(raw, [])
        for key, value in params.items():
            data = _set(data, key, value)
        data["seed"] = point_seed(base.seed, params)
        try:
            exp = cfg.from_dict(data, source_dir=config_path.parent)
        except cfg.ConfigError as exc:
            where = ", ".join(f"{k}={v}" for k, v in params.items())
            problems += [
                (key, f"{message} (at grid point {where})") for key, message in exc.problems
            ]
            continue
        points.append(Point(point_id(params), params, data, config_hash(exp)))
    if problems:
        raise cfg.ConfigError(problems)
    return base, points


def _set(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Set a dotted key to an already parsed value (same rules as --set)."""
    return cfg.apply_overrides(data, [f"{key}={json.dumps(value)}"])


def default_sweep_dir(base: cfg.Experiment, points: list[Point], root: Path = Path("results")):
    """``results/<name>/sweep-<fingerprint>``: rerunning the same sweep finds its own results."""
    fingerprint = hashlib.sha256("".join(p.config_sha256 for p in points).encode()).hexdigest()
    return confined(root, base.name or "sweep") / f"sweep-{fingerprint[:10]}"


# --------------------------------------------------------------------------------------------
# Running one point (in a worker process)


@dataclass(frozen=True)
class PointTask:
    point: Point
    source_dir: str
    out_dir: str


def run_point(task: PointTask) -> dict[str, Any]:
    """Run one point and write its run directory atomically, its summary and traces streamed
    to disk (memory bounded whatever the point's trials). Runs in worker processes."""
    started = time.perf_counter()
    exp = cfg.from_dict(task.point.data, source_dir=task.source_dir)
    target = Path(task.out_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The traces and the summary stream here; write_run moves them into the point directory.
    events = scratch_path(target, "events", ".parquet")
    summary = scratch_path(target, "summary", ".parquet")
    try:
        result = run(exp, events_to=events, summary_to=summary)
        write_run(result, target, argv=["gcsim", "sweep", "point", task.point.id], force=True)
    finally:
        events.unlink(missing_ok=True)
        summary.unlink(missing_ok=True)
    return {"id": task.point.id, "seconds": time.perf_counter() - started}


# --------------------------------------------------------------------------------------------
# The sweep


@dataclass
class SweepReport:
    root: Path
    executor: str
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    recomputed: dict[str, str] = field(default_factory=dict)  # id -> why the old one was bad
    failed: dict[str, str] = field(default_factory=dict)  # id -> last error
    seconds: float = 0.0
    #: One row per point in the combined summary, in grid order: ``point`` and the grid keys
    #: with the values and dtypes the combined file holds (None until the sweep combined).
    grid: pd.DataFrame | None = None

    @property
    def summary(self) -> pd.DataFrame | None:
        """The combined ``summary.parquet``: every access reads the WHOLE file into memory
        (about 260 bytes a row of the whole sweep) and the report does not keep it; keep the
        frame if you need it twice. None until the sweep combined its points."""
        if self.grid is None:
            return None
        return pd.read_parquet(self.root / "summary.parquet")

    @property
    def schemes(self) -> pd.DataFrame | None:
        """The combined ``schemes.parquet``: one row per (point, scheme), the point's grid
        values and the scheme's parameters (join it to ``summary`` on point and scheme). None
        until the sweep combined its points."""
        if self.grid is None:
            return None
        return pd.read_parquet(self.root / "schemes.parquet")


def run_sweep(
    config_path: Path,
    grids: list[str],
    overrides: list[str] = (),
    zipped: bool = False,
    jobs: int | None = None,
    dask: str | None = None,
    out: Path | None = None,
    force: bool = False,
    retries: int = 3,
    progress: Callable[[str, str], None] | None = None,
) -> SweepReport:
    """Run (or resume) a sweep; ``progress(point_id, status)`` is told of every point.

    Nothing is created before the config, the grid, the target directory and the Dask address
    check out; a sweep that then fails before any point finished (an unreachable scheduler)
    removes the directories it created. One sweep at a time writes a directory (a lock)."""
    started = time.perf_counter()
    base, points = plan_points(Path(config_path), list(overrides), grids, zipped)
    root = Path(out) if out else default_sweep_dir(base, points)
    jobs = jobs or os.cpu_count() or 1
    if dask is None and os.environ.get("DASK_SCHEDULER_ADDRESS"):
        dask = os.environ["DASK_SCHEDULER_ADDRESS"]
        check_dask_address(dask, "DASK_SCHEDULER_ADDRESS")
    elif dask is not None:
        check_dask_address(dask)
    _check_sweep_dir(root, points, force)
    created = make_dirs(root / "points")
    report = SweepReport(root, executor="")
    try:
        with target_lock(root):
            _check_sweep_dir(root, points, force)  # again, now that no one else writes it
            _run_points(root, base, points, grids, zipped, config_path, jobs, dask, force,
                        retries, progress, report)  # fmt: skip
    except (cfg.ConfigError, OSError):
        if root in created and not report.ran:
            shutil.rmtree(root, ignore_errors=True)
        remove_if_empty([d for d in created if d != root and not d.is_relative_to(root)])
        raise
    report.seconds = time.perf_counter() - started
    _write_sweep_json(root, base, grids, zipped, points, report)
    return report


def _run_points(root, base, points, grids, zipped, config_path, jobs, dask, force, retries,
                progress, report) -> None:  # fmt: skip
    """Skip the finished points, run the rest, combine their summaries (the lock is held)."""
    _clean_staging(root / "points", points)
    sweep_stale(root)
    todo = []
    for point in points:
        target = root / "points" / point.id
        if target.exists() and not force:
            problem = run_problem(target, point.config_sha256)
            if problem is None:
                report.skipped.append(point.id)
                if progress:
                    progress(point.id, "skipped")
                continue
            report.recomputed[point.id] = problem
            shutil.rmtree(target)
        todo.append(point)
    _write_sweep_json(root, base, grids, zipped, points, report)
    try:
        if todo:
            _execute(todo, root, Path(config_path).parent, jobs, dask, retries, report, progress)
        else:
            report.executor = "none (every point was already done)"
        report.grid = _combine(root, points, report)
    except BaseException:  # stopped (interrupt, error): sweep.json says which points are done
        _write_sweep_json(root, base, grids, zipped, points, report)
        raise


def _execute(todo, root, source_dir, jobs, dask, retries, report, progress) -> None:
    """Run points until each is done or has failed ``retries + 1`` times. A worker process that
    dies breaks the pool: its points fail this round and run again in a fresh executor.

    An interrupt (KeyboardInterrupt, the CLI's SIGTERM) or any other exception leaving here
    stops the executor at once (``open_executor``): nothing queued starts, the workers are
    ended, and the hidden files of the points they abandoned are removed. Finished points are
    whole directories already; the rest are left for a rerun."""
    try:
        _execute_rounds(todo, root, source_dir, jobs, dask, retries, report, progress)
    except BaseException:
        if dask is None or dask == "local":  # every worker is gone: nothing still writes
            _clean_staging(root / "points", todo)
        raise


#: Failures of the storage under the sweep: they stop the sweep with one line instead of
#: failing every point in turn (a full disk, a quota, a read-only filesystem, a file size limit).
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def _execute_rounds(todo, root, source_dir, jobs, dask, retries, report, progress) -> None:
    attempts = {point.id: 0 for point in todo}
    pending = list(todo)
    while pending:
        with open_executor(min(jobs, len(pending)), dask) as (executor, description):
            report.executor = description
            futures = {
                executor.submit(
                    run_point, PointTask(p, str(source_dir), str(root / "points" / p.id))
                ): p
                for p in pending
            }
            pending = []
            for future in cf.as_completed(futures):
                point = futures[future]
                error = future.exception()
                if error is None:
                    report.ran.append(point.id)
                    if progress:
                        progress(point.id, "done")
                    continue
                if isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRNOS:
                    raise error  # every other point would fail the same way
                if not isinstance(error, Exception):
                    raise error
                attempts[point.id] += 1
                # A config problem found while running (times that overflow) is the same on
                # every attempt: reported at once. Anything else is retried.
                if attempts[point.id] <= retries and not isinstance(error, cfg.ConfigError):
                    pending.append(point)
                    continue
                report.failed[point.id] = f"{type(error).__name__}: {error}"
                if progress:
                    progress(point.id, "failed")
        pending.sort(key=lambda p: todo.index(p))


def _check_sweep_dir(root: Path, points: list[Point], force: bool) -> None:
    """A sweep directory may be reused only by the same sweep (same point ids), and a sweep
    never writes into a directory of other files (--force included)."""
    spec = root / "sweep.json"
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise cfg.ConfigError(
            [("--out", f"{root} is not a directory (or is a link); choose another --out")]
        )
    if root.exists() and kind_of(root) != "sweep" and _has_files(root):
        raise cfg.ConfigError(
            [("--out", f"{root} holds other files, not a sweep; choose another --out")]
        )
    if root.exists() and kind_of(root) == "sweep":
        foreign = foreign_entries(root, "sweep")
        if foreign:
            raise cfg.ConfigError(
                [("--out", f"{root} is a sweep directory but also holds files gcsim did not "
                  f"write ({', '.join(foreign[:3])}); move them away or choose another --out")]
            )  # fmt: skip
    if spec.exists() and not force:
        try:
            old = {p["id"] for p in json.loads(spec.read_text(encoding="utf-8"))["points"]}
        except (ValueError, KeyError, TypeError):
            return  # unreadable: the points themselves are checked one by one
        if old != {p.id for p in points}:
            raise cfg.ConfigError(
                [("--out", f"{root} holds a different sweep (other grid or config); choose "
                  "another --out or pass --force to replace it")]
            )  # fmt: skip


def _has_files(root: Path) -> bool:
    """Anything in ``root`` but an empty ``points/`` (what a sweep creates before it starts)."""
    for entry in root.iterdir():
        if entry.name == "points" and entry.is_dir() and not any(entry.iterdir()):
            continue
        return True
    return False


def _clean_staging(points_dir: Path, points: list[Point]) -> None:
    """Remove the hidden files and directories a killed sweep left among its points (never
    merged, never trusted), after putting back any point an interrupted replacement had set
    aside. The sweep's lock is held: no other process writes here."""
    for point in points:
        recover_retired(points_dir / point.id)
    for leftover in points_dir.glob(".*"):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _combine(root: Path, points: list[Point], report: SweepReport) -> pd.DataFrame:
    """Write every finished point's summary with one column per grid key, in grid order, one
    point in memory at a time; return the grid frame (``SweepReport.grid``).

    The bytes are those of the whole frame ``pd.concat`` would give written by
    ``write_parquet``: each grid column takes the dtype concat gives across all points and the
    arrow type arrow infers from all its values (``_grid_frame``), and the row groups do not
    depend on how the rows arrive (``ParquetStream``)."""
    done = [point for point in points if point.id not in report.failed]
    files = [root / "points" / point.id / "summary.parquet" for point in done]
    grid, grid_schema = _grid_frame(done)
    staging = scratch_path(root / "summary.parquet", "tmp", ".parquet")
    if not done:
        write_parquet(pd.DataFrame(), staging)
        os.replace(staging, root / "summary.parquet")
        _combine_schemes(root, done, grid, grid_schema)
        return grid
    stream = None
    try:
        for position, path in enumerate(files):
            chunk = _with_grid(pd.read_parquet(path), grid, position)
            if stream is None:
                fields = pa.Schema.from_pandas(chunk, preserve_index=False).remove_metadata()
                schema = pa.schema(
                    [grid_schema.field(f.name) if f.name in grid.columns else f for f in fields]
                )
                stream = ParquetStream(staging, schema)
            stream.append(chunk)
            del chunk
        stream.close()
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    os.replace(staging, root / "summary.parquet")
    _combine_schemes(root, done, grid, grid_schema)
    _combine_training(root, done, grid, grid_schema)
    return grid


def _combine_training(
    root: Path, done: list[Point], grid: pd.DataFrame, grid_schema: pa.Schema
) -> None:
    """Write ``training.parquet`` when the points are training runs: every point's rows with
    ``point`` and its grid columns first, as ``summary.parquet`` has them (a training run's
    rows are few: one per (scheme, trial, iteration), combined in memory)."""
    paths = [root / "points" / point.id / TRAINING_FILE for point in done]
    if not paths or not all(path.exists() for path in paths):
        return
    frames = [_with_grid(pd.read_parquet(path), grid, i) for i, path in enumerate(paths)]
    fields = [grid_schema.field(i) for i in range(len(grid.columns))]
    schema = pa.schema(fields + list(schema_of(TRAINING_COLUMNS)))
    _write_whole(root / TRAINING_FILE, pd.concat(frames, ignore_index=True), schema)


def _combine_schemes(
    root: Path, done: list[Point], grid: pd.DataFrame, grid_schema: pa.Schema
) -> None:
    """Write ``schemes.parquet``: every finished point's scheme table with ``point`` and its
    grid columns first (the values, dtypes and arrow types of the combined summary's). A grid
    key named like a scheme column (``engine``) is written as ``<key> (grid)``."""
    grid = grid.rename(columns={c: f"{c} (grid)" for c in grid.columns if c in SCHEME_COLUMNS})
    fields = [grid_schema.field(i).with_name(name) for i, name in enumerate(grid.columns)]
    schema = pa.schema(fields + list(schema_of(SCHEME_COLUMNS)))
    frames = [
        _with_grid(read_schemes(root / "points" / point.id), grid, position)
        for position, point in enumerate(done)
    ]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    _write_whole(root / "schemes.parquet", frame, schema)


def _write_whole(path: Path, frame: pd.DataFrame, schema: pa.Schema) -> None:
    """``frame`` as the parquet file ``path``, staged beside it and swapped into place (a
    reader sees the old file or the whole new one)."""
    staging = scratch_path(path, "tmp", ".parquet")
    try:
        stream = ParquetStream(staging, schema)
        stream.append(frame)
        stream.close()
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    os.replace(staging, path)


def _with_grid(summary: pd.DataFrame, grid: pd.DataFrame, position: int) -> pd.DataFrame:
    """A point's summary with ``point`` and its grid columns first: the values and dtypes of
    the point's row (``position``) of the grid frame, repeated on every row."""
    for index, column in enumerate(grid.columns):
        values = grid[column].iloc[[position]].repeat(len(summary))
        summary.insert(index, column, values.array)
    return summary


def _grid_frame(points: list[Point]) -> tuple[pd.DataFrame, pa.Schema]:
    """One row per point (``point`` then the grid keys) with the dtypes ``pd.concat`` gives
    the whole combined frame, and the arrow schema ``write_parquet`` infers for those columns.

    Each point's row is built the way a point's summary gets its grid columns, so concat
    resolves the same dtypes (int and float give float64, a None gives object...): a point
    always has rows (trials >= 1, at least one scheme), and concat's dtypes do not depend on
    how many. Arrow infers an object column's type from all its values, which the grid frame
    holds. A column arrow cannot type (values of mixed kinds, like 1 and "a", or ints beyond
    int64) is written as the JSON text of each value."""
    frames = []
    for point in points:
        frame = pd.DataFrame(index=range(1))
        for position, (key, value) in enumerate(point.params.items()):
            frame.insert(position, key, [value])
        frame.insert(0, "point", point.id)
        frames.append(frame)
    grid = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    fields = []
    for column in grid.columns:
        try:
            fields.append(pa.Schema.from_pandas(grid[[column]], preserve_index=False).field(0))
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            text = [json.dumps(value, sort_keys=True, default=str) for value in grid[column]]
            grid[column] = pd.Series(text, index=grid.index)
            fields.append(pa.Schema.from_pandas(grid[[column]], preserve_index=False).field(0))
    return grid, pa.schema(fields)


def _write_sweep_json(root, base, grids, zipped, points, report) -> None:
    status = {pid: "done" for pid in report.ran + report.skipped}
    status.update({pid: "failed" for pid in report.failed})
    spec = {
        "name": base.name,
        "seed": base.seed,
        "grid": dict(parse_grid(text) for text in grids),
        "mode": "zip" if zipped else "product",
        "executor": report.executor,
        "seconds": report.seconds,
        "points": [
            {
                "id": p.id,
                "params": p.params,
                "dir": f"points/{p.id}",
                "seed": p.data["seed"],
                "status": status.get(p.id, "pending"),
                **({"error": report.failed[p.id]} if p.id in report.failed else {}),
            }
            for p in points
        ],
    }
    staging = scratch_path(root / "sweep.json", "tmp")
    try:
        with create_exclusive(staging) as file:
            file.write(json.dumps(spec, indent=2, default=str).encode("utf-8"))
        os.replace(staging, root / "sweep.json")
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
