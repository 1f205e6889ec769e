"""Executors: one ``concurrent.futures`` interface for a local process pool and Dask.

Sweeps (points) and large single runs (trial blocks) are both submitted through
``open_executor``; Dask's client offers the same executor interface, so there is one code path,
and results never depend on which executor ran them.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
from collections.abc import Iterator

from . import config as cfg


@contextlib.contextmanager
def open_executor(jobs: int, dask: str | None) -> Iterator[tuple[cf.Executor, str]]:
    """A concurrent.futures executor and a description of it.

    ``dask``: None for a local process pool of ``jobs`` workers; "local" for a Dask
    LocalCluster of ``jobs`` single-threaded worker processes on loopback; else a scheduler
    address. Dask's client offers the same executor interface, so the sweep loop is one code path.
    """
    if dask is None:
        context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            yield pool, f"local process pool, {jobs} jobs"
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise cfg.ConfigError(
            [("--dask", "Dask is not installed: pip install -e '.[dask]'")]
        ) from None
    if dask == "local":
        cluster = LocalCluster(
            n_workers=jobs, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None,
        )  # fmt: skip
        with cluster, Client(cluster) as client:
            yield client.get_executor(), f"Dask LocalCluster, {jobs} workers"
        return
    try:
        client = Client(dask, timeout="10s")
    except OSError as exc:
        raise cfg.ConfigError([("--dask", f"cannot reach scheduler {dask}: {exc}")]) from None
    with client:
        workers = len(client.scheduler_info().get("workers", {}))
        yield client.get_executor(), f"Dask scheduler {dask}, {workers} workers"
