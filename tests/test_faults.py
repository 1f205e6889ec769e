"""Fault injection: runs and sweeps killed or interrupted at random instants.

Each case starts ``python -m simulator run|sweep ... --jobs 2`` in a session of its own and, at
a seeded random instant, sends SIGKILL or SIGTERM to that process alone (``kill PID``: its pool
workers get nothing) or SIGINT to its whole process group (Ctrl-C in a terminal). Then:

(a) no process of its tree survives: every process of the session, recorded just before the
    signal, and any started since, is gone within ``GRACE_SECONDS`` (a bound for hangs, not a
    timing claim: a worker still importing when its parent dies exits once it can act);
(b) nothing is half-written: a run or point directory is whole (every file matches the
    checksum in its manifest) or absent; an interrupted (not killed) command exits with
    128 + the signal and one line on stderr, and leaves no hidden scratch file; a sweep
    finishes no more than the points it was running when interrupted;
(c) the same command again gives the bytes of an uninterrupted run (a sweep resumes).

The kills of one test form a chain on one output directory, so each restart also recovers from
the kill before it. The default chains (three signals each) keep the file under a minute on
two idle cores; longer ones are marked slow.
"""

from __future__ import annotations

import json
import multiprocessing.connection
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from simulator.results import run_problem

ROOT = Path(__file__).resolve().parents[1]
JOBS = 2
GRACE_SECONDS = 30.0
#: The most a command may take (any longer is a hang).
TIMEOUT_SECONDS = 180.0

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists() or not hasattr(os, "killpg"),
    reason="needs Linux /proc and process groups",
)

KILL, TERM, INT = signal.SIGKILL, signal.SIGTERM, signal.SIGINT
#: Per seed: the (signal, to the whole process group) one chain sends, in order. Each chain
#: ends with a SIGKILL, so that the final rerun recovers from one.
CHAINS = {
    0: [(INT, True), (TERM, False), (KILL, False)],
    1: [(TERM, False), (INT, False), (KILL, False), (INT, True), (TERM, False), (KILL, False)],
    2: [(KILL, False), (INT, True), (KILL, False), (TERM, False), (INT, False), (KILL, False)],
}
SEEDS = [0, *(pytest.param(seed, marks=pytest.mark.slow) for seed in (1, 2))]

CONFIG = {
    "name": "faults",
    "seed": 16,
    "trials": 1000,
    "engine": "des",
    "cluster": {
        "workers": 8,
        "compute": {"dist": "shifted_exponential", "shift": 1.0, "rate": 1.0, "per": "worker"},
        "failures": {"prob": 0.05},
    },
    "data": {"dim": 8, "gradients": "gaussian"},
    "output": {"events_trials": 2},
    "schemes": [
        {"protocol": "uncoded"},
        {"protocol": "original_gc", "load": 3, "ell": 1},
        {"protocol": "partial_gc", "load": 3, "ell": 2, "mode": "approximate", "deadline": 2.0},
    ],
}
SWEEP_ARGS = ["--set", "trials=100", "--grid", "cluster.workers=6,8,10,12",
              "--grid", "schemes.1.load=2,3"]  # fmt: skip


# --------------------------------------------------------------------------------------------
# Processes, from /proc


def _processes() -> dict[int, tuple[int, int, int]]:
    """Every live process: pid -> (parent pid, session id, start time). Zombies are left out:
    they hold no memory and their parent (init) reaps them."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            text = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            found[int(name)] = (int(fields[1]), int(fields[3]), int(fields[19]))
    return found


def _tree(root: int) -> set[tuple[int, int]]:
    """(pid, start time) of every process of ``root``'s session and every descendant of
    ``root`` by parent links, ``root`` excepted. The start time tells a reused pid apart."""
    processes = _processes()
    members = {pid for pid, (_, session, _) in processes.items() if session == root}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, _) in processes.items():
            if ppid == parent and pid not in members:
                members.add(pid)
                frontier.append(pid)
    members.discard(root)
    return {(pid, processes[pid][2]) for pid in members}


def _survivors(recorded: set[tuple[int, int]], root: int) -> set[tuple[int, int]]:
    """Those of ``recorded`` still alive, and any process of ``root``'s session."""
    processes = _processes()
    alive = {(pid, start) for pid, (_, _, start) in processes.items()}
    return (alive & recorded) | {(p, s[2]) for p, s in processes.items() if s[1] == root}


def _wait_gone(recorded: set[tuple[int, int]], root: int) -> set[tuple[int, int]]:
    deadline = time.monotonic() + GRACE_SECONDS
    left = _survivors(recorded, root)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = _survivors(recorded, root)
    return left


def _ready(pid: int) -> bool:
    """Whether a signal now reaches gcsim's own handling: its ``main`` catches SIGTERM (a
    signal during its first imports gets Python's defaults), or it has started processes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:") and int(line.split()[1], 16) >> (TERM - 1) & 1:
                return True
    except OSError:
        return False
    return _has_children(pid)


def _has_children(pid: int) -> bool:
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            if children.read_text().split():
                return True
        except OSError:
            continue
    return False


@pytest.fixture
def sessions() -> Iterator[list[int]]:
    """Sessions started by a test: whatever of them is left when it ends is killed, so that a
    failing test leaks nothing into the rest of the suite."""
    started: list[int] = []
    yield started
    for root in started:
        for pid, _ in _survivors(set(), root):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --------------------------------------------------------------------------------------------
# Running gcsim


def _gcsim(args: list[str], log: Path, sessions: list[int]) -> subprocess.Popen:
    """``python -m simulator ARGS`` from the repository root (this checkout is imported) in a
    session of its own; stdout and stderr go to files, not pipes, which an orphaned worker
    would keep open."""
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "simulator", *args],
            cwd=ROOT,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=dict(os.environ, COLUMNS="200", NO_COLOR="1"),
        )
    sessions.append(process.pid)
    return process


@dataclass
class Timing:
    """An uninterrupted command's milestones, in seconds from its start."""

    ready: float  # a signal reaches gcsim's handling (``_ready``)
    pool: float  # its first child process started
    ended: float

    def instant(self, rng: random.Random, signum: int, left: float = 1.0) -> float:
        """A random instant to send ``signum`` at: SIGINT and SIGTERM once the command can
        handle them, SIGKILL once it has workers to leave behind (before that it leaves
        nothing). ``left``: the fraction of its work still to do (a resumed sweep); 0.8: the
        uninterrupted run may have been the faster one."""
        start = self.pool if signum == KILL else self.ready
        return start + rng.uniform(0.0, 0.8 * (self.ended - start) * left)


def _whole(args: list[str], log: Path, sessions: list[int]) -> Timing:
    """Run to the end; return its ``Timing`` (where the random instants are drawn from)."""
    started = time.monotonic()
    process = _gcsim(args, log, sessions)
    ready = pool = None
    while process.poll() is None and time.monotonic() - started < TIMEOUT_SECONDS:
        now = time.monotonic() - started
        if ready is None and _ready(process.pid):
            ready = now
        if pool is None and _has_children(process.pid):
            pool = now
        time.sleep(0.01)
    assert process.wait(TIMEOUT_SECONDS) == 0, log.read_text()
    ended = time.monotonic() - started
    return Timing(ended if ready is None else ready, ended if pool is None else pool, ended)


@dataclass
class Outcome:
    returncode: int
    stderr: str
    signalled: bool  # False: it ended before the instant came
    pids: set[int]  # the process and its tree when signalled
    before: int  # finished sweep points just before the signal


def _interrupt(
    args: list[str],
    signum: int,
    group: bool,
    instant: float,
    log: Path,
    sessions: list[int],
    count: Callable[[], int] = lambda: 0,
) -> Outcome:
    """Start gcsim, signal it ``instant`` seconds later (SIGINT and SIGTERM not before it is
    ``_ready``), wait for it to end, and check (a)."""
    process = _gcsim(args, log, sessions)
    started = time.monotonic()
    while process.poll() is None and time.monotonic() - started < TIMEOUT_SECONDS:
        if time.monotonic() - started >= instant and (signum == KILL or _ready(process.pid)):
            break
        time.sleep(0.01)
    recorded = _tree(process.pid)
    before = count()
    signalled = process.poll() is None
    if signalled:
        (os.killpg if group else os.kill)(process.pid, signum)
    signalled_at = time.monotonic()
    returncode = process.wait(TIMEOUT_SECONDS)
    exited_at = time.monotonic()
    left = _wait_gone(recorded, process.pid)
    print(  # shown with -s: which phase each instant hit, and how long each stop took
        f"{' '.join(args[:1])} {signal.Signals(signum).name}{' (group)' if group else ''} "
        f"at {signalled_at - started:.2f} s (drawn {instant:.2f} s): status {returncode}, "
        f"exit after {exited_at - signalled_at:.2f} s, tree gone after "
        f"{time.monotonic() - signalled_at:.2f} s, {len(recorded)} processes, "
        f"{before} points done before"
    )
    assert not left, f"{signal.Signals(signum).name}: processes left running: {sorted(left)}"
    pids = {process.pid} | {pid for pid, _ in recorded}
    return Outcome(returncode, log.read_text(errors="replace"), signalled, pids, before)


def _check_exit(outcome: Outcome, signum: int, complete: bool) -> None:
    """(b) for the process itself: status and stderr. ``complete``: its whole output is
    there (the signal came after its work: exiting, it ignores SIGINT and SIGTERM, and in
    Python's last moments the defaults are back, so the signal may still end it)."""
    assert "Traceback" not in outcome.stderr, outcome.stderr
    if complete and outcome.returncode in (0, -signum):
        return
    assert outcome.signalled, outcome.stderr  # it ended by itself, so it must have finished
    if signum == KILL:
        assert outcome.returncode == -KILL
        return
    name = signal.Signals(signum).name
    assert outcome.returncode == 128 + signum, outcome.stderr
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and f"interrupted by {name}" in lines[0], outcome.stderr


#: A scratch name (``simulator.scratch``): ``.TARGET.KIND-HOST-PID``, then a random token in
#: later versions, then ``.parquet`` for streamed files.
_SCRATCH = re.compile(r"^\..+\.[a-z]+-[A-Za-z0-9_.]+-(?P<pid>\d+)(-[0-9a-f]+)?(\.parquet)?$")


def _scratch_of(directory: Path, pids: set[int]) -> list[str]:
    """Hidden files and directories that processes ``pids`` left in ``directory`` (their names
    carry the pid of the process that made them)."""
    if not directory.exists():
        return []
    return [
        entry.name
        for entry in directory.iterdir()
        if (found := _SCRATCH.match(entry.name)) is not None and int(found["pid"]) in pids
    ]


def _same_files(a: Path, b: Path) -> bool:
    return all(
        (a / name).read_bytes() == (b / name).read_bytes()
        for name in ("summary.parquet", "events.parquet")
    )


# --------------------------------------------------------------------------------------------
# The chains


@pytest.mark.parametrize("seed", SEEDS)
def test_runs_killed_at_random_instants_leave_nothing_and_rerun_the_same(tmp_path, sessions, seed):
    config = tmp_path / "faults.yaml"
    config.write_text(yaml.safe_dump(CONFIG, sort_keys=False), encoding="utf-8")
    base = ["run", str(config), "--jobs", str(JOBS), "-q", "--out"]
    whole = tmp_path / "whole"
    timing = _whole([*base, str(whole)], tmp_path / "whole.log", sessions)
    assert run_problem(whole) is None

    rng = random.Random(seed)
    target = tmp_path / "runs" / "killed"
    for attempt, (signum, group) in enumerate(CHAINS[seed]):
        log = tmp_path / f"attempt{attempt}.log"
        instant = timing.instant(rng, signum)
        outcome = _interrupt([*base, str(target)], signum, group, instant, log, sessions)
        _check_exit(outcome, signum, complete=target.exists())
        if signum != KILL or not outcome.signalled:
            assert not _scratch_of(target.parent, outcome.pids)
        if target.exists():  # it finished first: whole, and the bytes of the whole run
            assert run_problem(target) is None
            assert _same_files(target, whole)
            shutil.rmtree(target)

    _whole([*base, str(target)], tmp_path / "rerun.log", sessions)
    assert run_problem(target) is None
    assert _same_files(target, whole)
    # The scratch of killed runs was swept up by the runs after them.
    assert sorted(p.name for p in target.parent.iterdir()) == ["killed"]


@pytest.mark.parametrize("seed", SEEDS)
def test_sweeps_killed_at_random_instants_keep_whole_points_and_resume_the_same(
    tmp_path, sessions, seed
):
    config = tmp_path / "faults.yaml"
    config.write_text(yaml.safe_dump(CONFIG, sort_keys=False), encoding="utf-8")
    base = ["sweep", str(config), *SWEEP_ARGS, "--jobs", str(JOBS), "-q", "--out"]
    whole = tmp_path / "whole"
    timing = _whole([*base, str(whole)], tmp_path / "whole.log", sessions)
    expected = (whole / "summary.parquet").read_bytes()
    total = len(list((whole / "points").glob("p*")))

    out = tmp_path / "killed"
    points = out / "points"

    def finished() -> list[Path]:
        return sorted(p for p in points.glob("p*") if p.is_dir()) if points.exists() else []

    rng = random.Random(seed)
    for attempt, (signum, group) in enumerate(CHAINS[seed]):
        log = tmp_path / f"attempt{attempt}.log"
        instant = timing.instant(rng, signum, left=1 - len(finished()) / total)
        outcome = _interrupt([*base, str(out)], signum, group, instant, log, sessions,
                             count=lambda: len(finished()))  # fmt: skip
        _check_exit(outcome, signum, complete=(out / "summary.parquet").exists())
        for point in finished():
            assert run_problem(point) is None, point
        if (out / "summary.parquet").exists():  # written last, whole: the sweep was done
            assert (out / "summary.parquet").read_bytes() == expected
        if signum == KILL or outcome.returncode != 128 + signum:
            continue
        # Interrupted: the points it was running were abandoned, not finished, and nothing
        # queued started; sweep.json says which points are done, every other one pending.
        assert len(finished()) - outcome.before <= JOBS
        assert not _scratch_of(points, outcome.pids)
        if (out / "sweep.json").exists():
            spec = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
            status = {point["id"]: point["status"] for point in spec["points"]}
            done = {point for point, state in status.items() if state == "done"}
            assert done <= {point.name for point in finished()}
            assert set(status.values()) <= {"done", "pending"}

    _whole([*base, str(out)], tmp_path / "rerun.log", sessions)
    assert (out / "summary.parquet").read_bytes() == expected
    assert not [p.name for p in points.iterdir() if p.name.startswith(".")]
    status = json.loads((out / "sweep.json").read_text())["points"]
    assert {p["status"] for p in status} == {"done"}


@pytest.mark.slow
def test_a_dask_local_cluster_dies_with_its_parent(tmp_path, sessions):
    """SIGKILL and SIGTERM of a run on ``--dask local``: the cluster's worker processes go
    too (Dask's own watchdog; gcsim's handler ends them before closing the cluster)."""
    pytest.importorskip("distributed")
    config = tmp_path / "faults.yaml"
    config.write_text(yaml.safe_dump(CONFIG, sort_keys=False), encoding="utf-8")
    for signum in (KILL, TERM):
        log = tmp_path / f"{signum}.log"
        args = ["run", str(config), "--set", "trials=6000", "--dask", "local", "--jobs",
                str(JOBS), "-q", "--out", str(tmp_path / f"run{signum}")]  # fmt: skip
        process = _gcsim(args, log, sessions)
        # Signal once the cluster's workers run (two more processes than the tracker).
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while len(_tree(process.pid)) < JOBS + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        recorded = _tree(process.pid)
        assert len(recorded) >= JOBS, "the cluster never started"
        os.kill(process.pid, signum)
        assert process.wait(TIMEOUT_SECONDS) == (-KILL if signum == KILL else 128 + signum)
        assert not _wait_gone(recorded, process.pid)
        assert not (tmp_path / f"run{signum}").exists()


# --------------------------------------------------------------------------------------------
# The executor itself


def _mark_then_sleep(marker: Path) -> None:
    """A task that says it started, then runs for as long as it is let."""
    marker.touch()
    time.sleep(60)


def test_an_exception_in_the_executor_block_stops_the_pool_without_running_the_queue(tmp_path):
    """Leaving ``open_executor`` by an exception cancels what is queued and ends the workers
    instead of waiting for everything submitted (``shutdown(wait=True)``, before: a Ctrl-C
    of a sweep then ran all its remaining points)."""
    from simulator.executors import open_executor

    known = set(multiprocessing.active_children())
    markers = [tmp_path / f"queued{i}" for i in range(4)]
    with pytest.raises(RuntimeError, match="stop"):
        with open_executor(JOBS, None) as (executor, _):
            workers = [p for p in multiprocessing.active_children() if p not in known]
            started = [tmp_path / f"started{i}" for i in range(JOBS)]
            running = [executor.submit(_mark_then_sleep, marker) for marker in started]
            queued = [executor.submit(marker.touch) for marker in markers]
            deadline = time.monotonic() + TIMEOUT_SECONDS
            while not all(m.exists() for m in started) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert all(m.exists() for m in started), "the workers never took their tasks"
            raise RuntimeError("stop")
    assert len(workers) == JOBS  # all started up front
    # Gone (each one's sentinel is ready once it exited), their futures settled, and the
    # queued tasks never ran.
    sentinels = [worker.sentinel for worker in workers]
    assert len(multiprocessing.connection.wait(sentinels, timeout=GRACE_SECONDS)) == JOBS
    deadline = time.monotonic() + GRACE_SECONDS  # the pool's thread settles them
    while not all(future.done() for future in running + queued) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(future.done() for future in running + queued)
    assert not any(marker.exists() for marker in markers)


def test_a_run_whose_trials_are_all_traced_starts_no_executor(tmp_path):
    """The traced trials stream from this process: with nothing left for workers, no pool
    (nor Dask cluster) is started for nothing."""
    from simulator.config import from_dict
    from simulator.runner import run

    exp = from_dict({**CONFIG, "trials": 2})
    result = run(exp, jobs=JOBS, events_to=tmp_path / "events.parquet")
    assert result.executor == "in process"
    assert len(result.summary) == 2 * len(CONFIG["schemes"])
