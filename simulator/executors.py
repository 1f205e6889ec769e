"""Executors: one ``concurrent.futures`` interface for a local process pool and Dask.

Sweeps (points) and large single runs (trial blocks) are both submitted through
``open_executor``; Dask's client offers the same executor interface, so there is one code path,
and results never depend on which executor ran them.

Nothing outlives the process that opened the executor. A worker of the local pool exits by
itself as soon as its parent is gone, however the parent died (SIGKILL included): an orphaned
worker would otherwise hold its 200+ MB and go on with a killed sweep's remaining points. And an
exception that leaves the ``with`` block (an error, KeyboardInterrupt, the CLI's SIGTERM) cancels
the queued work and terminates the workers at once instead of waiting for everything submitted.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator

from . import config as cfg

#: How long terminated workers get to exit before they are killed (SIGTERM is not caught in a
#: worker, so they normally go at once; this bounds a worker stuck in uninterruptible I/O).
STOP_GRACE_SECONDS = 1.0

#: How often a worker re-checks its parent besides waiting on the parent's pipe (a backstop for
#: a pipe some other process also holds open, e.g. a fork of the parent).
PARENT_POLL_SECONDS = 0.5

#: prctl(2) option: the signal a process gets when the thread that created it exits.
_PR_SET_PDEATHSIG = 1


@contextlib.contextmanager
def open_executor(jobs: int, dask: str | None) -> Iterator[tuple[cf.Executor, str]]:
    """A concurrent.futures executor and a description of it.

    ``dask``: None for a local process pool of ``jobs`` workers; "local" for a Dask
    LocalCluster of ``jobs`` single-threaded worker processes on loopback; else a scheduler
    address. Dask's client offers the same executor interface, so the sweep loop is one code path.

    Leaving the block by an exception stops the work at once (``_stop_pool`` for the local
    pool); leaving it normally waits for what was submitted, as ``shutdown(wait=True)`` does.
    """
    if dask is None:
        with _process_pool(jobs) as pool:
            yield pool, f"local process pool, {jobs} jobs"
        return
    try:
        from distributed import Client
    except ImportError:
        raise cfg.ConfigError(
            [("--dask", "Dask is not installed: pip install -e '.[dask]'")]
        ) from None
    if dask == "local":
        with _local_cluster(jobs) as executor:
            yield executor, f"Dask LocalCluster, {jobs} workers"
        return
    try:
        client = Client(dask, timeout="10s")
    except OSError as exc:
        raise cfg.ConfigError([("--dask", f"cannot reach scheduler {dask}: {exc}")]) from None
    with client:
        workers = len(client.scheduler_info().get("workers", {}))
        yield client.get_executor(), f"Dask scheduler {dask}, {workers} workers"


@contextlib.contextmanager
def _process_pool(jobs: int) -> Iterator[cf.ProcessPoolExecutor]:
    """A spawn-context process pool whose workers cannot outlive this process.

    Every worker is started here, from this thread, before the caller submits anything: the
    pool spawns a worker from inside ``submit`` (spawn context, Python 3.11-3.14), so the
    ``jobs`` trivial tasks below start them all, and this thread stays in the ``with`` block
    until they are stopped. That is what makes ``PR_SET_PDEATHSIG`` in the workers safe: the
    kernel sends it when the *thread* that created the process exits, not the process.
    """
    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    pool = cf.ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_worker_init, initargs=(os.getpid(),)
    )
    try:
        with _sigint_blocked_in_children():
            for _ in range(jobs):
                pool.submit(_ready)
        yield pool
        pool.shutdown(wait=True)
    except BaseException:
        _stop_pool(pool)
        raise


@contextlib.contextmanager
def _local_cluster(jobs: int) -> Iterator[cf.Executor]:
    """A Dask LocalCluster's executor. An exception, while it starts or while it runs, ends
    its worker processes at once (``_stop_local_cluster``) before the cluster is closed:
    closing alone asks each worker to finish its task and kills it only after 4 s, and waits
    for workers still starting."""
    from distributed import Client, LocalCluster

    known = set(multiprocessing.active_children())
    cluster = client = None
    try:
        cluster = LocalCluster(
            n_workers=jobs, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None,
        )  # fmt: skip
        client = Client(cluster)
        yield client.get_executor()
    except BaseException:
        with _silenced("distributed"):  # connections it reports closed: ours to close
            _stop_local_cluster(cluster, known)
            for each in (client, cluster):
                if each is not None:
                    each.close()
        raise
    try:
        client.close()
    finally:
        cluster.close()


def _ready() -> None:
    """The task that starts a worker (see ``_process_pool``)."""


@contextlib.contextmanager
def _sigint_blocked_in_children() -> Iterator[None]:
    """Start processes meanwhile with SIGINT blocked; ``_worker_init`` then ignores it.

    Ctrl-C in a terminal signals the whole foreground process group, the pool's workers too.
    Their parent decides what an interrupt means (it stops them); a worker that took the
    signal itself would print a KeyboardInterrupt traceback, the more likely as a worker spends
    its first seconds importing. A new process inherits the signal mask of the thread that
    started it, so blocking SIGINT in this thread while the workers are spawned (a few
    milliseconds each) holds any Ctrl-C pending in them until ``_worker_init`` discards it
    (the resource tracker of ``multiprocessing`` starts the same way). This process loses
    nothing: a SIGINT for it is taken by another thread, or waits for this one.
    """
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks, no such groups
        yield
        return
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _worker_init(parent_pid: int) -> None:
    """Runs first in every pool worker: ignore SIGINT (the parent handles interrupts) and exit
    as soon as the parent process is gone. It runs once the worker has imported what the
    pool's call needs (this package: a second, several under load), so a worker whose parent
    dies before then lives until then, and exits here."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # discards one that came while blocked
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if sys.platform.startswith("linux"):
        # The kernel kills this worker when its parent dies, even one stuck in C code that
        # holds the GIL and so would starve the watchdog thread below.
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    parent = multiprocessing.parent_process()
    if parent is None or os.getppid() != parent_pid:  # died before the prctl took hold
        os._exit(1)
    watchdog = threading.Thread(
        target=_exit_with_parent, args=(parent, parent_pid), name="gcsim-parent-watch", daemon=True
    )
    watchdog.start()


def _exit_with_parent(parent: multiprocessing.process.BaseProcess, parent_pid: int) -> None:
    """Wait for the parent to go, then end this worker at once, abandoning its task.

    ``parent.join`` waits on the pipe whose other end only the parent holds: the kernel closes
    it when the parent dies, whatever killed it. ``os._exit`` runs no cleanup: a sweep point's
    half-written files are hidden and the next run of the sweep removes them."""
    while parent.is_alive() and os.getppid() == parent_pid:
        parent.join(PARENT_POLL_SECONDS)
    os._exit(1)


def _stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel every queued task and end the workers now: SIGTERM, then SIGKILL for any still
    there after ``STOP_GRACE_SECONDS``. What a worker was computing is lost; a caller that
    gets here is abandoning the work anyway.

    Then the pool's own thread, which notices the dead workers and closes the pool's pipes,
    is given time to finish: left running, it could close a pipe just as the interpreter's
    exit hook writes to it (Python 3.11: "OSError: Bad file descriptor" at exit)."""
    # The pool forgets its processes and thread on shutdown: take them first (Python 3.14's
    # terminate_workers does the same).
    workers = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    _end_processes(workers)
    if manager is not None:
        manager.join(STOP_GRACE_SECONDS)


def _stop_local_cluster(cluster, known: set[multiprocessing.process.BaseProcess]) -> None:
    """End a Dask LocalCluster's worker processes now; its nannies are told not to restart
    them. ``cluster``: None if it was still being made. ``known``: this process's children
    before the cluster started (its workers are those started since, by its own thread)."""
    for nanny in list(getattr(cluster, "workers", {}).values()):
        with contextlib.suppress(AttributeError):
            nanny.close_gracefully()
    _end_processes([p for p in multiprocessing.active_children() if p not in known])


@contextlib.contextmanager
def _silenced(name: str) -> Iterator[None]:
    """No log records of logger ``name`` meanwhile."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _end_processes(workers: list[multiprocessing.process.BaseProcess]) -> None:
    """SIGTERM each of ``workers``, then SIGKILL those still there after
    ``STOP_GRACE_SECONDS``. Liveness is read from each process's sentinel, not from
    ``is_alive``, so another thread reaping the processes meanwhile (the pool's own) does not
    matter."""
    for worker in workers:
        with contextlib.suppress(OSError, ValueError):
            worker.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    running = {worker.sentinel: worker for worker in workers}
    while running:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for sentinel in multiprocessing.connection.wait(list(running), timeout=left):
            del running[sentinel]
    for worker in running.values():
        with contextlib.suppress(OSError, ValueError):
            worker.kill()


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
