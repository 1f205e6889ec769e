"""Process settings while simulating: one BLAS thread and a lazier cycle collector.

BLAS. Every matrix gcsim factors is small (at most m x m per trial), and parallelism comes from
``--jobs`` and Dask, one process per core. OpenBLAS's own threads then only contend: on a busy
2-core machine a 200 x 191 lstsq took 730 ms with the default threads against 3.5 ms with one.
A single thread also makes the floating-point results independent of the machine's core count.
The count is set through the loaded OpenBLAS library (``ctypes``), so it works after NumPy was
imported, and is restored afterwards. Set ``GCSIM_BLAS_THREADS`` to keep more.

Garbage collector. The event engine creates no reference cycles (tests/test_des_engine.py), yet
Python's cycle collector runs every 700 net allocations and, every so often, walks every live
object: about 35% of an event-engine run at m = 1000 for nothing found. A first-generation
threshold of 50,000 while simulating gives the same speed as no collector at all, and cycles
made elsewhere are still collected, only later.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path


def _blas_libraries() -> list[tuple[ctypes.CDLL, str]]:
    """Loaded OpenBLAS libraries (NumPy's, SciPy's once imported) and their thread-count
    function pattern. Reading the memory map costs milliseconds, so it is read again only when
    modules were imported since (SciPy loads its own copy on import)."""
    global _scanned
    if _scanned is None or _scanned[0] != len(sys.modules):
        try:
            maps = Path("/proc/self/maps").read_text().splitlines()
        except OSError:
            maps = []
        paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
        found = [f for path in paths if (f := _thread_functions(path)) is not None]
        _scanned = (len(sys.modules), found)
    return _scanned[1]


_scanned: tuple[int, list[tuple[ctypes.CDLL, str]]] | None = None  # (modules then, libraries)


@functools.cache
def _thread_functions(path: str) -> tuple[ctypes.CDLL, str] | None:
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    for prefix in ("scipy_openblas", "openblas"):
        for suffix in ("64_", ""):
            if hasattr(lib, f"{prefix}_set_num_threads{suffix}") and hasattr(
                lib, f"{prefix}_get_num_threads{suffix}"
            ):
                return lib, f"{prefix}_%s_num_threads{suffix}"
    return None


@contextlib.contextmanager
def blas_threads(threads: int | None = None) -> Iterator[int | None]:
    """Run with ``threads`` OpenBLAS threads (default: ``GCSIM_BLAS_THREADS`` or 1), best
    effort; yields the previous count, None when no OpenBLAS was found."""
    if threads is None:
        threads = int(os.environ.get("GCSIM_BLAS_THREADS", "1"))
    libs = _blas_libraries()
    previous = []
    for lib, pattern in libs:
        previous.append(int(getattr(lib, pattern % "get")()))
        getattr(lib, pattern % "set")(ctypes.c_int(threads))
    try:
        yield previous[0] if previous else None
    finally:
        for (lib, pattern), count in zip(libs, previous, strict=True):
            getattr(lib, pattern % "set")(ctypes.c_int(count))


#: First-generation threshold of the cycle collector while simulating (Python's default: 700).
GC_THRESHOLD = 50_000

_lock = threading.Lock()
_active = 0  # simulations running in this process (threads of a test executor, Dask threads)
_restore: contextlib.ExitStack | None = None


@contextlib.contextmanager
def lazy_gc() -> Iterator[None]:
    """Raise the collector's first-generation threshold to ``GC_THRESHOLD`` meanwhile."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], GC_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


@contextlib.contextmanager
def simulating() -> Iterator[None]:
    """Both settings, as every run uses them (``runner.run_range`` and ``runner.run_trials``).
    Counted per process: the first simulation to start applies them, the last to end restores
    them, so simulations in concurrent threads cannot leave them changed."""
    global _active, _restore
    with _lock:
        if _active == 0:
            stack = contextlib.ExitStack()
            stack.enter_context(blas_threads())
            stack.enter_context(lazy_gc())
            _restore = stack
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _restore is not None:
                _restore.close()
                _restore = None
