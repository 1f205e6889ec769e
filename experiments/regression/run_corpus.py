"""The regression corpus: proof that a change to simulator/ leaves every result as it was.

    python experiments/regression/run_corpus.py record --out FILE.json [--ref GIT_REF]
    python experiments/regression/run_corpus.py check BASELINE.json [--ref GIT_REF] [--tolerant]

Every config in ``configs/`` is run through the command line (``python -m simulator run CONFIG
--out DIR -q --jobs N``), the one interface every commit has, and each output file is
reduced to what a later commit must reproduce: its sha256, its row count and, per column, the
sha256 of the values as canonical bytes plus a short fingerprint of each trial's values (to
name the first trial that changed). ``record`` writes those to JSON; ``check`` runs the corpus
again and compares. A new column is allowed; a missing or changed one is not (exit 1).

With ``--ref`` the corpus runs against that commit instead of this tree: a temporary
``git worktree add --detach`` of the ref, whose ``simulator`` a child process imports (checked),
removed afterwards. The configs always come from this tree, so a ref older than the corpus
can be measured. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fnmatch
import hashlib
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs"
REPO = HERE.parents[1]
FILES = ("summary.parquet", "events.parquet")
#: Files only some runs write (a training run's rows): recorded when present, and then a
#: later run must write them too.
OPTIONAL_FILES = ("training.parquet",)
#: Version of the JSON layout below; ``check`` refuses a baseline of another version.
FORMAT = 1
#: Configs also run with more jobs, recorded as ``<name>@jobs<N>``: the trials are then split
#: over processes, which must not show in any byte.
ALSO_WITH_JOBS = {"x06_several_blocks": 2}
#: Float columns whose values pass through BLAS/LAPACK (matrix products, least squares, SVD)
#: and differ in their last bits on another CPU: OpenBLAS picks its kernels at run time, and
#: forcing another one (OPENBLAS_CORETYPE=Haswell, Sandybridge, Nehalem instead of this
#: machine's SkylakeX) moved these three columns in 52 of the 56 configs and nothing else. Each also
#: gets a digest at tolerance: the value as text, 0 below ``zero_below`` (rounding noise: an
#: exact decode's rel_error is about 1e-30, and reached 1e-9 at m = 30), then with as many
#: significant digits as the band it falls in allows (``bands``: [upper bound, digits], the
#: last bound exclusive); at or above the last bound only the band is kept (a condition number
#: of 1e10 or more is known to a few digits at best; the generic code's 1e16 ones moved 5x).
TOLERANCE: dict[str, dict[str, Any]] = {
    "rel_error": {"zero_below": 1e-6, "bands": [[1e300, 6]]},
    "residual": {"zero_below": 1e-6, "bands": [[1e300, 6]]},
    "decode_cond": {"zero_below": 0.0, "bands": [[1e6, 6], [1e10, 2]]},
    # A training run's parameters go through matrix products every iteration.
    "loss": {"zero_below": 0.0, "bands": [[1e300, 8]]},
    "accuracy": {"zero_below": 0.0, "bands": [[1e300, 8]]},
    "grad_error": {"zero_below": 1e-6, "bands": [[1e300, 6]]},
}
TOLERANT_COLUMNS = {
    "summary.parquet": ("rel_error", "residual", "decode_cond"),
    "training.parquet": ("loss", "accuracy", "grad_error"),
}
#: Bytes of each trial's per-column fingerprint (enough to locate a change, not to prove it:
#: the column's sha256 does that).
FINGERPRINT_BYTES = 4


class Unusable(Exception):
    """The corpus could not be run or compared (a bad argument or environment): exit 2."""


# --------------------------------------------------------------------------------------------
# The corpus


def corpus(only: list[str] | None = None) -> list[dict[str, Any]]:
    """The runs of the corpus, in name order: one per config, plus the --jobs variants.
    ``only``: shell patterns on the run names (``p1*``, ``x06*``)."""
    runs = []
    for path in sorted(CONFIGS.glob("*.yaml")):
        runs.append({"name": path.stem, "config": str(path), "jobs": 1})
        if path.stem in ALSO_WITH_JOBS:
            jobs = ALSO_WITH_JOBS[path.stem]
            runs.append({"name": f"{path.stem}@jobs{jobs}", "config": str(path), "jobs": jobs})
    if only:
        runs = [r for r in runs if any(fnmatch.fnmatchcase(r["name"], p) for p in only)]
    return runs


def config_digest(config: Path) -> str:
    """sha256 of the config's text and of every data file it names (``file``,
    ``assignment_file``), so an edited input is told apart from a changed result."""
    import yaml

    digest = hashlib.sha256(config.read_bytes())
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    for name in sorted(set(_named_files(data))):
        digest.update(b"\0" + name.encode("utf-8") + b"\0")
        digest.update((config.parent / name).read_bytes())
    return digest.hexdigest()


def _named_files(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "assignment_file") and isinstance(value, str):
                yield value
            else:
                yield from _named_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from _named_files(item)


# --------------------------------------------------------------------------------------------
# Digests of a parquet file (pyarrow only: the same code reads any commit's output)


def canonical_rows(column: Any) -> list[bytes]:
    """Each value of an arrow column as bytes that are equal exactly when the values are: floats
    as little-endian IEEE bits with every NaN made the one quiet NaN (a NaN's payload and sign
    carry no meaning), integers and booleans little-endian, strings length-prefixed UTF-8,
    nulls a marker of their own. Other types go through JSON, so a new column of any type
    still gets a digest."""
    import numpy as np
    import pyarrow as pa

    kind = column.type
    n = len(column)
    valid = np.ones(n, dtype=bool)
    if column.null_count:
        valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        if pa.types.is_floating(kind):
            values = column.to_numpy(zero_copy_only=False).astype("<f8")
            values = np.where(np.isnan(values), np.nan, values)
        elif pa.types.is_boolean(kind):
            values = column.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8)
        else:
            values = column.fill_null(0).to_numpy(zero_copy_only=False).astype("<i8")
        rows = [value.tobytes() for value in values]
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        rows = []
        for value in column.to_pylist():
            text = b"" if value is None else value.encode("utf-8")
            rows.append(len(text).to_bytes(4, "little") + text)
    else:
        rows = []
        for value in column.to_pylist():
            text = json.dumps(value, default=repr, sort_keys=True).encode("utf-8")
            rows.append(len(text).to_bytes(4, "little") + text)
    if not valid.all():
        rows = [row if ok else b"\xff\xff\xff\xffnull" for row, ok in zip(rows, valid, strict=True)]
    return rows


def tolerant_text(column: str, value: float | None) -> str:
    """A value of a ``TOLERANCE`` column as it is compared at tolerance. Python formats floats
    correctly rounded on every platform, so equal values give equal text anywhere, and values
    a few ulps apart almost always do too (unless one sits on a rounding boundary: about one
    value in 10^4 at the coarsest band)."""
    if value is None:
        return "null"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    rule = TOLERANCE[column]
    if abs(value) < rule["zero_below"]:
        return "0"
    for upper, digits in rule["bands"]:
        if abs(value) < upper:
            return f"{value:.{digits - 1}e}"
    return f"{'-' if value < 0 else ''}>={rule['bands'][-1][0]:g}"


def digest_file(path: Path, tolerant: tuple[str, ...] = ()) -> dict[str, Any]:
    """What a later run must reproduce of one parquet file: its bytes' sha256, its rows, and per
    column the arrow type, the values' sha256 and each trial's fingerprint (columns in file
    order; ``tolerant`` columns also ``sha256_tolerant``)."""
    import pyarrow.parquet as pq

    data = Path(path).read_bytes()
    table = pq.read_table(io.BytesIO(data))
    groups = _trial_groups(table)
    columns: dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        column = column.combine_chunks()
        rows = canonical_rows(column)
        entry: dict[str, Any] = {
            "type": str(column.type),
            "sha256": hashlib.sha256(b"".join(rows)).hexdigest(),
        }
        if name in tolerant:
            text = "\n".join(tolerant_text(name, v) for v in column.to_pylist())
            entry["sha256_tolerant"] = hashlib.sha256(text.encode("ascii")).hexdigest()
        if groups is not None and name != "trial":
            prints = b"".join(
                hashlib.blake2b(
                    b"".join(rows[i] for i in members), digest_size=FINGERPRINT_BYTES
                ).digest()
                for members in groups.values()
            )
            entry["trial_prints"] = base64.b64encode(zlib.compress(prints, 9)).decode("ascii")
        columns[name] = entry
    out: dict[str, Any] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "rows": table.num_rows,
        "columns": columns,
    }
    if groups is not None:
        out["trials"] = _as_ranges(list(groups))
    return out


def _trial_groups(table: Any) -> dict[int, list[int]] | None:
    """Row indices of each trial (file order within a trial), trials ascending; None if the
    table has no integer ``trial`` column."""
    import pyarrow as pa

    if "trial" not in table.column_names or not pa.types.is_integer(
        table.schema.field("trial").type
    ):
        return None
    groups: dict[int, list[int]] = {}
    for row, trial in enumerate(table.column("trial").to_pylist()):
        groups.setdefault(-1 if trial is None else int(trial), []).append(row)
    return dict(sorted(groups.items()))


def _as_ranges(values: list[int]) -> list[list[int]]:
    """Sorted integers as [first, last] runs: trials 0..699 are one pair, not 700 numbers."""
    ranges: list[list[int]] = []
    for value in values:
        if ranges and value == ranges[-1][1] + 1:
            ranges[-1][1] = value
        else:
            ranges.append([value, value])
    return ranges


def _from_ranges(ranges: list[list[int]]) -> list[int]:
    return [v for first, last in ranges for v in range(first, last + 1)]


def trial_prints(file_digest: dict[str, Any], column: str) -> dict[int, bytes] | None:
    """trial -> fingerprint of a column, from a file digest (None if it has none)."""
    entry = file_digest["columns"].get(column, {})
    if "trial_prints" not in entry or "trials" not in file_digest:
        return None
    raw = zlib.decompress(base64.b64decode(entry["trial_prints"]))
    trials = _from_ranges(file_digest["trials"])
    size = FINGERPRINT_BYTES
    return {t: raw[i * size : (i + 1) * size] for i, t in enumerate(trials)}


# --------------------------------------------------------------------------------------------
# Running the corpus: one child process per tree, the CLI called in it


def run_cli(args: list[str]) -> tuple[int, str]:
    """``python -m simulator ARGS`` in this process (what the shell would run, without paying
    the imports per config): (exit status, its output)."""
    import runpy

    captured = io.StringIO()
    saved = sys.argv[:]
    sys.argv = ["simulator", *args]
    code: int | str | None = 0
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            runpy.run_module("simulator", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = saved
    status = code if isinstance(code, int) else (0 if code is None else 1)
    return status, captured.getvalue()


def run_entry(entry: dict[str, Any], work: Path) -> dict[str, Any]:
    """Run one corpus entry into ``work`` (removed afterwards) and digest its files."""
    out = work / entry["name"].replace("@", "-") / "run"
    out.parent.mkdir(parents=True)
    config = Path(entry["config"])
    args = ["run", str(config), "--out", str(out), "-q", "--jobs", str(entry["jobs"])]
    started = time.perf_counter()
    try:
        status, output = run_cli(args)
    except Exception as exc:  # noqa: BLE001 - a crash of the simulator is a result to report
        status, output = 1, f"{type(exc).__name__}: {exc}"
    result: dict[str, Any] = {
        "name": entry["name"],
        "config": config.relative_to(HERE).as_posix()
        if config.is_relative_to(HERE)
        else str(config),
        "config_sha256": config_digest(config),
        "jobs": entry["jobs"],
        "exit": status,
    }
    if status == 0:
        present = [*FILES, *(name for name in OPTIONAL_FILES if (out / name).exists())]
        result["files"] = {
            name: digest_file(out / name, TOLERANT_COLUMNS.get(name, ())) for name in present
        }
    else:
        result["error"] = output.strip().splitlines()[-5:]
    shutil.rmtree(out.parent, ignore_errors=True)
    result["_seconds"] = time.perf_counter() - started  # printed, never stored
    return result


def _batch(plan_path: Path, result_path: Path, tree: Path) -> int:
    """The child process: check which simulator it imports, run the plan, write the results.
    Runs go to a directory beside the plan, which the parent removes even if this process is
    killed."""
    import simulator

    imported = Path(simulator.__file__).resolve()
    if not imported.is_relative_to(tree.resolve()):
        print(
            f"error: imported simulator from {imported}, expected it under {tree}", file=sys.stderr
        )
        return 2
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    results = []
    work = plan_path.parent / "runs"
    work.mkdir()
    for i, entry in enumerate(plan, start=1):
        result = run_entry(entry, work)
        seconds = result.pop("_seconds")
        state = "ok" if result["exit"] == 0 else f"exit {result['exit']}"
        print(
            f"  [{i}/{len(plan)}] {entry['name']:<40} {seconds:6.2f} s  {state}",
            file=sys.stderr,
            flush=True,
        )
        results.append(result)
    payload = {"simulator": str(imported), "packages": _versions(), "results": results}
    result_path.write_text(json.dumps(payload), encoding="utf-8")
    return 0


def _versions() -> dict[str, str]:
    """Versions of what decides the bytes (pyarrow writes its version into every file)."""
    from importlib import metadata

    names = ("numpy", "scipy", "pandas", "pyarrow", "simpy", "pydantic", "pyyaml")
    return {name: metadata.version(name) for name in names}


def run_corpus(
    runs: list[dict[str, Any]], ref: str | None, isolate: bool = False
) -> dict[str, Any]:
    """Run ``runs`` against ``ref`` (None: this tree) in child processes; the tree's
    description and every result."""
    with _tree(ref) as (tree, description):
        batches = [[run] for run in runs] if isolate else [runs]
        results: list[dict[str, Any]] = []
        packages: dict[str, str] = {}
        for batch in batches:
            payload = _run_child(batch, tree)
            results += payload["results"]
            packages = payload["packages"]
            description["simulator"] = payload["simulator"]
    return {"tree": description, "packages": packages, "results": results}


def _run_child(batch: list[dict[str, Any]], tree: Path) -> dict[str, Any]:
    """One child process for ``batch``, importing ``simulator`` from ``tree``. It runs in its
    own process group so that an interrupt ends it and any pool it started, and nothing else."""
    with tempfile.TemporaryDirectory(prefix="gcsim-corpus-") as scratch:
        plan, out = Path(scratch) / "plan.json", Path(scratch) / "results.json"
        plan.write_text(json.dumps(batch), encoding="utf-8")
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])]),
        )
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "_batch",
            str(plan),
            str(out),
            "--tree",
            str(tree),
        ]
        proc = subprocess.Popen(command, cwd=tree, env=env, start_new_session=True)
        try:
            status = proc.wait()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            raise
        if status != 0 or not out.exists():
            raise Unusable(f"the corpus run in {tree} failed (exit {status}); see its output above")
        return json.loads(out.read_text(encoding="utf-8"))


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@contextlib.contextmanager
def _tree(ref: str | None) -> Iterator[tuple[Path, dict[str, Any]]]:
    """This tree, or a temporary detached worktree of ``ref`` removed on the way out."""
    if ref is None:
        dirty = bool(_git("status", "--porcelain", "--", "simulator"))
        yield REPO, {"ref": None, "commit": _git("rev-parse", "HEAD"), "simulator_dirty": dirty}
        return
    try:
        commit = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except subprocess.CalledProcessError:
        raise Unusable(
            f"--ref: {ref!r} is not a commit of {REPO}; give a hash, tag or branch"
        ) from None

    _remove_stale_worktrees()
    parent = Path(tempfile.mkdtemp(prefix=f"gcsim-corpus-{os.getpid()}-"))
    path = parent / "tree"
    try:
        _git("worktree", "add", "--detach", str(path), commit)
        yield path, {"ref": ref, "commit": commit, "simulator_dirty": False}
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _git("worktree", "remove", "--force", str(path))
        shutil.rmtree(parent, ignore_errors=True)
        with contextlib.suppress(subprocess.CalledProcessError):
            _git("worktree", "prune")


def _remove_stale_worktrees() -> None:
    """Worktrees this script made in a run that was killed outright (its pid is gone)."""
    listing = _git("worktree", "list", "--porcelain")
    for line in listing.splitlines():
        if not line.startswith("worktree "):
            continue
        path = Path(line.removeprefix("worktree "))
        name = path.parent.name
        if path.name != "tree" or not name.startswith("gcsim-corpus-"):
            continue
        pid = name.removeprefix("gcsim-corpus-").split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(subprocess.CalledProcessError):
                _git("worktree", "remove", "--force", str(path))
            shutil.rmtree(path.parent, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------------------------
# Comparing


def compare_file(base: dict[str, Any], now: dict[str, Any], tolerant: bool) -> dict[str, Any]:
    """How a file's digest moved: ``same_bytes``, ``changed`` (column -> what), ``missing``,
    ``added`` columns, ``close`` (columns equal only at tolerance) and the row counts."""
    out: dict[str, Any] = {
        "same_bytes": base["sha256"] == now["sha256"],
        "rows": (base["rows"], now["rows"]),
        "missing": [c for c in base["columns"] if c not in now["columns"]],
        "added": [c for c in now["columns"] if c not in base["columns"]],
        "changed": {},
        "close": [],
    }
    for name, old in base["columns"].items():
        new = now["columns"].get(name)
        if new is None or (old["sha256"] == new["sha256"] and old["type"] == new["type"]):
            continue
        if old["type"] != new["type"]:
            out["changed"][name] = f"type {old['type']} -> {new['type']}"
            continue
        if (
            tolerant
            and "sha256_tolerant" in old
            and old["sha256_tolerant"] == new.get("sha256_tolerant")
        ):
            out["close"].append(name)
            continue
        out["changed"][name] = _first_difference(base, now, name)
    return out


def _first_difference(base: dict[str, Any], now: dict[str, Any], column: str) -> str:
    """The first trial whose values of ``column`` differ, as words."""
    old, new = trial_prints(base, column), trial_prints(now, column)
    if old is None or new is None:
        return "values differ"
    for trial in sorted(set(old) | set(new)):
        if trial not in new:
            return f"trial {trial} gone"
        if trial not in old:
            return f"trial {trial} new"
        if old[trial] != new[trial]:
            return f"first at trial {trial}"
    return "values differ (same per-trial prints)"


def compare_run(base: dict[str, Any] | None, now: dict[str, Any], tolerant: bool) -> dict[str, Any]:
    """The verdict on one corpus run against its baseline entry: ``ok`` is False for anything
    that breaks the promise (a changed or missing column, a failed run, a stale config)."""
    if base is None:
        return {"ok": True, "verdict": "new config (not in the baseline)", "files": {}}
    if base["config_sha256"] != now["config_sha256"]:
        return {
            "ok": False,
            "verdict": "config or its data edited since the baseline: re-record",
            "files": {},
        }
    if now["exit"] != 0:
        error = " | ".join(now.get("error", []))[-200:]
        return {"ok": False, "verdict": f"FAILED (exit {now['exit']}): {error}", "files": {}}
    if base["exit"] != 0:
        return {
            "ok": True,
            "verdict": f"runs now (exit {base['exit']} in the baseline)",
            "files": {},
        }
    names = [*FILES, *(name for name in OPTIONAL_FILES if name in base["files"])]
    missing = [name for name in names if name not in now["files"]]
    if missing:
        return {"ok": False, "verdict": f"CHANGED: no {', '.join(missing)}", "files": {}}
    files = {
        name: compare_file(base["files"][name], now["files"][name], tolerant) for name in names
    }
    bad = any(f["changed"] or f["missing"] for f in files.values())
    if bad:
        verdict = "CHANGED"
    elif all(f["same_bytes"] for f in files.values()):
        verdict = "same bytes"
    elif any(f["close"] for f in files.values()):
        verdict = "equal at tolerance"
    elif any(f["added"] for f in files.values()):
        verdict = "same values, new columns"
    else:
        verdict = "same values, other bytes"
    return {"ok": not bad, "verdict": verdict, "files": files}


def describe_file(comparison: dict[str, Any]) -> str:
    """One table cell: what happened to a file."""
    if comparison["same_bytes"]:
        return "bytes ="
    parts = []
    old_rows, new_rows = comparison["rows"]
    if old_rows != new_rows:
        parts.append(f"rows {old_rows}->{new_rows}")
    parts += [f"{name}: {what}" for name, what in comparison["changed"].items()]
    parts += [f"MISSING {name}" for name in comparison["missing"]]
    parts += [f"+{name}" for name in comparison["added"]]
    parts += [f"{name} ~" for name in comparison["close"]]
    return "; ".join(parts) or "values = (bytes differ)"


def jobs_agreement(results: list[dict[str, Any]]) -> list[str]:
    """Lines saying whether each ``@jobsN`` run gave its jobs-1 run's bytes and values."""
    by_name = {r["name"]: r for r in results}
    lines = []
    for result in results:
        if "@jobs" not in result["name"]:
            continue
        single = by_name.get(result["name"].split("@", 1)[0])
        if single is None or single["exit"] or result["exit"]:
            continue
        verdict = compare_run(single, result, tolerant=False)
        lines.append(f"{result['name']} vs --jobs 1: {verdict['verdict']}")
    return lines


def dump_json(value: Any, depth: int = 0, expand: int = 6) -> str:
    """JSON with one line per column digest: nested objects are spread over lines down to
    ``expand`` levels and written on one line below, so a re-recorded baseline's diff shows
    which columns of which run moved."""
    if depth >= expand or not isinstance(value, dict | list) or not value:
        return json.dumps(value)
    pad, inner = " " * depth, " " * (depth + 1)
    if isinstance(value, list):
        items = [inner + dump_json(v, depth + 1, expand) for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    items = [f"{inner}{json.dumps(k)}: {dump_json(v, depth + 1, expand)}" for k, v in value.items()]
    return "{\n" + ",\n".join(items) + f"\n{pad}}}"


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
        if k == 0:
            print("  ".join("-" * width for width in widths))


# --------------------------------------------------------------------------------------------
# Command line


def record(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    runs = _selected(args.only)
    measured = run_corpus(runs, args.ref, args.isolate)
    baseline = {
        "format": FORMAT,
        # where simulator was imported from is a path on this machine: printed, not recorded
        "tree": {k: v for k, v in measured["tree"].items() if k != "simulator"},
        "packages": measured["packages"],
        "tolerance": TOLERANCE,
        "runs": measured["results"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(dump_json(baseline) + "\n", encoding="utf-8")
    failed = [r["name"] for r in measured["results"] if r["exit"] != 0]
    print(
        f"recorded {len(runs)} runs of {measured['tree']['commit'][:12]} "
        f"(simulator from {measured['tree']['simulator']}) in {args.out}, "
        f"{time.perf_counter() - started:.0f} s"
    )
    for line in jobs_agreement(measured["results"]):
        print(line)
    for name in failed:
        print(f"error: {name} did not run", file=sys.stderr)
    disagree = [line for line in jobs_agreement(measured["results"]) if "CHANGED" in line]
    return 1 if failed or disagree else 0


def check(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        baseline = json.loads(Path(args.baseline).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise Unusable(
            f"BASELINE: cannot read {args.baseline} ({exc}); give a file `record` wrote"
        ) from None
    if not isinstance(baseline, dict) or baseline.get("format") != FORMAT:
        raise Unusable(
            f"BASELINE: {args.baseline} is not a format-{FORMAT} baseline; record it again"
        )
    if baseline.get("tolerance") != TOLERANCE:
        print("note: the baseline was recorded with other tolerance rules; --tolerant cannot match")
    runs = _selected(args.only)
    measured = run_corpus(runs, args.ref, args.isolate)
    base_runs = {r["name"]: r for r in baseline["runs"]}
    rows = [("run", "summary.parquet", "events.parquet", "verdict")]
    broken = 0
    for result in measured["results"]:
        verdict = compare_run(base_runs.get(result["name"]), result, args.tolerant)
        broken += not verdict["ok"]
        cells = [describe_file(verdict["files"][f]) if f in verdict["files"] else "" for f in FILES]
        rows.append((result["name"], *cells, verdict["verdict"]))
    ran = {r["name"] for r in measured["results"]}
    for name in base_runs:
        if name not in ran and not args.only:
            rows.append((name, "", "", "not in the corpus any more"))
    print_table(rows)
    for line in jobs_agreement(measured["results"]):
        print(line)
    tree = measured["tree"]
    where = f"{tree['ref']} = {tree['commit'][:12]}" if tree["ref"] else tree["commit"][:12]
    dirty = " + uncommitted simulator/ changes" if tree["simulator_dirty"] else ""
    base_commit = baseline["tree"]["commit"][:12]
    if baseline["packages"] != measured["packages"]:
        print(
            f"note: package versions differ from the baseline's: {baseline['packages']} "
            f"-> {measured['packages']} (file bytes may differ; column values should not)"
        )
    print(
        f"{where}{dirty} against the baseline of {base_commit}: {len(rows) - 1} runs, "
        f"{broken} with changed results; {time.perf_counter() - started:.0f} s"
    )
    return 1 if broken else 0


def _selected(only: list[str] | None) -> list[dict[str, Any]]:
    runs = corpus(only)
    if not runs:
        raise Unusable(f"--only: no run of the corpus matches {only}; names are like p11_*, x06*")
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--ref", help="run against this git commit (a temporary worktree)")
    common.add_argument(
        "--only",
        action="append",
        metavar="PATTERN",
        help="only the runs whose name matches (repeatable; e.g. 'p1*')",
    )
    common.add_argument(
        "--isolate",
        action="store_true",
        help="one process per config instead of one for the corpus (slower)",
    )
    rec = verbs.add_parser("record", parents=[common], help="run the corpus, write digests")
    rec.add_argument("--out", required=True, help="the JSON file to write")
    chk = verbs.add_parser("check", parents=[common], help="run the corpus, compare to a baseline")
    chk.add_argument("baseline", help="a JSON file written by record")
    chk.add_argument(
        "--tolerant",
        action="store_true",
        help="compare the BLAS-dependent columns at the documented tolerance",
    )
    child = verbs.add_parser("_batch", help=argparse.SUPPRESS)
    child.add_argument("plan", type=Path)
    child.add_argument("result", type=Path)
    child.add_argument("--tree", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.verb == "_batch":
        return _batch(args.plan, args.result, args.tree)
    signal.signal(signal.SIGTERM, _interrupted)  # so that worktrees and children are cleaned up
    try:
        return {"record": record, "check": check}[args.verb](args)
    except Unusable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: the child process and any temporary worktree were removed",
            file=sys.stderr,
        )
        return 130


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
