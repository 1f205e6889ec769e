"""``gcsim emulate``: the config's trials played for real, on worker processes of a Dask cluster.

One long-lived worker process per simulated worker holds a Dask actor (``worker.EmulatedWorker``)
for the whole run; this process is the parameter server (``ps.ParameterServer``). Every trial
of every scheme uses the realization the simulator draws for it (``Cluster.draw``: the same
compute times, fail-stops and crash times) and the protocol's own ``Trial`` reactions, on both
sides: the workers call ``chunk_done``/``worker_receive``, the PS ``ps_receive``/``at_deadline``/
``worker_failed``, and decodes with ``result()``. What differs from the simulator is only what is
real: time (sleeping the drawn times x ``time_scale``, plus everything a real process adds),
the messages (pickled, on one TCP stream per worker: ``wire``) and the gradients: each worker
computes its own chunks' (a training run's model at the parameters the PS broadcasts per round,
else the config's), and the PS holds the true sum only to measure ``rel_error``. The result is a
``RunResult`` whose times are measured and divided by the time scale, so a run directory of a
simulation and of its emulation compare trial by trial (``gcsim compare``).

Worker processes end with the emulation: on success, on an error, and on an interrupt (the
LocalCluster's processes are killed, as ``executors`` does for a failing run).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import time
from collections.abc import Callable, Iterator

import pandas as pd

from ..cluster import Cluster
from ..coding.registry import build
from ..config import ConfigError, Experiment
from ..engine.numbers import source_of
from ..iterations import events_as_trials, summary_as_trials
from ..runner import RunResult, _frame
from ..schema import ENGINE_EVENT_COLUMNS, ENGINE_SUMMARY_COLUMNS
from ..tuning import simulating
from .ps import EmulationError, Link, ParameterServer
from .wire import reachable_host
from .worker import EmulatedWorker

__all__ = ["EmulationError", "emulate", "emulation_problems", "write_real_run"]

#: Pings per worker to estimate its clock offset (the fastest round trip is kept).
PINGS = 5


def emulation_problems(exp: Experiment, time_scale: float) -> list[tuple[str, str]]:
    """What keeps ``exp`` from being emulated on this machine, one (key, fix) each."""
    problems = []
    if time_scale < 0:
        problems.append(("--time-scale", "must be >= 0 (seconds per simulated time unit)"))
    if exp.cluster.network.ps_ingress == "shared":
        problems.append(("cluster.network.ps_ingress", "'shared' is a simulated link; a real "
                         "run has its own network: use 'parallel'"))  # fmt: skip
    if exp.cluster.workers > 256:
        problems.append(("cluster.workers", f"{exp.cluster.workers} worker processes is more "
                         "than an emulation runs usefully; use at most 256"))  # fmt: skip
    return problems


def emulate(
    exp: Experiment,
    dask: str = "local",
    time_scale: float = 1.0,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """Play every trial of every scheme of ``exp`` on real worker processes. ``dask``: 'local'
    (a LocalCluster of one process per worker) or a scheduler address with at least
    ``cluster.workers`` workers. Times in the result are seconds / ``time_scale`` (seconds
    when it is 0: nothing injected, the machines' own speeds)."""
    problems = emulation_problems(exp, time_scale)
    if problems:
        raise ConfigError(problems)
    with simulating():  # one BLAS thread (idle OpenBLAS threads spin), a lazy collector
        return _emulate(exp, dask, time_scale, progress)


def _emulate(exp, dask, time_scale, progress) -> RunResult:
    started = time.perf_counter()
    protocols = build(exp)  # planned as the simulator plans (one BLAS thread: same codes)
    cluster_draws = Cluster(exp, steps=max(p.steps for p in protocols))
    rows, traces = [], []
    with _workers(exp, protocols, dask) as (client, links, description):
        host = reachable_host(client.scheduler.address)
        failures = exp.cluster.failures
        ps = ParameterServer(client, links, time_scale, failures.detect_timeout, host,
                             exp.data.tolerance)  # fmt: skip
        try:
            setup = time.perf_counter() - started
            realization = None
            source = source_of(exp)  # the config's gradients, or a training run's model
            training = exp.training is not None
            iterations = exp.iterations
            rounds = exp.trials * iterations  # a trial of N iterations is N rounds
            for round_ in range(rounds):
                if realization is None or round_ >= realization.first + realization.trials:
                    realization = cluster_draws.draw(round_, min(256, rounds - round_))
                draw = realization.trial(round_)
                for index, protocol in enumerate(protocols):
                    grads, truth = source.get(round_, protocol)
                    # A training run's workers compute the model's gradients at the scheme's
                    # current parameters, which the PS broadcasts (not counted as a message).
                    theta = source.parameters(round_, protocol) if training else None
                    row, trace = ps.play(index, protocol, draw, grads, truth, theta)
                    # Every engine column, or the frame below fills it with NaN (True as bool)
                    missing = ENGINE_SUMMARY_COLUMNS.keys() - row.keys()
                    assert not missing, f"the PS's row lacks {sorted(missing)}"
                    source.done(round_, protocol, row.pop("estimate"), row["completion_time"])
                    rows.append(row)
                    traces.extend((protocol.label, round_, *event) for event in trace)
                if progress is not None and (round_ + 1) % iterations == 0:
                    progress(1)
        finally:
            ps.close()
    elapsed = time.perf_counter() - started
    engine_rows = pd.DataFrame(rows, columns=list(ENGINE_SUMMARY_COLUMNS))
    summary = summary_as_trials(engine_rows.astype(ENGINE_SUMMARY_COLUMNS), iterations,
                                len(protocols))  # fmt: skip
    result = RunResult(exp, summary, events_as_trials(_frame(traces, ENGINE_EVENT_COLUMNS),
                                                      iterations))  # fmt: skip
    if exp.training is not None:
        result.training = source.frame()
    result.timings = {
        "emulate_seconds": elapsed,
        "setup_seconds": setup,
        "trials_per_second": exp.trials / elapsed,
        "time_scale": time_scale,
        "late_starts": ps.late_starts,
    }
    result.engine = "real"
    result.engines = {p.label: "real" for p in protocols}
    result.executor = f"emulation on {description}, time scale {time_scale:g}"
    return result


@contextlib.contextmanager
def _workers(exp: Experiment, protocols, dask: str) -> Iterator[tuple[object, list[Link], str]]:
    """One actor per simulated worker, each on a worker process of its own, with its clock
    offset; the processes (a LocalCluster's) end however the block is left."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        why = "its worker processes are Dask's, and Dask is not installed: pip install -e '.[dask]'"
        raise ConfigError([("emulate", why)]) from None
    from ..executors import _silenced, _stop_local_cluster

    # direct_to_workers: actor calls go straight to the worker; by default (None) Dask routes
    # them through the scheduler, one more process and hop for every message (measured: 18 ms
    # median per partial_gc download on a loaded 2-core machine).
    m = exp.cluster.workers
    known = set(multiprocessing.active_children())
    cluster = client = None
    try:
        if dask == "local":
            with _silenced("distributed"):
                cluster = LocalCluster(
                    n_workers=m, threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=None, memory_limit=0,
                )  # fmt: skip
                # A client of its own (its own event-loop thread), not Client(cluster): that
                # one shares the loop of the scheduler and the m nannies, which would then
                # delay every message the PS handles.
                client = Client(cluster.scheduler_address, direct_to_workers=True)
            description = f"Dask LocalCluster, {m} worker processes"
        else:
            try:
                client = Client(dask, timeout="10s", direct_to_workers=True)
            except OSError as exc:
                raise ConfigError([("--dask", f"cannot reach scheduler {dask}: {exc}")]) from None
            description = f"Dask scheduler {dask}"
        addresses = sorted(client.scheduler_info(n_workers=-1)["workers"])
        if len(addresses) < m:
            raise ConfigError([("--dask", f"the cluster has {len(addresses)} workers; the "
                                f"config needs one per simulated worker ({m})")])  # fmt: skip
        futures = [
            client.submit(
                EmulatedWorker,
                w,
                protocols,
                exp,
                actor=True,
                workers=[addresses[w]],
                allow_other_workers=False,
                pure=False,
            )  # fmt: skip
            for w in range(m)
        ]
        links = [Link(future.result(), _offset(future.result())) for future in futures]
        yield client, links, description
    except BaseException:
        with _silenced("distributed"):
            if cluster is not None:
                _stop_local_cluster(cluster, known)
            for each in (client, cluster):
                if each is not None:
                    with contextlib.suppress(Exception):
                        each.close()
        raise
    with _silenced("distributed"):
        client.close()
        if cluster is not None:
            cluster.close()


def _offset(actor) -> float:
    """The worker's clock minus ours: 0 on this host (one clock for every process), else from
    the ping with the shortest round trip (a ping's error is up to half its round trip, which
    under load is milliseconds: too much to estimate what is known to be zero)."""
    best = None
    for _ in range(PINGS):
        sent = time.time()
        theirs, host = actor.ping().result()
        back = time.time()
        if host == socket.gethostname():
            return 0.0
        if best is None or back - sent < best[0]:
            best = (back - sent, theirs - (sent + back) / 2)
    return best[1]


def write_real_run(result: RunResult, out, argv: list[str], force: bool = False):
    """The run directory of an emulation: ``results.write_run``'s layout, its manifest marked
    ``real`` with the time scale (the manifest is not among the checksummed files, so adding
    to it keeps ``run_problem`` satisfied)."""
    import json
    import os
    from pathlib import Path

    from ..results import write_run

    path = write_run(result, Path(out), argv=argv, force=force)
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["real"] = True
    manifest["time_scale"] = result.timings.get("time_scale")
    manifest["emulation"] = {"executor": result.executor, "times": "measured seconds / "
                             "time_scale (seconds when 0)", "events": "every trial"}  # fmt: skip
    staged = manifest_path.with_name(".manifest.json.tmp")
    staged.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    os.replace(staged, manifest_path)
    return path
