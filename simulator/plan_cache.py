"""Plan once, reuse everywhere: an on-disk cache of deterministic plans (codes, layouts).

A plan is a pure function of its inputs (sizes, a random stream's state) and of the code that
computes it. Choosing original_gc's random code, for example, scores 16 candidates with SVDs and
takes seconds at m = 200; every sweep point, every rerun and every executor process would pay it
again. Here each plan is computed once per machine and then read back:

- **Key**: sha256 of the plan's kind, its inputs (canonical JSON; arrays by dtype, shape and
  bytes), a version string the caller bumps when the computation changes, the sha256 of the
  computing functions' source (so an edit invalidates what it computed even if nobody bumps the
  version) and NumPy's version (LAPACK's bits may differ between builds).
- **Where**: ``$GCSIM_CACHE_DIR``, else the platform's user cache directory (``~/.cache/gcsim``,
  ``$XDG_CACHE_HOME/gcsim``, ``~/Library/Caches/gcsim``, ``%LOCALAPPDATA%\\gcsim\\cache``).
  ``GCSIM_CACHE=off`` turns the disk cache off (the per-process memo stays: it holds nothing a
  rerun could be wrong about).
- **Never trusted without a checksum**: a file is a header line (magic, sha256 of the payload)
  then the payload, an ``.npy`` array (``np.save``; read with ``allow_pickle=False``). A file
  whose payload does not match its checksum, or does not parse, is ignored, recomputed and
  rewritten, and counted (``stats["corrupt"]``).
- **Safe under concurrent writers** (sweep points in several processes): a file is written to a
  temporary name in the same directory and moved into place with ``os.replace``, so a reader sees
  either no file or a whole one. Two processes computing the same plan write the same bytes.
- **Bounded**: after each write the directory is pruned to ``$GCSIM_CACHE_MAX_MB`` (default
  256 MB), least recently used first (a hit refreshes the file's mtime).
- **Only what is worth it**: a plan computed in under ``MIN_STORE_SECONDS`` is memoized but not
  written (reading it back would cost about as much).
- **A cache never fails a run**: any OS error on the disk path (read-only home, full disk) falls
  back to computing the plan, counted in ``stats["errors"]``.

The cached array is exactly the computed one (same dtype, shape and bytes), so results are
byte-identical with the cache on or off (``tests/test_plan_cache.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import os
import sys
import tempfile
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

#: First bytes of every cache file; the rest of the header line is the payload's sha256.
MAGIC = b"gcsim-plan-v1 "
SUFFIX = ".gcplan"
DEFAULT_MAX_BYTES = 256 * 2**20
#: Bytes of arrays the per-process memo keeps (least recently used dropped first).
MEMO_BYTES = 512 * 2**20
#: Temporary files older than this (seconds) are a crashed writer's and are removed on pruning.
STALE_TEMP_SECONDS = 3600.0
#: Plans computed faster than this (seconds) are only memoized, not written: hashing, writing and
#: pruning cost a few milliseconds, more than computing a small code (116 small polynomial
#: codes took 2.0 s of CPU without the cache and 3.0 s storing every one).
MIN_STORE_SECONDS = 0.05

#: What the cache did in this process: memo_hits, disk_hits, misses (computed), writes,
#: corrupt (a file failed its checksum or did not parse), errors (an OS error on the disk path),
#: pruned (files removed to keep the bound).
stats: Counter = Counter()

_memo: OrderedDict[str, np.ndarray] = OrderedDict()
_memo_bytes = 0
_OFF = {"off", "0", "false", "no", "disabled"}


def enabled() -> bool:
    """Whether the disk cache is used (``GCSIM_CACHE=off`` turns it off)."""
    return os.environ.get("GCSIM_CACHE", "on").strip().lower() not in _OFF


def cache_dir() -> Path:
    """The cache directory: ``$GCSIM_CACHE_DIR`` or the platform's user cache directory."""
    given = os.environ.get("GCSIM_CACHE_DIR")
    if given:
        return Path(given).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        return (Path(base) if base else Path.home() / "AppData" / "Local") / "gcsim" / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "gcsim"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "gcsim"


def max_bytes() -> int:
    """The size bound: ``$GCSIM_CACHE_MAX_MB`` megabytes (2**20 bytes), default 256."""
    given = os.environ.get("GCSIM_CACHE_MAX_MB")
    if not given:
        return DEFAULT_MAX_BYTES
    try:
        return max(0, int(float(given) * 2**20))
    except ValueError:
        return DEFAULT_MAX_BYTES


def clear_memo() -> None:
    """Forget the per-process memo (the disk cache stays): what a fresh process would see."""
    global _memo_bytes
    _memo.clear()
    _memo_bytes = 0


# --------------------------------------------------------------------------------------------
# Keys


def _canonical(value: Any) -> Any:
    """JSON-ready form of a plan input: arrays by dtype, shape and the sha256 of their bytes."""
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        digest = hashlib.sha256(data.tobytes()).hexdigest()
        return {"ndarray": [data.dtype.str, list(data.shape), digest]}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value).hex()
    if isinstance(value, float):
        return value.hex()  # exact, and no JSON float formatting questions
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise TypeError(f"plan cache: cannot key an input of type {type(value).__name__}")


_sources: dict[int, str] = {}


def _source_digest(functions: Iterable[Callable[..., Any]]) -> str:
    """sha256 of the functions' (or modules') source, each read once per process."""
    parts = []
    for fn in functions:
        text = _sources.get(id(fn))
        if text is None:
            try:
                text = inspect.getsource(fn)
            except (OSError, TypeError):  # no source (frozen app): the version string must do
                text = getattr(fn, "__qualname__", repr(fn))
            _sources[id(fn)] = text
        parts.append(text)
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def plan_key(
    kind: str,
    version: str,
    inputs: dict[str, Any],
    functions: Iterable[Callable[..., Any]] = (),
) -> str:
    """The cache key (hex sha256) of a plan: its kind, inputs, version and computing code."""
    text = json.dumps(
        {
            "kind": kind,
            "version": version,
            "inputs": _canonical(inputs),
            "source": _source_digest(functions),
            "numpy": np.__version__,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# Files


def _encode(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    payload = buffer.getvalue()
    return MAGIC + hashlib.sha256(payload).hexdigest().encode("ascii") + b"\n" + payload


def _decode(data: bytes) -> np.ndarray | None:
    """The array in a cache file's bytes, or None if they fail the checksum or do not parse."""
    head, newline, payload = data.partition(b"\n")
    if not newline or not head.startswith(MAGIC):
        return None
    if hashlib.sha256(payload).hexdigest().encode("ascii") != head[len(MAGIC) :]:
        return None
    try:
        return np.load(io.BytesIO(payload), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None


def _path(key: str, kind: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in kind)
    return cache_dir() / f"{safe}-{key}{SUFFIX}"


def _read(path: Path) -> np.ndarray | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    array = _decode(data)
    if array is None:
        stats["corrupt"] += 1
        return None
    try:
        os.utime(path)  # least recently used is pruned first
    except OSError:
        pass
    return array


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(_encode(array))
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    stats["writes"] += 1
    prune(path.parent)


def prune(directory: Path | None = None, limit: int | None = None) -> int:
    """Remove the least recently used cache files until the rest fit in ``limit`` bytes
    (default ``max_bytes()``), and crashed writers' temporary files; returns files removed.
    Files another process removes meanwhile are skipped."""
    directory = cache_dir() if directory is None else directory
    limit = max_bytes() if limit is None else limit
    entries = []
    removed = 0
    now = time.time()
    try:
        listing = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in listing:
        if not entry.name.endswith(SUFFIX):
            continue
        try:
            info = entry.stat()
        except FileNotFoundError:
            continue
        if entry.name.startswith(".tmp-"):
            if now - info.st_mtime > STALE_TEMP_SECONDS:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
            continue
        entries.append((info.st_mtime, info.st_size, entry.path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        with contextlib.suppress(OSError):
            os.unlink(path)
            removed += 1
        total -= size
    stats["pruned"] += removed
    return removed


# --------------------------------------------------------------------------------------------
# The cache


def _remember(key: str, array: np.ndarray) -> None:
    global _memo_bytes
    if array.nbytes > MEMO_BYTES:
        return
    _memo[key] = array
    _memo_bytes += array.nbytes
    while _memo_bytes > MEMO_BYTES:
        _, dropped = _memo.popitem(last=False)
        _memo_bytes -= dropped.nbytes


def cached_array(
    kind: str,
    version: str,
    inputs: dict[str, Any],
    compute: Callable[[], np.ndarray],
    functions: Iterable[Callable[..., Any]] = (),
) -> np.ndarray:
    """``compute()``, or the array it returned before for the same plan (see the module
    docstring). The result is read-only: it may be shared by every caller in the process.

    ``kind`` names the plan (also the file's prefix), ``version`` is bumped when the
    computation changes its output, ``inputs`` is everything the output depends on and
    ``functions`` the code computing it (its source is part of the key)."""
    key = plan_key(kind, version, inputs, functions)
    hit = _memo.get(key)
    if hit is not None:
        _memo.move_to_end(key)
        stats["memo_hits"] += 1
        return hit
    array: np.ndarray | None = None
    path = _path(key, kind) if enabled() else None
    if path is not None:
        try:
            array = _read(path)
        except OSError:
            stats["errors"] += 1
        if array is not None:
            stats["disk_hits"] += 1
    if array is None:
        started = time.perf_counter()
        array = np.asarray(compute())
        stats["misses"] += 1
        if path is not None and time.perf_counter() - started >= MIN_STORE_SECONDS:
            try:
                _write(path, array)
            except OSError:
                stats["errors"] += 1
    array.flags.writeable = False
    _remember(key, array)
    return array
