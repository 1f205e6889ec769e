"""Executors: one ``concurrent.futures`` interface for a local process pool and Dask.

Sweeps (points) and large single runs (trial blocks) are both submitted through
``open_executor``; Dask's client offers the same executor interface, so there is one code path,
and results never depend on which executor ran them.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import re
import socket
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


_ADDRESS = re.compile(
    r"^(?:(?P<scheme>tcp|tls|ucx|ws|wss)://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)"
    r":(?P<port>\d{1,5})/?$"
)


def check_dask_address(address: str, key: str = "--dask") -> None:
    """Refuse, before anything is created, a ``--dask`` value (or ``$DASK_SCHEDULER_ADDRESS``)
    that is neither ``local`` nor a scheduler address ``[tcp|tls|ucx|ws|wss://]HOST:PORT``, and
    a TCP address where nothing listens (refused at once, instead of Dask's 10 s of retries)."""
    if address == "local":
        return
    match = _ADDRESS.match(address)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise cfg.ConfigError(
            [(key, f"{address!r} is not 'local' nor a scheduler address like tcp://HOST:8786")]
        )
    if match["scheme"] in (None, "tcp"):
        host = match["host"].strip("[]")
        try:
            socket.create_connection((host, int(match["port"])), timeout=5).close()
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise cfg.ConfigError(
                [(key, f"cannot reach a scheduler at {address}: {why}; start one "
                  "(dask scheduler) or check the address")]
            ) from None  # fmt: skip
