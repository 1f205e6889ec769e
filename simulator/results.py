"""Run directories: ``config.yaml``, ``manifest.json``, ``summary.parquet``, ``events.parquet``,
``schemes.parquet`` (one row per scheme: its parameters and engine, ``parameters.py``).

A run directory appears whole or not at all: everything is written into a hidden temporary
sibling and swapped into place at the end, so an interrupted or failed run never leaves a
directory that looks finished. Existing results are never overwritten silently, and ``--force``
replaces only a run directory (``replace.py``: recognised, locked, swapped atomically).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import yaml

from . import __version__
from .config import ConfigError, Experiment
from .parameters import scheme_table
from .parquet import write_parquet
from .replace import check_replaceable, swap_into_place, target_lock
from .runner import EVENT_COLUMNS, SUMMARY_COLUMNS, RunResult
from .schema import SCHEME_COLUMNS, TRAINING_COLUMNS
from .scratch import recover_retired, scratch_path


def confined(root: Path, name: str, what: str = "name") -> Path:
    """``root / name``, refused (ConfigError) unless it stays inside ``root``: a config's name
    is one directory under the results root, never a path out of it."""
    base = root / name
    inside = Path(os.path.abspath(base)).is_relative_to(os.path.abspath(root))
    if not name or not inside or Path(os.path.abspath(base)) == Path(os.path.abspath(root)):
        raise ConfigError([(what, f"{name!r} would write outside {root}; use a plain name")])
    return base


def default_run_dir(exp: Experiment, root: Path = Path("results")) -> Path:
    """``results/<name>/<run-id>``, the id a UTC timestamp (suffixed if taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = confined(root, exp.name or "run")
    candidate, n = base / stamp, 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = base / f"{stamp}-{n}"
    return candidate


def check_writable(out: Path, force: bool) -> None:
    """Refuse to write ``out`` unless it is missing or empty, or ``force`` and it is a run
    directory holding only what gcsim wrote (ConfigError names the fix)."""
    check_replaceable(out, force, "run")


def write_run(
    result: RunResult, out: Path, argv: list[str] | None = None, force: bool = False
) -> Path:
    """Write a run directory atomically and return its path. A summary or event trace the run
    streamed to disk (``result.summary_file``, ``result.events_file``) is moved into it, not
    rewritten, and the result then names the file in the run directory."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with target_lock(out):
        for line in recover_retired(out):
            print(f"gcsim: {line}", file=sys.stderr)
        check_writable(out, force)
        _write_locked(result, out, argv)
    # The streamed files now live in the run directory: the result reads them from there.
    if result.summary_file is not None:
        result.summary_file = out / "summary.parquet"
    if result.events_file is not None:
        result.events_file = out / "events.parquet"
    result.files_placed = result.summary_file is not None or result.events_file is not None
    return out


def _write_locked(result: RunResult, out: Path, argv: list[str] | None) -> None:
    """Stage the run directory beside ``out`` and swap it into place (the lock is held)."""
    staging = scratch_path(out, "tmp")
    staging.mkdir()  # exclusive: never an existing directory or link
    try:
        exp = result.config
        (staging / "config.yaml").write_text(
            yaml.safe_dump(exp.resolved(), sort_keys=False), encoding="utf-8"
        )
        if result.summary_file is not None:  # streamed to disk during the run
            _place(result.summary_file, staging / "summary.parquet", result.files_placed)
        else:
            write_parquet(result.summary, staging / "summary.parquet", SUMMARY_COLUMNS)
        if result.events_file is not None:  # streamed to disk during the run
            _place(result.events_file, staging / "events.parquet", result.files_placed)
        else:
            write_parquet(result.events, staging / "events.parquet", EVENT_COLUMNS)
        schemes = scheme_table(exp, result.engines)
        write_parquet(schemes, staging / "schemes.parquet", SCHEME_COLUMNS)
        checked = list(CHECKED_FILES)
        if result.training is not None:
            write_parquet(result.training, staging / TRAINING_FILE, TRAINING_COLUMNS)
            checked.append(TRAINING_FILE)
        manifest = {
            "gcsim_version": __version__,
            "config_sha256": config_hash(exp),
            "files": {name: file_hash(staging / name) for name in checked},
            "name": exp.name,
            "seed": exp.seed,
            "trials": exp.trials,
            "engine": result.engine,
            "engines": result.engines,  # by scheme label: the engine of its untraced trials
            "executor": result.executor,
            "schemes": exp.labels(),
            "command": argv if argv is not None else sys.argv,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "timings": result.timings,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "packages": _versions(),
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _place(source: Path, target: Path, copy: bool) -> None:
    """A streamed file into the staging directory: moved (any filesystem), or copied when it
    already belongs to a run directory written before."""
    if copy:
        shutil.copyfile(source, target)
    else:
        shutil.move(source, target)


#: The files a manifest records checksums of (and ``run_problem`` checks). A run directory
#: from a gcsim before ``schemes.parquet`` fails the check ("missing schemes.parquet"), so a
#: resumed sweep recomputes such a point rather than combining a point without its table.
CHECKED_FILES = ("config.yaml", "summary.parquet", "events.parquet", "schemes.parquet")
#: A training run's rows (``schema.TRAINING``), checked like the others when the manifest
#: lists it.
TRAINING_FILE = "training.parquet"


def config_hash(exp: Experiment) -> str:
    """Fingerprint of the resolved config: two runs with the same one give the same results."""
    canonical = json.dumps(exp.resolved(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_problem(path: Path, expected_config: str | None = None) -> str | None:
    """Why the run directory at ``path`` cannot be trusted, or None if it is whole.

    Checks that the manifest parses and every file matches the checksum recorded when the run
    finished (a truncated or edited file fails), and optionally that the run is of the expected
    config.
    """
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        files = manifest["files"]
        for name in dict.fromkeys([*CHECKED_FILES, *files]):
            if file_hash(path / name) != files[name]:
                return f"{name} does not match its checksum"
    except FileNotFoundError as exc:
        return f"missing {Path(exc.filename).name}"
    except (ValueError, KeyError, TypeError) as exc:
        return f"unreadable manifest ({exc})"
    if expected_config is not None and manifest.get("config_sha256") != expected_config:
        return "made with a different config"
    return None


def _versions() -> dict[str, str]:
    import numpy
    import pydantic
    import scipy
    import simpy

    return {
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
        "simpy": simpy.__version__,
        "pydantic": pydantic.__version__,
    }
