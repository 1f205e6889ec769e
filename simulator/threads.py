"""One BLAS thread while simulating.

Every matrix gcsim factors is small (at most m x m per trial), and parallelism comes from
``--jobs`` and Dask, one process per core. OpenBLAS's own threads then only contend: on a busy
2-core machine a 200 x 191 lstsq took 730 ms with the default threads against 3.5 ms with one.
A single thread also makes the floating-point results independent of the machine's core count.
The count is set through the loaded OpenBLAS library (``ctypes``), so it works after NumPy was
imported, and is restored afterwards. Set ``GCSIM_BLAS_THREADS`` to keep more.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from collections.abc import Iterator
from pathlib import Path


def _blas_libraries() -> list[tuple[ctypes.CDLL, str]]:
    """Loaded OpenBLAS libraries (NumPy's, SciPy's once imported) and their thread-count
    function pattern. The memory map is read on every call: SciPy may load its copy later."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    return [found for path in paths if (found := _thread_functions(path)) is not None]


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
