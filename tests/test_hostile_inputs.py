"""Hostile inputs and faults through the real ``gcsim`` command (issue 16).

``test_hostile_input`` runs every case of the table in ``tests/hostile_cases.py`` (each in a
forked child with a memory limit and a timeout, two at a time) and checks that it ended the way
the case says is correct: almost always a clean error (exit 2, one short ``error:`` line per
problem, no traceback, nothing written), and ``ok`` with sane outputs for the valid edge cases.
``python experiments/reliability/count_outcomes.py`` prints the same table as counts.

The other tests are the faults a table cannot hold: the harness's own verdicts, two ``--force``
runs at once, a ``--force`` killed between its renames or at random instants, ``--jobs`` and
the bytes of a long run, and the processes a killed run or sweep leaves behind.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from . import hostile_cases as hc

BY_ID = {case.id: case for case in hc.CASES}


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest) -> dict[str, hc.Result]:
    """Run the selected cases of the table at once (two at a time), not one test at a time."""
    selected = [
        item.callspec.params["case_id"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_hostile_input" and hasattr(item, "callspec")
    ]
    results = hc.run_cases([BY_ID[case_id] for case_id in selected])
    return {result.case.id: result for result in results}


@pytest.mark.parametrize("case_id", list(BY_ID))
def test_hostile_input(case_id: str, outcomes: dict[str, hc.Result]) -> None:
    result = outcomes[case_id]
    stderr = "\n".join(result.stderr.splitlines()[-12:])
    assert result.as_expected, f"{result.describe()}\n--- stderr (end) ---\n{stderr}"


def test_the_table_covers_every_bullet_of_the_issue() -> None:
    """Each bullet of issue 16's "Why" has reproducers in the table (the rest are tests
    below: determinism, orphans, concurrent and killed --force)."""
    bullets = {case.bullet for case in hc.CASES}
    assert {"data loss", "confinement", "wrong results accepted", "unbounded",
            "tracebacks"} <= bullets  # fmt: skip
    assert len(hc.CASES) >= 200
    assert sum(hc.OK in case.expect for case in hc.CASES) >= 30  # valid edge cases too


# --------------------------------------------------------------------------------------------
# The harness itself: each verdict is reachable, and only by what it names


def _box(tmp_path: Path) -> hc.Sandbox:
    work = tmp_path / "root" / "a" / "b" / "c" / "work"
    work.mkdir(parents=True)
    (tmp_path / "mpl").mkdir()
    (work / "precious.txt").write_text("mine\n", encoding="utf-8")
    return hc.Sandbox(tmp_path, tmp_path / "root", work)


def _say_error() -> int:
    print("error: cluster.workers: must be at least 1, got 0", file=sys.stderr)
    return 2


def _raise() -> int:
    raise RuntimeError("boom")


def _sleep() -> int:
    time.sleep(60)
    return 0


def _segfault() -> int:
    os.kill(os.getpid(), signal.SIGSEGV)
    return 0


def _allocate() -> int:
    block = bytearray(4 << 30)
    return len(block) and 0


def _delete_precious() -> int:
    Path("precious.txt").unlink()
    return 0


def _error_but_write() -> int:
    Path("results").mkdir()
    return _say_error()


def _unlabelled_error() -> int:
    print("something went wrong", file=sys.stderr)
    return 2


def _exit_one() -> int:
    print("error: point p1 failed: ZeroDivisionError", file=sys.stderr)
    return 1


def _bad_summary() -> int:
    import pandas as pd

    run = Path("results/base/r1")
    run.mkdir(parents=True)
    rows = {column: [0] for column in hc.SUMMARY_BINDING}
    rows.update(scheme=["s"], protocol=["p"], completion_time=[float("inf")], decoded=[True],
                rel_error=[float("nan")], decode_cond=[1.0])  # fmt: skip
    pd.DataFrame(rows).to_parquet(run / "summary.parquet")
    return 0


def _outside() -> int:
    Path("../elsewhere.txt").write_text("x", encoding="utf-8")
    return 0


def _leave_a_process() -> int:
    if os.fork() == 0:
        time.sleep(30)
        os._exit(0)
    return 0


def _nothing() -> int:
    print("fine")
    return 0


@pytest.mark.parametrize(
    "work, expected",
    [
        (_say_error, hc.CLEAN),
        (_raise, hc.TRACEBACK),
        (_sleep, hc.HANG),
        (_segfault, hc.CRASH),
        (_allocate, hc.CRASH),
        (_delete_precious, hc.LOST),
        (_error_but_write, hc.MESSY),
        (_unlabelled_error, hc.MESSY),
        (_exit_one, hc.MESSY),
        (_bad_summary, hc.WRONG),
        (_outside, hc.WRONG),
        (_leave_a_process, hc.LEFT),
        (_nothing, hc.OK),
    ],
    ids=lambda value: getattr(value, "__name__", value),
)
def test_the_harness_tells_outcomes_apart(
    tmp_path: Path, work: Callable[[], int], expected: str
) -> None:
    case = hc.Case("self-test", ("nothing",), timeout=2.0, engines=False)
    running = hc.start(case, _box(tmp_path), work)
    while not hc.wait_children([running.child]):
        pass
    result = hc.finish(running, grace=0.5)
    assert result.outcome == expected, result.detail or result.stderr


# --------------------------------------------------------------------------------------------
# --force under faults: a concurrent run, a kill between the renames, kills at random instants


def _write_config(directory: Path, **changes) -> Path:
    path = directory / hc.CONFIG
    path.write_text(hc.text(changes), encoding="utf-8")
    return path


def _gcsim(directory: Path, *argv: str, prepare=None, timeout: float = 60.0) -> hc.Child:
    return hc.run_argv(list(argv), directory, timeout, prepare=prepare)


def _seed_of(run_dir: Path) -> int | None:
    import json

    try:
        return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))["seed"]
    except (OSError, ValueError, KeyError):
        return None


def _whole(run_dir: Path) -> bool:
    from simulator.results import run_problem

    return run_dir.is_dir() and run_problem(run_dir) is None


LOCKED = re.compile(r"lock|another gcsim|another run|in use|busy", re.IGNORECASE)


def test_two_concurrent_force_runs_one_is_locked_out(tmp_path: Path) -> None:
    """Both start together and each simulates for a while: the lock must be taken before the
    simulation (the whole run owns the target), so the second is refused at once with a clear,
    clean error naming the lock, and the first replaces the old results whole."""
    _write_config(tmp_path, trials=1000, **{"output.events_trials": 20})
    assert _gcsim(tmp_path, "run", hc.CONFIG, "--out", "out", "-q").exit_code == 0
    children = []
    for seed in (11, 12):
        argv = ["run", hc.CONFIG, "--out", "out", "--force", "-q", "--set", f"seed={seed}"]
        children.append(hc.fork_child(hc.cli_main(argv), tmp_path))
    for child in children:  # released together: both are forked and waiting
        child.release(120.0)
    ended: list[hc.Child] = []
    while len(ended) < 2:
        ended += hc.wait_children([c for c in children if c not in ended])
    for child in children:
        hc.settle_group(child)
    codes = sorted(child.exit_code for child in children)
    messages = [child.stderr for child in children]
    assert codes == [0, 2], messages
    loser = next(child for child in children if child.exit_code == 2)
    winner = next(child for child in children if child.exit_code == 0)
    assert LOCKED.search(loser.stderr), loser.stderr
    assert not hc.error_format_problems(loser.stderr), loser.stderr
    assert _whole(tmp_path / "out")
    assert _seed_of(tmp_path / "out") == 11 + children.index(winner)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert [name for name in leftovers if "lock" not in name] == []


def _renames(log: Path | None = None, kill_at: int | None = None) -> Callable[[], None]:
    """A child's preparation: wrap os.rename and os.replace (Path.rename, Path.replace and
    shutil.move go through them) and the atomic exchange of ``--force``
    (``simulator.replace._exchange``, renameat2) to log each call, and SIGKILL the process
    just before the call numbered ``kill_at`` (0-based) or, for ``-(n + 1)``, just after
    call n."""

    def prepare() -> None:
        from simulator import replace

        calls = [0]
        for owner, name in ((os, "rename"), (os, "replace"), (replace, "_exchange")):
            original = getattr(owner, name)

            def wrapper(src, dst, *args, _original=original, **kwargs):
                number = calls[0]
                calls[0] += 1
                if kill_at == number:
                    os.kill(os.getpid(), signal.SIGKILL)
                result = _original(src, dst, *args, **kwargs)
                if log is not None:
                    with open(log, "a", encoding="utf-8") as file:
                        file.write(f"{src} -> {dst}\n")
                if kill_at is not None and kill_at < 0 and -(kill_at + 1) == number:
                    os.kill(os.getpid(), signal.SIGKILL)
                return result

            setattr(owner, name, wrapper)

    return prepare


def _files_with(root: Path, data: bytes) -> list[Path]:
    return [
        path
        for path in root.rglob("*")
        if path.is_file()
        and not path.is_symlink()
        and path.stat().st_size == len(data)
        and path.read_bytes() == data
    ]


def _check_after_kill(directory: Path, old: bytes, new_seed: int, where: str) -> None:
    """The old results are in place (or the new ones, whole), or still on disk; and the next
    run into the same directory finds them, says so and puts them back."""
    out = directory / "out"
    in_place = _whole(out) and (
        (out / "summary.parquet").read_bytes() == old or _seed_of(out) == new_seed
    )
    if not in_place:
        assert _files_with(directory, old), f"{where}: the old results are gone"
    after = _gcsim(directory, "run", hc.CONFIG, "--out", "out", "-q", "--set", "seed=99")
    assert "Traceback" not in after.stderr, f"{where}: {after.stderr}"
    assert after.exit_code == 2, f"{where}: the next run did not refuse to overwrite"
    assert _whole(out), f"{where}: the next run left no whole run directory"
    if not in_place:
        assert (out / "summary.parquet").read_bytes() == old, f"{where}: not restored"
        said = after.stdout + after.stderr
        assert re.search(r"restor", said, re.IGNORECASE), f"{where}: restored silently: {said}"
    else:
        assert _seed_of(out) != 99
    # What the killed run left (its staging, the retired old results once the new ones are in
    # place) is removed by the next run, or at least reported by name.
    said = after.stdout + after.stderr
    hidden = [p.name for p in directory.iterdir() if p.name.startswith(".out.")]
    unreported = [h for h in hidden if "lock" not in h and h not in said]
    assert unreported == [], f"{where}: left {unreported} behind, unreported"


def _old_run(directory: Path) -> bytes:
    _write_config(directory)
    made = _gcsim(directory, "run", hc.CONFIG, "--out", "out", "-q")
    assert made.exit_code == 0, made.stderr
    return (directory / "out" / "summary.parquet").read_bytes()


def test_force_killed_at_each_rename_keeps_or_restores_the_old_results(tmp_path: Path) -> None:
    """A --force run is killed just before each of its renames and just after each: every
    instant between "the old results are moved away" and "the new ones are in place"."""
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    old = _old_run(pristine)
    log = tmp_path / "renames.log"
    trial = tmp_path / "count"
    shutil.copytree(pristine, trial, symlinks=True)
    force = ("run", hc.CONFIG, "--out", "out", "--force", "-q", "--set", "seed=2")
    counted = _gcsim(trial, *force, prepare=_renames(log))
    assert counted.exit_code == 0, counted.stderr
    renames = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    assert renames, "a --force run that renames nothing cannot replace a directory atomically"
    for kill_at in [*range(len(renames)), *(-(n + 1) for n in range(len(renames)))]:
        directory = tmp_path / f"kill{kill_at}"
        shutil.copytree(pristine, directory, symlinks=True)
        killed = _gcsim(directory, *force, prepare=_renames(kill_at=kill_at))
        assert killed.signal == signal.SIGKILL, killed.stderr
        when = "before" if kill_at >= 0 else "after"
        number = kill_at if kill_at >= 0 else -(kill_at + 1)
        _check_after_kill(directory, old, 2, f"killed {when} {renames[number]}")


def test_force_killed_at_random_instants_keeps_or_restores_the_old_results(
    tmp_path: Path,
) -> None:
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    old = _old_run(pristine)
    force = ["run", hc.CONFIG, "--out", "out", "--force", "-q", "--set", "seed=2"]
    timing = tmp_path / "timing"
    shutil.copytree(pristine, timing, symlinks=True)
    started = time.monotonic()
    assert _gcsim(timing, *force).exit_code == 0
    duration = time.monotonic() - started
    rng = random.Random(16)
    for attempt in range(4):
        directory = tmp_path / f"random{attempt}"
        shutil.copytree(pristine, directory, symlinks=True)
        child = hc.fork_child(hc.cli_main(force), directory)
        child.release(60.0)
        time.sleep(rng.uniform(0.0, duration))
        hc.abandon(child)
        _check_after_kill(directory, old, 2, f"killed at random (attempt {attempt})")


# --------------------------------------------------------------------------------------------
# Determinism: the bytes do not depend on --jobs at any number of trials


def test_output_bytes_do_not_depend_on_jobs(tmp_path: Path) -> None:
    """Issue 16's reproducer made cheaper: 40,000 trials are three streamed ranges of the
    summary (at most 2**14 trials each) after a traced head run in the main process, so --jobs 1
    and --jobs 2 feed the writers in different batches; 160,000 rows of distinct completion
    times also outgrow parquet's dictionary page, where the encoding could depend on them."""
    _write_config(
        tmp_path,
        trials=40_000,
        schemes=[{"protocol": "uncoded"}, {"protocol": "fastest_k", "k": 4},
                 {"protocol": "partial_gc", "load": 3, "ell": 1},
                 {"protocol": "partial_gc", "load": 3, "ell": 2}],
        **{"output.events_trials": 10, "output.decode_cond": False, "data.gradients": "none"},
    )  # fmt: skip
    for jobs in ("1", "2"):
        made = _gcsim(tmp_path, "run", hc.CONFIG, "--out", f"jobs{jobs}", "--jobs", jobs, "-q",
                      timeout=300.0)  # fmt: skip
        assert made.exit_code == 0, made.stderr
    for name in ("summary.parquet", "events.parquet"):
        one = (tmp_path / "jobs1" / name).read_bytes()
        assert one == (tmp_path / "jobs2" / name).read_bytes(), name


# --------------------------------------------------------------------------------------------
# Orphans: a killed run or sweep leaves no process behind


def _members(pgid: int) -> list[int]:
    """Live processes of a process group (from /proc; zombies excluded)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


@pytest.mark.parametrize(
    "argv",
    [
        ("run", hc.CONFIG, "--out", "out", "--jobs", "2", "-q"),
        ("sweep", hc.CONFIG, "--grid", "seed=1,2,3,4,5,6", "--jobs", "2", "--out", "sw", "-q"),
    ],
    ids=["run --jobs 2", "sweep --jobs 2"],
)
def test_a_killed_run_leaves_no_process_behind(tmp_path: Path, argv: tuple[str, ...]) -> None:
    """kill -9 of the gcsim process once its pool's workers are busy: they must exit too (the
    grace below is a bound for them to notice, not a speed requirement)."""
    _write_config(tmp_path, trials=60_000, **{"data.gradients": "none"})
    child = hc.fork_child(hc.cli_main(argv), tmp_path)
    child.release(300.0)
    deadline = time.monotonic() + 120
    try:
        while len(_members(child.pid)) < 3 and time.monotonic() < deadline:
            if hc.wait_children([child], block=False):
                break
            time.sleep(0.1)
        assert child.status is None, f"ended before its workers were busy: {child.stderr}"
        assert len(_members(child.pid)) >= 3, "the pool never started"
        time.sleep(1.0)  # the workers are computing
        os.kill(child.pid, signal.SIGKILL)
        while not hc.wait_children([child]):
            pass
        end = time.monotonic() + 20
        while _members(child.pid) and time.monotonic() < end:
            time.sleep(0.2)
        left = _members(child.pid)
        commands = []
        for pid in left:
            try:
                commands.append(Path(f"/proc/{pid}/cmdline").read_bytes()[:120])
            except OSError:
                pass
        assert left == [], f"{len(left)} processes outlived the killed gcsim: {commands}"
    finally:
        hc.abandon(child)
