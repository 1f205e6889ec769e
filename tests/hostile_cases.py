"""Hostile inputs through the real ``gcsim`` command, and how each one ended (issue 16).

The harness runs one input through ``simulator.cli.main`` in a forked child: forking after the
imports costs milliseconds, so hundreds of inputs run in seconds, and a crash, a memory bomb or
a hang takes down only the child. The child gets its own process group (so nothing it starts can
outlive it unnoticed), an address-space limit (``MEMORY_LIMIT``), a fresh sandbox directory as
its working directory, and pipes for stdout and stderr (pipes, not files, so a ``RLIMIT_FSIZE``
"disk full" cannot silence the error message). The parent snapshots the sandbox before and
after, waits with a timeout and sorts the run into one outcome:

- ``clean error``: exit 2, no traceback, every stderr line short and an ``error:`` line (click's
  own usage errors, ``Usage:``/``Try``/``Error:``, also count: one problem, named), and nothing
  written or changed anywhere in the sandbox;
- ``messy error``: an error exit that is not clean (another status, a long or unlabelled line,
  files left behind);
- ``traceback``, ``hang`` (killed at the timeout), ``crash`` (killed by a signal, or a
  MemoryError at the address-space limit), ``left running`` (a process of the child's group
  still alive after it exited);
- ``wrong result``: exit 0 but the outputs break an invariant (a decoded row whose completion
  time is not finite, NaN where a number must be, a run directory whose checksums fail, files
  outside the chosen directory, temporary files left behind, the engines disagreeing);
- ``data lost``: a file the user had is gone or changed (checked first: it is the worst);
- ``ok``: exit 0 and the outputs sane.

Each case names the outcome that is correct (``clean error`` for almost all, ``ok`` for valid
edge cases); a few accept either, and say why. ``CASES`` is the table; ``run_cases`` runs any
part of it, two at a time by default.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import io
import json
import os
import resource
import selectors
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import DELETE, set_key

CLEAN = "clean error"
MESSY = "messy error"
TRACEBACK = "traceback"
HANG = "hang"
CRASH = "crash"
LEFT = "left running"
WRONG = "wrong result"
LOST = "data lost"
OK = "ok"
OUTCOMES = (CLEAN, TRACEBACK, HANG, CRASH, WRONG, LOST, MESSY, LEFT, OK)

#: Address space of a case's process (and of any process it starts): a memory bomb hits it
#: in seconds instead of taking the machine, which others share.
MEMORY_LIMIT = 3 << 30
#: Seconds a case may run before it is a hang. The valid cases take well under a second.
TIMEOUT = 20.0
#: Longest acceptable line of an error message (a message may name a path and a key; one that
#: echoes a 5,000-character value back is not short).
MAX_LINE = 500
#: Output kept per stream (the rest is read and dropped, so a chatty child never blocks).
MAX_OUTPUT = 1 << 20

CONFIG = "c.yaml"
"""The config's file name in the sandbox's working directory (``{cfg}`` in a case's argv)."""


# --------------------------------------------------------------------------------------------
# Cases


@dataclass
class Sandbox:
    """A case's directories: ``root`` is everything the case may touch; ``work`` (four levels
    below it, so that ``../../../x`` still lands inside ``root``) is the working directory,
    holding the config. ``ignore`` lists planted paths whose fate does not count (a symlink an
    attacker left is not the user's data)."""

    base: Path
    root: Path
    work: Path
    ignore: set[str] = field(default_factory=set)

    def path(self, relative: str) -> Path:
        return self.work / relative


@dataclass
class Case:
    id: str
    argv: tuple[str, ...]
    """Arguments after ``gcsim``; ``{cfg}`` is the config, ``{root}``/``{work}`` the sandbox's
    absolute directories."""
    expect: tuple[str, ...] = (CLEAN,)
    bullet: str = ""
    """The bullet of issue 16's "Why" this case reproduces ("" for the cases of our own)."""
    config: Any = None
    """The config written to ``{cfg}``: a dict (YAML), text or bytes; None for BASE."""
    files: dict[str, str | bytes] = field(default_factory=dict)
    """More files, relative to ``work`` (``{root}`` expanded in text)."""
    setup: Callable[[Sandbox], None] | None = None
    """Runs in the parent before the case (may itself run gcsim through ``run_argv``)."""
    plant: Callable[[Sandbox, int], None] | None = None
    """Runs in the parent once the child exists (given its pid), before the snapshot."""
    env: dict[str, str] = field(default_factory=dict)
    fsize: int | None = None
    """RLIMIT_FSIZE of the child in bytes: a "disk full" that needs no special filesystem."""
    replaces: tuple[str, ...] = ()
    """Paths (relative to ``work``) the command may legitimately rewrite, e.g. with --force."""
    engines: bool = True
    """Cross-check the written summary against both engines when the run succeeds."""
    timeout: float = TIMEOUT
    check: Callable[[Sandbox, Result], str | None] | None = None
    """A further invariant of a successful run: a problem, or None."""
    names: str | None = None
    """What a clean error must name (the dotted key or the option at fault)."""


@dataclass
class Result:
    case: Case
    outcome: str
    detail: str
    exit: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def as_expected(self) -> bool:
        return self.outcome in self.case.expect

    def describe(self) -> str:
        tail = self.detail or _last_line(self.stderr)
        return f"{self.case.id}: expected {' or '.join(self.case.expect)}, got {self.outcome}" + (
            f": {tail}" if tail else ""
        )


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# --------------------------------------------------------------------------------------------
# Forked children


def preload() -> None:
    """Import everything a command may import, once, so that forked children start warm."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import simulator.cli  # noqa: F401
    import simulator.coding.ordering  # noqa: F401
    import simulator.engine.fast  # noqa: F401
    import simulator.perfetto  # noqa: F401
    import simulator.plots  # noqa: F401
    import simulator.results  # noqa: F401
    import simulator.sweep  # noqa: F401

    try:
        import distributed  # noqa: F401
    except ImportError:
        pass
    _warm_up()


def _warm_up() -> None:
    """Run BASE once in this process: what a first run imports and caches lazily is then
    inherited by every child instead of being redone in each."""
    from simulator.config import from_dict
    from simulator.results import write_run
    from simulator.runner import run

    with tempfile.TemporaryDirectory(prefix="gcsim-warm-") as tmp:
        write_run(run(from_dict(BASE)), Path(tmp) / "run", argv=["warm-up"])


CHILD_ENV = {
    "COLUMNS": "200",
    "NO_COLOR": "1",
    "TERM": "dumb",
    "MPLBACKEND": "Agg",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}


@dataclass
class Child:
    """A forked child: its pid (= its process group), its pipes and what they gave."""

    pid: int
    out_fd: int
    err_fd: int
    gate_fd: int | None
    started: float = 0.0
    deadline: float = 0.0
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    status: int | None = None
    timed_out: bool = False
    ended: float = 0.0

    def release(self, timeout: float) -> None:
        """Let the child run (it waits for this after fork) and start its clock."""
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        if self.gate_fd is not None:
            os.write(self.gate_fd, b"g")
            os.close(self.gate_fd)
            self.gate_fd = None

    @property
    def stdout(self) -> str:
        return self.out.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self.err.decode("utf-8", "replace")

    @property
    def exit_code(self) -> int | None:
        if self.status is None or not os.WIFEXITED(self.status):
            return None
        return os.WEXITSTATUS(self.status)

    @property
    def signal(self) -> int | None:
        if self.status is not None and os.WIFSIGNALED(self.status):
            return os.WTERMSIG(self.status)
        return None


_OPEN_FDS: set[int] = set()  # the parent's ends of every live child's pipes


def _mapped_bytes() -> int:
    """This process's mapped address space (VmSize), 0 where /proc does not say."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def fork_child(
    work: Callable[[], int],
    cwd: Path,
    env: dict[str, str] | None = None,
    fsize: int | None = None,
    memory: int | None = MEMORY_LIMIT,
) -> Child:
    """Fork a child that waits for ``Child.release``, then returns ``work()`` as its exit status
    (an exception: printed traceback, status 1, as Python would). The child leads its own
    process group and runs under the limits given. ``memory`` is address space beyond what
    the child inherits mapped: a long test session (Dask clients, BLAS and plotting libraries
    loaded by earlier tests) maps gigabytes the child never touches."""
    if memory is not None:
        memory += _mapped_bytes()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    gate_r, gate_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            for fd in (out_r, err_r, gate_w, *_OPEN_FDS):
                os.close(fd)
            os.setpgid(0, 0)
            if memory is not None:
                resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            for fd in (null, out_w, err_w):
                os.close(fd)
            sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stdout = _text_stream(1)
            sys.stderr = _text_stream(2)
            os.environ.update(CHILD_ENV)
            os.environ.update(env or {})
            os.chdir(cwd)
            os.read(gate_r, 1)
            os.close(gate_r)
            if fsize is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            code = work()
        except SystemExit as exc:
            code = _exit_status(exc)
        except BaseException:  # noqa: BLE001 - what Python would print on an uncaught error
            with _quiet():
                traceback.print_exc()
            code = 1
        finally:
            with _quiet():
                sys.stdout.flush()
            with _quiet():
                sys.stderr.flush()
            os._exit(code)
    for fd in (out_w, err_w, gate_r):
        os.close(fd)
    for fd in (out_r, err_r):
        os.set_blocking(fd, False)
        _OPEN_FDS.add(fd)
    return Child(pid, out_r, err_r, gate_w)


def _text_stream(fd: int) -> io.TextIOWrapper:
    """A fresh text stream on a file descriptor (a forked child's own stdout and stderr, not
    whatever the parent's sys.stdout was, e.g. pytest's capture)."""
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace", line_buffering=True)


class _quiet:  # noqa: N801 - a tiny context manager: ignore any error while tidying up
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


def _exit_status(exc: SystemExit) -> int:
    """The status Python gives ``sys.exit(code)``: an int as is, None 0, anything else printed
    to stderr and 1."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def cli_main(argv: Sequence[str]) -> Callable[[], int]:
    """The work of a child: the console script ``gcsim`` (``simulator.cli.main``) with argv."""

    def work() -> int:
        from simulator import cli

        sys.argv = ["gcsim", *argv]
        cli.main()
        return 0

    return work


def _drain(child: Child, fd: int) -> bool:
    """Read what is available; False at end of file."""
    buffer = child.out if fd == child.out_fd else child.err
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            return False
        if not data:
            return False
        if len(buffer) < MAX_OUTPUT:
            buffer.extend(data[: MAX_OUTPUT - len(buffer)])


def _close_pipes(child: Child) -> None:
    """Read what is left and close the pipes (once: the numbers are marked closed, -1)."""
    for fd in (child.out_fd, child.err_fd):
        if fd < 0:
            continue
        _drain(child, fd)
        _OPEN_FDS.discard(fd)
        with _quiet():
            os.close(fd)
    child.out_fd = child.err_fd = -1
    if child.gate_fd is not None:
        with _quiet():
            os.close(child.gate_fd)
        child.gate_fd = None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(pgid: int) -> None:
    with _quiet():
        os.killpg(pgid, signal.SIGKILL)


def wait_children(children: Iterable[Child], poll: float = 0.01, block: bool = True) -> list[Child]:
    """Read the children's pipes until at least one has exited (or timed out and been killed:
    the whole group), and return those that ended. With ``block`` False, one pass only."""
    children = list(children)
    done = [child for child in children if child.status is not None]
    if done:
        return done
    with selectors.DefaultSelector() as selector:
        for child in children:
            for fd in (child.out_fd, child.err_fd):
                if fd >= 0:
                    selector.register(fd, selectors.EVENT_READ, child)
        while True:
            if selector.get_map():
                for key, _ in selector.select(timeout=poll):
                    if not _drain(key.data, key.fd):
                        selector.unregister(key.fd)
            else:
                time.sleep(poll)
            ended = []
            now = time.monotonic()
            for child in children:
                pid, status = os.waitpid(child.pid, os.WNOHANG)
                if pid == 0 and now > child.deadline:
                    child.timed_out = True
                    kill_group(child.pid)
                    pid, status = os.waitpid(child.pid, 0)
                if pid:
                    child.status = status
                    child.ended = time.monotonic()
                    ended.append(child)
            if ended or not block:
                for child in ended:
                    _close_pipes(child)
                return ended


def settle_group(child: Child, grace: float = 5.0) -> bool:
    """Whether processes of the child's group outlived it (they are then killed). ``grace``
    seconds for a pool's workers to notice their parent has gone."""
    end = time.monotonic() + grace
    while _group_alive(child.pid):
        if time.monotonic() > end:
            kill_group(child.pid)
            return True
        time.sleep(0.05)
    return False


def abandon(child: Child) -> None:
    """Kill a child's whole group, reap it and close its pipes (whatever state it is in)."""
    kill_group(child.pid)
    if child.status is None:
        with _quiet():
            _, child.status = os.waitpid(child.pid, 0)
            child.ended = time.monotonic()
    _close_pipes(child)
    settle_group(child, grace=1.0)


def run_argv(
    argv: Sequence[str],
    cwd: Path,
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
    prepare: Callable[[], None] | None = None,
) -> Child:
    """Run ``gcsim ARGV`` in a forked child and wait for it (setups and the fault tests).
    ``prepare`` runs in the child first (e.g. to plant a fault)."""
    main = cli_main(argv)

    def work() -> int:
        if prepare is not None:
            prepare()
        return main()

    child = fork_child(work, cwd, env)
    child.release(timeout)
    while not wait_children([child]):
        pass
    settle_group(child)
    return child


# --------------------------------------------------------------------------------------------
# Snapshots


@dataclass(frozen=True)
class Entry:
    kind: str  # file, dir, link, other
    digest: str  # content hash (files), target (links)


def snapshot(root: Path) -> dict[str, Entry]:
    """Every path under ``root`` (relative), hidden ones too, with its content hash."""
    entries: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            try:
                info = path.lstat()
            except OSError:
                continue
            if path.is_symlink():
                entries[rel] = Entry("link", os.readlink(path))
            elif path.is_dir():
                entries[rel] = Entry("dir", "")
            elif path.is_file():
                entries[rel] = Entry("file", _digest(path, info.st_size))
            else:
                entries[rel] = Entry("other", "")
    return entries


def _digest(path: Path, size: int) -> str:
    if size > 8 << 20:  # big files: size and modification time say enough
        return f"size {size} mtime {path.stat().st_mtime_ns}"
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable {exc.errno}"


def _under(rel: str, prefixes: Iterable[str]) -> bool:
    return any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in prefixes if p)


# --------------------------------------------------------------------------------------------
# Classification


def lost_files(
    before: dict[str, Entry], after: dict[str, Entry], keep_out: Iterable[str]
) -> list[str]:
    """Files and links the user had that are gone or changed (directories count only through
    what they held)."""
    keep_out = list(keep_out)
    lost = []
    for rel, entry in before.items():
        if entry.kind == "dir" or _under(rel, keep_out):
            continue
        if after.get(rel) != entry:
            lost.append(rel + (" (gone)" if rel not in after else " (changed)"))
    return lost


def error_format_problems(stderr: str) -> list[str]:
    """What keeps an error message from being one short labelled line per problem."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if not lines:
        return ["no message on stderr"]
    problems = []
    click_usage = any(line.startswith("Error: ") for line in lines)
    for line in lines:
        if len(line) > MAX_LINE:
            problems.append(f"a line of {len(line)} characters")
        elif line.lower().startswith("error:"):
            continue
        elif click_usage and (line.startswith("Usage: ") or line.startswith("Try '")):
            continue
        else:
            problems.append(f"unlabelled line {line[:120]!r}")
    return problems[:3]


def classify(
    case: Case,
    box: Sandbox,
    before: dict[str, Entry],
    after: dict[str, Entry],
    child: Child,
    left: bool,
) -> tuple[str, str]:
    rel_root = lambda p: str(box.work.relative_to(box.root) / p)  # noqa: E731
    keep_out = [rel_root(p) for p in case.replaces] + [rel_root(p) for p in box.ignore]
    lost = lost_files(before, after, keep_out)
    if lost:
        return LOST, ", ".join(lost[:4])
    if child.timed_out:
        return HANG, f"killed after {case.timeout:.0f} s"
    if child.signal is not None:
        return CRASH, f"killed by {signal.Signals(child.signal).name}"
    stderr = child.stderr
    tail = "\n".join(stderr.splitlines()[-3:])
    if "MemoryError" in tail:
        return CRASH, f"memory limit ({_last_line(stderr)})"
    if "Traceback (most recent call last)" in stderr:
        return TRACEBACK, _last_line(stderr)
    if left:
        return LEFT, "processes of the run outlived it"
    new = sorted(rel for rel in after if rel not in before or after[rel] != before[rel])
    new = [rel for rel in new if not _under(rel, [rel_root(p) for p in box.ignore])]
    if child.exit_code == 0:
        problems = output_problems(case, box, new, child)
        return (WRONG, "; ".join(problems[:3])) if problems else (OK, "")
    problems = error_format_problems(stderr)
    if case.names is not None and case.names not in stderr:
        problems.append(f"the message does not name {case.names}")
    if child.exit_code != 2:
        problems.insert(0, f"exit status {child.exit_code}")
    if new:
        problems.append(f"wrote {', '.join(new[:3])} despite the error")
    return (MESSY, "; ".join(problems[:3])) if problems else (CLEAN, "")


# --------------------------------------------------------------------------------------------
# Invariants of successful runs

SUMMARY_BINDING = (
    "scheme", "protocol", "trial", "completion_time", "decoded", "rel_error", "upload_floats",
    "download_floats", "messages", "control_messages", "chunks_computed", "chunks_used",
    "decode_cond",
)  # fmt: skip
COUNTS = ("upload_floats", "download_floats", "messages", "control_messages",
          "chunks_computed", "chunks_used")  # fmt: skip
EVENT_BINDING = ("scheme", "trial", "time", "kind", "worker", "chunk", "size")


def _out_option(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--out" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--out="):
            return arg.split("=", 1)[1]
    return None


def allowed_writes(case: Case, box: Sandbox) -> list[Path]:
    """Where a successful command may write: ``results/`` under the working directory, the
    ``--out`` given, and what plot and trace write into (the directory they read)."""
    argv = expand_argv(case.argv, box)
    allowed = [box.work / "results"]
    out = _out_option(argv)
    if out:
        allowed.append(Path(os.path.normpath(box.work / out)))
    if argv and argv[0] in ("plot", "trace") and len(argv) > 1:
        allowed.append(Path(os.path.normpath(box.work / argv[1])))
    return allowed


def output_problems(case: Case, box: Sandbox, new: list[str], child: Child) -> list[str]:
    """Why the outputs of a successful command cannot be trusted (empty: they can)."""
    problems: list[str] = []
    allowed = [str(box.root / rel) for rel in allowed_writes(case, box)]
    allowed = [str(Path(a).relative_to(box.root)) for a in allowed if _under(a, [str(box.root)])]
    outside = [
        rel
        for rel in new
        if not _under(rel, allowed)
        and not ((box.root / rel).is_dir() and any(_under(a, [rel]) for a in allowed))
    ]
    if outside:
        problems.append(f"wrote outside {' and '.join(allowed)}: {', '.join(outside[:3])}")
    hidden = [rel for rel in new if Path(rel).name.startswith(".") and "lock" not in rel]
    if hidden:
        problems.append(f"left temporary files: {', '.join(hidden[:3])}")
    for rel in new:
        path = box.root / rel
        if path.name == "summary.parquet" and not path.is_symlink():
            problems += [f"{rel}: {p}" for p in summary_problems(path)]
        elif path.name == "events.parquet" and not path.is_symlink():
            problems += [f"{rel}: {p}" for p in events_problems(path)]
        elif path.name == "manifest.json" and not path.is_symlink():
            from simulator.results import run_problem

            why = run_problem(path.parent)
            if why is not None:
                problems.append(f"{rel}: run directory not whole: {why}")
        elif path.name == "sweep.json" and not path.is_symlink():
            try:
                points = json.loads(path.read_text(encoding="utf-8"))["points"]
                undone = [p["id"] for p in points if p.get("status") != "done"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                undone = [f"unreadable ({exc})"]
            if undone:
                problems.append(f"{rel}: points not done: {', '.join(undone[:3])}")
    if case.check is not None:
        problem = case.check(box, Result(case, OK, "", 0, child.stdout, child.stderr, 0.0))
        if problem:
            problems.append(problem)
    return problems


def _run_config(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def summary_problems(path: Path) -> list[str]:
    """Invariants of summary rows (binding columns, DESIGN.md): every decoded row has a finite,
    non-negative completion time, an undecoded one inf; counts are non-negative; relative errors
    and condition numbers are never negative; with gradients on, a decoded row's rel_error is a
    number; every trial of every scheme is there once."""
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - an unreadable output is the finding
        return [f"unreadable ({type(exc).__name__}: {exc})"]
    config = _run_config(path.parent)
    if config is None:  # a sweep's combined summary: no config beside it
        return frame_problems(frame)
    trials = config.get("trials")
    return frame_problems(
        frame,
        trials if isinstance(trials, int) else None,
        len(config.get("schemes") or []),
        (config.get("data") or {}).get("gradients") == "gaussian",
    )


def frame_problems(
    frame, trials: int | None = None, schemes: int | None = None, gradients: bool = False
) -> list[str]:
    """``summary_problems`` of a frame; the row count is checked when trials and schemes are
    given, rel_error of decoded rows when gradients are on."""
    import numpy as np

    missing = [c for c in SUMMARY_BINDING if c not in frame.columns]
    if missing:
        return [f"missing columns {missing}"]
    problems = []
    time_ = frame["completion_time"].to_numpy(dtype=float)
    decoded = frame["decoded"].to_numpy(dtype=bool)
    if np.isnan(time_).any():
        problems.append(f"completion_time NaN in {int(np.isnan(time_).sum())} rows")
    if (decoded & ~np.isfinite(time_)).any():
        problems.append(
            f"{int((decoded & ~np.isfinite(time_)).sum())} rows decoded with a non-finite "
            "completion_time"
        )
    if (~decoded & ~np.isposinf(time_)).any():
        problems.append("undecoded rows whose completion_time is not inf")
    if (time_ < 0).any():
        problems.append("negative completion_time")
    for column in COUNTS:
        values = frame[column].to_numpy()
        if (values < 0).any():
            problems.append(f"negative {column}")
    for column in ("rel_error", "decode_cond"):
        values = frame[column].to_numpy(dtype=float)
        if (values < 0).any():
            problems.append(f"negative {column}")
    rel = frame["rel_error"].to_numpy(dtype=float)
    if gradients and (decoded & ~np.isfinite(rel)).any():
        problems.append("decoded rows with a non-finite rel_error (gradients on)")
    if trials is not None and schemes is not None:
        if len(frame) != trials * schemes:
            problems.append(f"{len(frame)} rows for {trials} trials x {schemes} schemes")
        elif (frame.groupby("scheme")["trial"].nunique() != trials).any():
            problems.append("a scheme misses trials or repeats them")
    return problems


def events_problems(path: Path) -> list[str]:
    import numpy as np
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001
        return [f"unreadable ({type(exc).__name__}: {exc})"]
    missing = [c for c in EVENT_BINDING if c not in frame.columns]
    if missing:
        return [f"missing columns {missing}"]
    times = frame["time"].to_numpy(dtype=float)
    if len(times) and (~np.isfinite(times) | (times < 0)).any():
        return ["event times that are not finite and non-negative"]
    return []


def engine_disagreement(run_dir: Path, source_dir: Path) -> str | None:
    """Run a written run's config on the event engine (and on the fast one where it claims to be
    exact) and compare with the written summary, trial by trial (the tolerances of
    tests/test_fast_engine.py). Runs in the calling process: call it in a child."""
    import numpy as np
    import pandas as pd

    from simulator import config as cfg
    from simulator.runner import run
    from simulator.schema import SUMMARY, TOLERANCES

    data = _run_config(run_dir)
    if data is None:
        return "config.yaml unreadable"
    written = pd.read_parquet(run_dir / "summary.parquet")
    frames = {}
    for engine in ("des", "fast"):
        try:
            exp = cfg.from_dict({**data, "engine": engine}, source_dir=source_dir)
        except cfg.ConfigError:
            continue  # fast is not exact here, and says so
        try:
            frames[engine] = run(exp).summary
        except Exception as exc:  # noqa: BLE001 - a crash of one engine is the finding
            return f"engine {engine} raised {type(exc).__name__}: {exc}"
    exact = [c.name for c in SUMMARY if c.agree == "exact" and c.name != "protocol"]
    for engine, frame in frames.items():
        if len(frame) != len(written):
            return f"{engine}: {len(frame)} rows, the run wrote {len(written)}"
        for column in exact:
            if not np.array_equal(frame[column].to_numpy(), written[column].to_numpy()):
                return f"engine {engine} disagrees with the run on {column}"
        for column in (c for c in SUMMARY if c.agree in TOLERANCES):
            rtol, atol = TOLERANCES[column.agree]
            column = column.name
            a, b = frame[column].to_numpy(dtype=float), written[column].to_numpy(dtype=float)
            if not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
                return f"engine {engine} disagrees with the run on {column}"
    del pd
    return None


def _engine_check(box: Sandbox, new: list[str]) -> str | None:
    """``engine_disagreement`` of the first new run directory, in a child (with the limits)."""
    runs = sorted(
        {(box.root / rel).parent for rel in new if rel.endswith("manifest.json")},
        key=lambda p: len(p.parts),
    )
    if not runs:
        return None
    verdict = box.base / "engines.txt"

    def work() -> int:
        message = engine_disagreement(runs[0], box.work)
        verdict.write_text(message or "", encoding="utf-8")
        return 0

    child = fork_child(work, box.work)
    child.release(60.0)
    while not wait_children([child]):
        pass
    settle_group(child)
    if child.timed_out:
        return "the engine cross-check hung"
    if child.exit_code != 0 or not verdict.exists():
        return f"the engine cross-check failed: {_last_line(child.stderr)}"
    return verdict.read_text(encoding="utf-8") or None


# --------------------------------------------------------------------------------------------
# Running cases


def expand(text: str, box: Sandbox) -> str:
    return (
        text.replace("{root}", str(box.root))
        .replace("{work}", str(box.work))
        .replace("{cfg}", CONFIG)
    )


def expand_argv(argv: Sequence[str], box: Sandbox) -> list[str]:
    return [expand(arg, box) for arg in argv]


def prepare(case: Case, base: Path) -> Sandbox:
    """Make the case's sandbox: directories, the config, its files, its setup."""
    root = base / "root"
    work = root / "a" / "b" / "c" / "work"
    work.mkdir(parents=True)
    (base / "mpl").mkdir()
    box = Sandbox(base, root, work)
    config = BASE if case.config is None else case.config
    if isinstance(config, dict):
        (work / CONFIG).write_text(expand(yaml.safe_dump(config, sort_keys=False), box), "utf-8")
    elif isinstance(config, str):
        (work / CONFIG).write_text(expand(config, box), encoding="utf-8")
    elif isinstance(config, bytes):
        (work / CONFIG).write_bytes(config)
    for rel, content in case.files.items():
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(expand(content, box), encoding="utf-8")
    if case.setup is not None:
        case.setup(box)
    return box


@dataclass
class _Running:
    case: Case
    box: Sandbox
    child: Child
    before: dict[str, Entry]


def start(case: Case, box: Sandbox, work: Callable[[], int] | None = None) -> _Running:
    """Fork the case's child (``work``: instead of gcsim, to test the harness), plant, take the
    snapshot, let it run."""
    env = {"MPLCONFIGDIR": str(box.base / "mpl"), **case.env}
    work = work or cli_main(expand_argv(case.argv, box))
    child = fork_child(work, box.work, env, case.fsize)
    try:
        if case.plant is not None:
            case.plant(box, child.pid)
        before = snapshot(box.root)
    except BaseException:
        kill_group(child.pid)
        os.waitpid(child.pid, 0)
        _close_pipes(child)
        raise
    child.release(case.timeout)
    return _Running(case, box, child, before)


def finish(running: _Running, grace: float = 5.0) -> Result:
    """Classify an ended child (and cross-check the engines of a successful run)."""
    case, box, child = running.case, running.box, running.child
    left = settle_group(child, grace)
    after = snapshot(box.root)
    outcome, detail = classify(case, box, running.before, after, child, left)
    if outcome == OK and case.engines and case.argv and case.argv[0] == "run":
        new = [rel for rel in after if rel not in running.before]
        problem = _engine_check(box, new)
        if problem:
            outcome, detail = WRONG, problem
    return Result(case, outcome, detail, child.exit_code, child.stdout, child.stderr,
                  child.ended - child.started)  # fmt: skip


def run_cases(
    cases: Sequence[Case],
    jobs: int = 2,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Run cases, ``jobs`` at a time, each in its own sandbox (removed afterwards); results in
    the order of ``cases``."""
    preload()
    results: dict[int, Result] = {}
    with tempfile.TemporaryDirectory(prefix="gcsim-hostile-") as tmp:
        queue = list(enumerate(cases))
        running: dict[int, tuple[int, _Running]] = {}  # pid -> (index, running)
        try:
            while queue or running:
                while queue and len(running) < jobs:
                    index, case = queue.pop(0)
                    box = prepare(case, Path(tmp) / f"{index:04d}")
                    started = start(case, box)
                    running[started.child.pid] = (index, started)
                for child in wait_children([r.child for _, r in running.values()]):
                    index, done = running.pop(child.pid)
                    result = finish(done)
                    results[index] = result
                    shutil.rmtree(done.box.base, ignore_errors=True)
                    if on_result is not None:
                        on_result(result)
        finally:
            for _, leftover in running.values():
                kill_group(leftover.child.pid)
                with _quiet():
                    os.waitpid(leftover.child.pid, 0)
                _close_pipes(leftover.child)
    return [results[i] for i in range(len(cases))]


def counts(results: Sequence[Result]) -> dict[str, int]:
    tally = {outcome: 0 for outcome in OUTCOMES}
    for result in results:
        tally[result.outcome] += 1
    return tally


# --------------------------------------------------------------------------------------------
# The base config every case breaks one thing of

BASE: dict[str, Any] = {
    "name": "base",
    "seed": 1,
    "trials": 4,
    "engine": "auto",
    "cluster": {
        "workers": 6,
        "compute": {"dist": "shifted_exponential", "shift": 1.0, "rate": 1.0, "per": "worker"},
        "failures": {"prob": 0.1},
        "network": {"latency": 0.01, "time_per_float": 0.001},
    },
    "data": {"dim": 8, "gradients": "gaussian"},
    "output": {"events_trials": 2},
    "schemes": [
        {"protocol": "uncoded"},
        {"protocol": "fastest_k", "k": 4},
        {"protocol": "original_gc", "load": 3, "ell": 1},
        {"protocol": "partial_gc", "load": 3, "ell": 2, "mode": "approximate", "deadline": 2.0},
    ],
}
"""Valid, tiny (4 trials, 6 workers) and touching every part: failures, network, gradients,
traces, an exact and an approximate coded scheme, fastest_k (which divides by what arrived)."""


def config(changes: dict[str, Any] | None = None, base: dict[str, Any] | None = None) -> dict:
    """A copy of BASE with dotted keys set (``schemes.2.load``); DELETE removes a key."""
    data = copy.deepcopy(BASE if base is None else base)
    for dotted, value in (changes or {}).items():
        set_key(data, dotted, value if value is DELETE else copy.deepcopy(value))
    return data


# --------------------------------------------------------------------------------------------
# Helpers of the table

NAN, INF = float("nan"), float("inf")
RUN = ("run", "{cfg}")
VALIDATE = ("validate", "{cfg}")
SWEEP = ("sweep", "{cfg}", "--grid", "seed=1,2", "--jobs", "1")
SCHEMES_ANY_TIE = [{"protocol": "uncoded"}, {"protocol": "fastest_k", "k": 4}]

#: Why "ok" and "clean error" are both right for a case, by kind.
EITHER = (OK, CLEAN)


def text(changes: dict[str, Any] | None = None, base: dict[str, Any] | None = None) -> str:
    return yaml.safe_dump(config(changes, base), sort_keys=False)


def make_run(relative: str, argv_extra: Sequence[str] = ()) -> Callable[[Sandbox], None]:
    """A setup: a real run directory at ``work/relative``, made by gcsim itself."""

    def setup(box: Sandbox) -> None:
        child = run_argv(["run", CONFIG, "--out", relative, "-q", *argv_extra], box.work)
        if child.exit_code != 0:
            raise RuntimeError(f"setup run failed: {child.stderr}")

    return setup


def _points_in_process() -> None:
    """A setup child's preparation: run a sweep's points in threads of the child instead of a
    spawned pool (seconds of interpreter start-up saved per setup; the point directories do not
    depend on the executor). Only setups do this: every case runs the real executor."""
    import concurrent.futures as cf
    import contextlib

    import simulator.sweep as sweep

    @contextlib.contextmanager
    def threads(jobs: int, dask: str | None):
        with cf.ThreadPoolExecutor(max_workers=1) as pool:
            yield pool, "threads (test setup)"

    if hasattr(sweep, "open_executor"):
        sweep.open_executor = threads


def make_sweep(relative: str) -> Callable[[Sandbox], None]:
    def setup(box: Sandbox) -> None:
        argv = ["sweep", CONFIG, "--grid", "seed=1,2", "--jobs", "1", "--out", relative, "-q"]
        child = run_argv(argv, box.work, prepare=_points_in_process)
        if child.exit_code != 0:
            raise RuntimeError(f"setup sweep failed: {child.stderr}")

    return setup


def chain(*steps: Callable[[Sandbox], None]) -> Callable[[Sandbox], None]:
    def setup(box: Sandbox) -> None:
        for step in steps:
            step(box)

    return setup


def write(relative: str, content: str | bytes) -> Callable[[Sandbox], None]:
    def setup(box: Sandbox) -> None:
        path = box.work / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")

    return setup


def fifo(relative: str) -> Callable[[Sandbox], None]:
    def setup(box: Sandbox) -> None:
        os.mkfifo(box.work / relative)

    return setup


def symlink(relative: str, target: str) -> Callable[[Sandbox], None]:
    def setup(box: Sandbox) -> None:
        path = box.work / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(expand(target, box))

    return setup


def plant_scratch(target: str, kind: str, suffix: str, victim: str, directory: bool = False):
    """A plant: the scratch name gcsim's child will use (``.<target>.<kind>-<host>-<pid>``,
    simulator/scratch.py) made a symlink to a victim the user owns."""

    def plant(box: Sandbox, pid: int) -> None:
        import socket

        host = "".join(c if c.isalnum() or c in "_." else "_" for c in socket.gethostname())
        victim_path = box.work / victim
        victim_path.parent.mkdir(parents=True, exist_ok=True)
        if directory:
            victim_path.mkdir(exist_ok=True)
            (victim_path / "precious.txt").write_text("precious\n", encoding="utf-8")
        else:
            victim_path.write_text("precious\n", encoding="utf-8")
        link = box.work / f".{target}.{kind}-{host or 'host'}-{pid}{suffix}"
        link.symlink_to(victim_path)
        box.ignore.add(link.name)

    return plant


def nested_bimodal(levels: int) -> str:
    """A YAML alias bomb: ``levels`` bimodals, each using the one inside it twice (by alias),
    2**levels distributions once expanded, in about 60 bytes a level."""
    inner = "{dist: exponential, rate: 1.0}"
    for level in range(levels):
        inner = f"{{dist: bimodal, p_slow: 0.5, fast: &b{level} {inner}, slow: *b{level}}}"
    return inner


def with_compute(compute: str) -> str:
    body = text({"cluster.compute": "COMPUTE"})
    return body.replace("compute: COMPUTE", f"compute: {compute}")


def has_files(*relatives: str) -> Callable[[Sandbox, Result], str | None]:
    def check(box: Sandbox, result: Result) -> str | None:
        missing = [r for r in relatives if not (box.work / r).exists()]
        return f"missing {', '.join(missing)}" if missing else None

    return check


def stdout_has(fragment: str) -> Callable[[Sandbox, Result], str | None]:
    def check(box: Sandbox, result: Result) -> str | None:
        return None if fragment in result.stdout else f"stdout lacks {fragment!r}"

    return check


def whole_run(relative: str) -> Callable[[Sandbox, Result], str | None]:
    """The run directory at ``relative`` is whole (its checksums hold)."""

    def check(box: Sandbox, result: Result) -> str | None:
        from simulator.results import run_problem

        why = run_problem(box.work / relative)
        return None if why is None else f"{relative}: {why}"

    return check


RUN_FILES = ("config.yaml", "manifest.json", "summary.parquet", "events.parquet")


def run_files(relative: str) -> tuple[str, ...]:
    return tuple(f"{relative}/{name}" for name in RUN_FILES)


# --------------------------------------------------------------------------------------------
# The table


def _issue_cases() -> list[Case]:
    """Every reproducer of issue 16's "Why", one bullet at a time."""
    cases = []
    loss = "data loss"
    cases += [
        Case(
            "force over a directory of documents",
            (*RUN, "--out", "mydocs", "--force"),
            bullet=loss,
            files={"mydocs/thesis.tex": "precious\n"},
        ),
        Case(
            "force over the working directory ($PWD)",
            (*RUN, "--out", "{work}", "--force"),
            bullet=loss,
        ),
        Case("force over '.'", (*RUN, "--out", ".", "--force"), bullet=loss),
        Case(
            "force over '..'",
            (*RUN, "--out", "..", "--force"),
            bullet=loss,
            files={"../notes.txt": "precious\n"},
        ),
        Case(
            "force over results/ holding other runs",
            (*RUN, "--out", "results", "--force"),
            bullet=loss,
            setup=make_run("results/base/earlier"),
        ),
        Case(
            "force over a directory with a foreign manifest.json",
            (*RUN, "--out", "mydocs", "--force"),
            bullet=loss,
            files={"mydocs/manifest.json": '{"mine": true}\n', "mydocs/thesis.tex": "x\n"},
        ),
        Case(
            "force over a symlink to a directory of documents",
            (*RUN, "--out", "link", "--force"),
            bullet=loss,
            files={"mydocs/thesis.tex": "precious\n"},
            setup=symlink("link", "{work}/mydocs"),
        ),
        Case(
            "force over a run directory the user added a file to",
            (*RUN, "--out", "out", "--force"),
            expect=EITHER,
            bullet=loss,
            setup=chain(make_run("out"), write("out/notes.txt", "precious\n")),
            replaces=run_files("out"),
        ),
        Case(
            "sweep --force over a directory of documents",
            (*SWEEP, "--out", "mydocs", "--force"),
            bullet=loss,
            files={"mydocs/thesis.tex": "precious\n"},
        ),
        Case(
            "sweep --force over the working directory",
            (*SWEEP, "--out", "{work}", "--force"),
            bullet=loss,
        ),
        Case(
            "sweep --force over a run directory",
            (*SWEEP, "--out", "out", "--force"),
            bullet=loss,
            setup=make_run("out"),
        ),
        Case(
            "empty --out with --force", (*RUN, "--out", "", "--force"), expect=EITHER, bullet=loss
        ),
    ]
    conf = "confinement"
    for verb, argv in (("run", RUN), ("sweep", SWEEP)):
        cases += [
            Case(
                f"{verb}: name ../../../x",
                argv,
                expect=EITHER,
                bullet=conf,
                config=config({"name": "../../../x"}),
            ),
            Case(
                f"{verb}: absolute name",
                argv,
                expect=EITHER,
                bullet=conf,
                config=config({"name": "{root}/abs"}),
            ),
        ]
    cases.append(
        Case("run: name ..", RUN, expect=EITHER, bullet=conf, config=config({"name": ".."}))
    )
    cases += [
        Case(
            "name a/../../b (escapes after a detour)",
            RUN,
            expect=EITHER,
            bullet=conf,
            config=config({"name": "a/../../b"}),
        ),
        Case(
            "name results/../../x",
            RUN,
            expect=EITHER,
            bullet=conf,
            config=config({"name": "results/../../x"}),
        ),
        Case(
            "--set name=../../../x", (*RUN, "--set", "name=../../../x"), expect=EITHER, bullet=conf
        ),
        Case(
            "planted events scratch symlink to a victim file",
            (*RUN, "--out", "out"),
            expect=EITHER,
            bullet=conf,
            plant=plant_scratch("out", "events", ".parquet", "victim.txt"),
        ),
        Case(
            "planted summary scratch symlink to a victim file",
            (*RUN, "--out", "out"),
            expect=EITHER,
            bullet=conf,
            plant=plant_scratch("out", "summary", ".parquet", "victim.txt"),
        ),
        Case(
            "planted staging symlink to a victim directory",
            (*RUN, "--out", "out"),
            expect=EITHER,
            bullet=conf,
            plant=plant_scratch("out", "tmp", "", "victimdir", directory=True),
        ),
        Case(
            "planted retired-directory symlink with --force",
            (*RUN, "--out", "out", "--force"),
            expect=EITHER,
            bullet=conf,
            setup=make_run("out"),
            replaces=run_files("out"),
            plant=plant_scratch("out", "old", "", "victimdir", directory=True),
        ),
    ]
    wrong = "wrong results accepted"
    lognormal = {"dist": "lognormal", "mu": NAN, "sigma": 1.0}
    cases += [
        Case("lognormal.mu .nan", RUN, bullet=wrong, config=config({"cluster.compute": lognormal})),
        Case(
            "lognormal.mu .nan, fastest_k only",
            RUN,
            bullet=wrong,
            config=config(
                {"cluster.compute": lognormal, "schemes": [{"protocol": "fastest_k", "k": 4}]}
            ),
        ),
        Case(
            "lognormal.mu .nan (validate)",
            VALIDATE,
            bullet=wrong,
            config=config({"cluster.compute": lognormal}),
        ),
        Case(
            "lognormal.mu .inf",
            RUN,
            bullet=wrong,
            config=config({"cluster.compute": {**lognormal, "mu": INF}}),
        ),
        Case(
            "lognormal.mu -.inf",
            RUN,
            bullet=wrong,
            config=config({"cluster.compute": {**lognormal, "mu": -INF}}),
        ),
        Case(
            "--set cluster.compute.shift=.nan",
            (*RUN, "--set", "cluster.compute.shift=.nan"),
            bullet=wrong,
        ),
    ]
    infinite = {
        "shift": {"cluster.compute.shift": INF},
        "pareto scale": {"cluster.compute": {"dist": "pareto", "scale": INF, "alpha": 2.0}},
        "weibull scale": {"cluster.compute": {"dist": "weibull", "scale": INF, "shape": 1.0}},
        "gamma scale": {"cluster.compute": {"dist": "gamma", "shape": 2.0, "scale": INF}},
        "deterministic value": {"cluster.compute": {"dist": "deterministic", "value": INF}},
        "latency": {"cluster.network.latency": INF},
        "time_per_float": {"cluster.network.time_per_float": INF},
        "slowdown": {"cluster.slowdown": [INF, 1.0, 1.0, 1.0, 1.0, 1.0]},
    }
    for what, changes in infinite.items():
        cases.append(Case(f".inf {what}", RUN, bullet=wrong, config=config(changes)))
    # Finite values whose times overflow to inf once summed or inverted: refused, or run with
    # sane rows (never "decoded at time inf").
    overflowing = {
        "deterministic value 1e308": {"cluster.compute": {"dist": "deterministic",
                                                          "value": 1e308}},
        "shift 1e308": {"cluster.compute.shift": 1e308},
        "exponential rate 5e-324": {"cluster.compute": {"dist": "exponential", "rate": 5e-324}},
        "lognormal mu 800": {"cluster.compute": {"dist": "lognormal", "mu": 800.0,
                                                 "sigma": 1.0}},
        "pareto alpha 1e-3": {"cluster.compute": {"dist": "pareto", "scale": 1.0,
                                                  "alpha": 1e-3}},
        "latency 1e308": {"cluster.network.latency": 1e308},
        "time_per_float 1e308": {"cluster.network.time_per_float": 1e308},
        "slowdown 1e308": {"cluster.slowdown": [1e308] * 6},
    }  # fmt: skip
    for what, changes in overflowing.items():
        cases.append(
            Case(f"overflowing {what}", RUN, expect=EITHER, bullet=wrong, config=config(changes))
        )
    unbounded = "unbounded"
    only_uncoded = {"schemes": [{"protocol": "uncoded"}]}
    cases += [
        Case("trials 10**12", RUN, bullet=unbounded, config=config({"trials": 10**12})),
        Case(
            "trials 10**12 (validate)",
            VALIDATE,
            expect=(CLEAN, OK),
            bullet=unbounded,
            config=config({"trials": 10**12}),
        ),
        Case(
            "alias bomb: 25 nested bimodals (validate)",
            VALIDATE,
            bullet=unbounded,
            config=with_compute(nested_bimodal(25)),
        ),
        Case(
            "alias bomb: 25 nested bimodals (run)",
            RUN,
            bullet=unbounded,
            config=with_compute(nested_bimodal(25)),
        ),
        Case(
            "alias bomb through --set",
            (*RUN, "--set", f"cluster.compute={nested_bimodal(25)}"),
            bullet=unbounded,
        ),
        Case(
            "3,000 aliased schemes",
            RUN,
            expect=EITHER,
            bullet=unbounded,
            engines=False,
            # About 4 s alone (3,000 schemes validated, planned and tabled); 20 s was passed
            # on a machine loaded by other test runs. A hang is still a hang at 60 s.
            timeout=60.0,
            config=text({"trials": 1}).split("schemes:")[0]
            + "schemes: [&s {protocol: uncoded}"
            + ", *s" * 2999
            + "]\n",
        ),
        Case("workers 10**7", RUN, bullet=unbounded, config=config({"cluster.workers": 10**7})),
        Case(
            "workers 10**7, uncoded only",
            RUN,
            bullet=unbounded,
            config=config({"cluster.workers": 10**7, **only_uncoded}),
        ),
        Case(
            "chunks 10**9, uncoded only",
            RUN,
            bullet=unbounded,
            config=config({"data.chunks": 10**9, **only_uncoded}),
        ),
        Case(
            "original_gc at 2,000 workers",
            RUN,
            bullet=unbounded,
            config=config(
                {
                    "cluster.workers": 2000,
                    "trials": 1,
                    "schemes": [{"protocol": "original_gc", "load": 3}],
                }
            ),
        ),
        Case(
            "candidates 10**9",
            RUN,
            bullet=unbounded,
            config=config({"schemes.2.candidates": 10**9}),
        ),
        Case(
            "ordering --workers 10000000",
            ("ordering", "--workers", "10000000", "--load", "2"),
            bullet=unbounded,
        ),
        # A million jobs may be refused or capped; only a tiny run is tried (a run of many
        # trial blocks would really start a process per block: as root no RLIMIT_NPROC holds
        # them, and the address-space limit is per process).
        Case("run --jobs 1000000", (*RUN, "--jobs", "1000000"), expect=EITHER, bullet=unbounded),
        Case(
            "sweep --jobs 1000000",
            ("sweep", "{cfg}", "--grid", "seed=1,2", "--jobs", "1000000"),
            expect=EITHER,
            bullet=unbounded,
        ),
        Case("dim 10**12", RUN, bullet=unbounded, config=config({"data.dim": 10**12})),
        Case("dim 10**9 with gradients", RUN, bullet=unbounded, config=config({"data.dim": 10**9})),
    ]
    tb = "tracebacks"
    for value in (
        5,
        "sideways",
        {"a": 1},
        True,
        [1, 2, 3],
        [[0, 1, 2]],
        [["a", "b", "c"]] * 6,
        [[[0]]] * 6,
        1.5,
    ):
        cases.append(
            Case(
                f"ordering: {json.dumps(value)[:40]}",
                RUN,
                bullet=tb,
                config=config({"schemes.3.ordering": value}),
            )
        )
    deep_list = "[" * 20000 + "]" * 20000
    deep_map = "{a: " * 20000 + "1" + "}" * 20000
    cases += [
        Case("binary config", RUN, bullet=tb, config=bytes(range(256)) * 4),
        Case(
            "non-UTF-8 config (latin-1)",
            RUN,
            bullet=tb,
            config=text().replace("name: base", "name: caf\u00e9").encode("latin-1"),
        ),
        Case("UTF-16 config", RUN, bullet=tb, config=text().encode("utf-16")),
        Case("binary config (validate)", VALIDATE, bullet=tb, config=b"\x00\x01\x02\xff" * 100),
        Case("20,000-deep list", RUN, bullet=tb, config=text() + f"extra: {deep_list}\n"),
        Case("20,000-deep mapping", RUN, bullet=tb, config=text() + f"extra: {deep_map}\n"),
        Case("20,000-deep value via --set", (*RUN, "--set", f"name={deep_list}"), bullet=tb),
        Case(
            "integer over 4,300 digits (trials)",
            RUN,
            bullet=tb,
            config=text().replace("trials: 4", "trials: 1" + "0" * 5000),
        ),
        Case(
            "integer over 4,300 digits (seed)",
            RUN,
            bullet=tb,
            config=text().replace("seed: 1", "seed: 1" + "0" * 5000),
        ),
        Case(
            "integer over 4,300 digits via --set",
            (*RUN, "--set", "trials=1" + "0" * 5000),
            bullet=tb,
        ),
        Case(
            "integer over 4,300 digits via --grid",
            ("sweep", "{cfg}", "--grid", "seed=1" + "0" * 5000 + ",2"),
            bullet=tb,
        ),
        Case("name with a NUL byte", RUN, bullet=tb, config=config({"name": "a\0b"})),
        Case("name of 5,000 characters", RUN, bullet=tb, config=config({"name": "n" * 5000})),
        Case("name with a NUL byte (sweep)", SWEEP, bullet=tb, config=config({"name": "a\0b"})),
        Case(
            "name of 5,000 characters (sweep)",
            SWEEP,
            bullet=tb,
            config=config({"name": "n" * 5000}),
        ),
        Case("--out under a file", (*RUN, "--out", "afile/run"), bullet=tb, files={"afile": "x"}),
        Case(
            "--out under a file (sweep)",
            (*SWEEP, "--out", "afile/sweep"),
            bullet=tb,
            files={"afile": "x"},
        ),
        Case("--out in /proc", (*RUN, "--out", "/proc/gcsim-hostile/run"), bullet=tb),
        Case("--out in /proc/self", (*RUN, "--out", "/proc/self/gcsim-hostile"), bullet=tb),
        Case("--out in read-only /sys", (*RUN, "--out", "/sys/gcsim-hostile"), bullet=tb),
        Case(
            "--out in read-only /sys/kernel",
            (*RUN, "--out", "/sys/kernel/gcsim-hostile/run"),
            bullet=tb,
        ),
        Case("sweep --out in read-only /sys", (*SWEEP, "--out", "/sys/gcsim-hostile"), bullet=tb),
        Case("--out of 5,000 characters", (*RUN, "--out", "o" * 5000), bullet=tb),
        Case("run --dask 'not a url'", (*RUN, "--dask", "not a url"), bullet=tb),
        Case("sweep --dask 'not a url'", (*SWEEP, "--dask", "not a url"), bullet=tb),
        Case(
            "garbage DASK_SCHEDULER_ADDRESS",
            SWEEP,
            bullet=tb,
            env={"DASK_SCHEDULER_ADDRESS": "garbage::://x"},
        ),
        Case(
            "run --dask tcp://127.0.0.1:1 (nothing listens)",
            (*RUN, "--dask", "tcp://127.0.0.1:1"),
            bullet=tb,
        ),
        Case(
            "sweep with DASK_SCHEDULER_ADDRESS=tcp://127.0.0.1:1",
            SWEEP,
            bullet=tb,
            env={"DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:1"},
        ),
        Case(
            "disk full during a run (RLIMIT_FSIZE)", (*RUN, "--out", "out"), bullet=tb, fsize=3000
        ),
        Case(
            "disk full during a sweep (RLIMIT_FSIZE)",
            (*SWEEP, "--out", "sw"),
            bullet=tb,
            fsize=3000,
        ),
        Case("duplicate top-level key", RUN, bullet=tb, config=text() + "trials: 5\n"),
        Case(
            "duplicate nested key",
            RUN,
            bullet=tb,
            config=text().replace("  workers: 6\n", "  workers: 6\n  workers: 7\n"),
        ),
        Case(
            "duplicate key in a scheme",
            RUN,
            bullet=tb,
            config=text() + "- {protocol: original_gc, load: 3, load: 2}\n",
        ),
        Case(
            "duplicate key in a distribution",
            RUN,
            bullet=tb,
            config=text()
            .replace("dist: shifted_exponential", "dist: exponential")
            .replace("    shift: 1.0\n", "    rate: 2.0\n"),
        ),
        Case(
            "duplicate key in a flow mapping",
            RUN,
            bullet=tb,
            config=text()
            .replace("data:\n  dim: 8\n", "data: {dim: 8, dim: 9}\nx:\n")
            .replace("x:\n  gradients: gaussian\n", ""),
        ),
    ]
    return cases


def _distribution(dist: str, **params: Any) -> dict[str, Any]:
    return {"dist": dist, **params}


#: Every float parameter of the config: (case name, dotted key, a config where it exists,
#: whether 0 is allowed).
FLOAT_KEYS: list[tuple[str, str, dict[str, Any], bool]] = [
    ("shifted_exponential.shift", "cluster.compute.shift", {}, True),
    ("shifted_exponential.rate", "cluster.compute.rate", {}, False),
    ("exponential.rate", "cluster.compute.rate",
     {"cluster.compute": _distribution("exponential", rate=1.0)}, False),
    ("deterministic.value", "cluster.compute.value",
     {"cluster.compute": _distribution("deterministic", value=1.0)}, True),
    ("pareto.scale", "cluster.compute.scale",
     {"cluster.compute": _distribution("pareto", scale=1.0, alpha=2.0)}, False),
    ("pareto.alpha", "cluster.compute.alpha",
     {"cluster.compute": _distribution("pareto", scale=1.0, alpha=2.0)}, False),
    ("weibull.scale", "cluster.compute.scale",
     {"cluster.compute": _distribution("weibull", scale=1.0, shape=1.5)}, False),
    ("weibull.shape", "cluster.compute.shape",
     {"cluster.compute": _distribution("weibull", scale=1.0, shape=1.5)}, False),
    ("lognormal.sigma", "cluster.compute.sigma",
     {"cluster.compute": _distribution("lognormal", mu=0.0, sigma=1.0)}, False),
    ("gamma.shape", "cluster.compute.shape",
     {"cluster.compute": _distribution("gamma", shape=2.0, scale=1.0)}, False),
    ("gamma.scale", "cluster.compute.scale",
     {"cluster.compute": _distribution("gamma", shape=2.0, scale=1.0)}, False),
    ("bimodal.p_slow", "cluster.compute.p_slow",
     {"cluster.compute": _distribution("bimodal", p_slow=0.2,
                                       fast=_distribution("exponential", rate=2.0),
                                       slow=_distribution("exponential", rate=0.2))}, True),
    ("bimodal.slow.rate", "cluster.compute.slow.rate",
     {"cluster.compute": _distribution("bimodal", p_slow=0.2,
                                       fast=_distribution("exponential", rate=2.0),
                                       slow=_distribution("exponential", rate=0.2))}, False),
    ("failures.prob", "cluster.failures.prob", {}, True),
    ("failures.crash_rate", "cluster.failures.crash_rate", {}, True),
    ("failures.detect_timeout", "cluster.failures.detect_timeout",
     {"cluster.failures.crash_rate": 0.1}, True),
    ("network.latency", "cluster.network.latency", {}, True),
    ("network.time_per_float", "cluster.network.time_per_float", {}, True),
    ("partial_gc.deadline", "schemes.3.deadline", {}, False),
    ("original_gc.deadline", "schemes.2.deadline", {"schemes.2.mode": "approximate"}, False),
    ("fastest_k.fraction", "schemes.1.fraction", {"schemes.1.k": DELETE}, False),
]  # fmt: skip

#: Every integer parameter: (case name, dotted key, config, smallest valid value).
INT_KEYS: list[tuple[str, str, dict[str, Any], int]] = [
    ("trials", "trials", {}, 1),
    ("seed", "seed", {}, 0),
    ("workers", "cluster.workers", {}, 1),
    ("chunks", "data.chunks", {"schemes": SCHEMES_ANY_TIE}, 1),
    ("dim", "data.dim", {}, 1),
    ("events_trials", "output.events_trials", {}, 0),
    ("original_gc.load", "schemes.2.load", {}, 1),
    ("partial_gc.ell", "schemes.3.ell", {}, 1),
    ("fastest_k.k", "schemes.1.k", {}, 1),
    ("original_gc.candidates", "schemes.2.candidates", {}, 1),
    ("frc.load", "schemes.0.load", {"schemes": [{"protocol": "frc", "load": 2}]}, 1),
    ("failures.workers item", "cluster.failures.workers.0", {"cluster.failures.workers": [0]}, 0),
]  # fmt: skip

#: Every choice (Literal) key: (case name, dotted key, config).
CHOICE_KEYS: list[tuple[str, str, dict[str, Any]]] = [
    ("engine", "engine", {}),
    ("compute.dist", "cluster.compute.dist", {}),
    ("compute.per", "cluster.compute.per", {}),
    ("network.ps_ingress", "cluster.network.ps_ingress", {}),
    ("data.gradients", "data.gradients", {}),
    ("output.decode_cond", "output.decode_cond", {}),
    ("scheme protocol", "schemes.0.protocol", {}),
    ("partial_gc.mode", "schemes.3.mode", {}),
    ("partial_gc.assignment", "schemes.3.assignment", {}),
    ("original_gc.construction", "schemes.2.construction", {}),
    ("original_gc.points", "schemes.2.points", {"schemes.2.ell": 2}),
]


def _key_cases() -> list[Case]:
    """Each config key with values of the wrong type, sign or size: all clean errors."""
    cases = []
    for position, (name, key, base, zero_ok) in enumerate(FLOAT_KEYS):
        bad: dict[str, Any] = {".nan": NAN, ".inf": INF, "-.inf": -INF, "-1": -1.0,
                               "a string": "1.0"}  # fmt: skip
        if position < 4:  # the wrong kinds of value, on a few keys
            bad.update({"null": None, "a list": [1.0], "a mapping": {"value": 1.0}, "true": True})
        if not zero_ok:
            bad["0"] = 0.0
        if key.endswith(("p_slow", "prob")):
            bad["1.5"] = 1.5
        if key.endswith("fraction"):
            bad["1.5"] = 1.5
        for label, value in bad.items():
            changes = {**base, key: value}
            cases.append(Case(f"{name} = {label}", RUN, config=config(changes), names=key))
    for position, (name, key, base, smallest) in enumerate(INT_KEYS):
        bad = {"below the smallest": smallest - 1, "1.5": 1.5, "a string": "6", "true": True,
               ".nan": NAN, "10**30": 10**30}  # fmt: skip
        if smallest == 0:
            bad["below the smallest"] = -1
        if name in ("seed", "events_trials"):
            del bad["10**30"]  # any seed is a seed; traces are bounded by the trials
        if position < 3:
            bad.update({"null": None, ".inf": INF, "a list": [6]})
        for label, value in bad.items():
            case = Case(f"{name} = {label}", RUN, config=config({**base, key: value}), names=key)
            cases.append(case)
    for name, key, base in CHOICE_KEYS:
        for label, value in {"unknown": "nosuch", "a number": 1, "null": None}.items():
            if key == "output.decode_cond" and label == "unknown":
                value = "yes"
            if key == "schemes.2.construction" and value is None:
                continue  # null is the default (chosen by ell)
            case = Case(f"{name} = {label}", RUN, config=config({**base, key: value}), names=key)
            cases.append(case)
    mappings = ["cluster", "cluster.compute", "cluster.failures", "cluster.network", "data",
                "output", "schemes.2"]  # fmt: skip
    for key in mappings:
        for label, value in {"a list": [1, 2], "a string": "x", "a number": 3}.items():
            cases.append(Case(f"{key} is {label}", RUN, config=config({key: value}), names=key))
    for key in ["cluster", "cluster.compute", "cluster.compute.rate", "schemes", "trials",
                "cluster.workers", "schemes.2.load"]:  # fmt: skip
        cases.append(Case(f"{key} missing", RUN, config=config({key: DELETE}), names=key))
    for key in ["", "cluster.", "cluster.compute.", "cluster.failures.", "cluster.network.",
                "data.", "output.", "schemes.3."]:  # fmt: skip
        cases.append(
            Case(f"unknown key {key}extra", RUN, config=config({key + "extra": 1}), names="extra")
        )
    cases += [
        Case(
            "typo: cluster.worker",
            RUN,
            config=config({"cluster.worker": 6, "cluster.workers": DELETE}),
        ),
        Case("schemes empty", RUN, config=config({"schemes": []})),
        Case("schemes a mapping", RUN, config=config({"schemes": {"protocol": "uncoded"}})),
        Case("scheme a bare string", RUN, config=config({"schemes": ["uncoded"]})),
        Case("scheme an empty mapping", RUN, config=config({"schemes": [{}]})),
        Case("scheme null", RUN, config=config({"schemes": [None]})),
        Case("slowdown a mapping", RUN, config=config({"cluster.slowdown": {"0": 2.0}})),
        Case("slowdown too short", RUN, config=config({"cluster.slowdown": [1.0, 2.0]})),
        Case("slowdown with a zero", RUN, config=config({"cluster.slowdown": [0.0] + [1.0] * 5})),
        Case(
            "slowdown with a negative", RUN, config=config({"cluster.slowdown": [-1.0] + [1.0] * 5})
        ),
        Case("slowdown with .nan", RUN, config=config({"cluster.slowdown": [NAN] + [1.0] * 5})),
        Case("slowdown of strings", RUN, config=config({"cluster.slowdown": ["fast"] * 6})),
        Case(
            "failures.workers out of range", RUN, config=config({"cluster.failures.workers": [6]})
        ),
        Case("failures.workers a number", RUN, config=config({"cluster.failures.workers": 2})),
        Case(
            "bimodal without slow",
            RUN,
            config=config(
                {
                    "cluster.compute": _distribution(
                        "bimodal", p_slow=0.2, fast=_distribution("exponential", rate=1.0)
                    )
                }
            ),
        ),
        Case(
            "bimodal with per inside",
            RUN,
            config=config(
                {
                    "cluster.compute": _distribution(
                        "bimodal",
                        p_slow=0.2,
                        fast=_distribution("exponential", rate=1.0, per="chunk"),
                        slow=_distribution("exponential", rate=0.1),
                    )
                }
            ),
        ),
        Case(
            "bimodal nested .nan",
            RUN,
            config=config(
                {
                    "cluster.compute": _distribution(
                        "bimodal",
                        p_slow=0.2,
                        fast=_distribution("exponential", rate=1.0),
                        slow=_distribution("lognormal", mu=NAN, sigma=1.0),
                    )
                }
            ),
        ),
        Case("distribution without dist", RUN, config=config({"cluster.compute.dist": DELETE})),
        Case("parameter of another distribution", RUN, config=config({"cluster.compute.mu": 1.0})),
    ]
    return cases


def _semantic_cases() -> list[Case]:
    """Values of the right type that do not fit together."""
    return [
        Case("load > workers", RUN, config=config({"schemes.2.load": 7})),
        Case("ell > load", RUN, config=config({"schemes.3.ell": 4})),
        Case("k > workers", RUN, config=config({"schemes.1.k": 7})),
        Case("both k and fraction", RUN, config=config({"schemes.1.fraction": 0.5})),
        Case("neither k nor fraction", RUN, config=config({"schemes.1.k": DELETE})),
        Case(
            "frc load not dividing workers",
            RUN,
            config=config({"schemes": [{"protocol": "frc", "load": 4}]}),
        ),
        Case("coded scheme with chunks != workers", RUN, config=config({"data.chunks": 7})),
        Case(
            "uncoded with chunks < workers",
            RUN,
            config=config({"data.chunks": 3, "schemes": [{"protocol": "uncoded"}]}),
        ),
        Case("approximate without deadline", RUN, config=config({"schemes.3.deadline": DELETE})),
        Case("exact with a deadline", RUN, config=config({"schemes.3.mode": "exact"})),
        Case(
            "generic construction with ell 2",
            RUN,
            config=config({"schemes.2.construction": "generic", "schemes.2.ell": 2}),
        ),
        Case(
            "random construction on a graph assignment",
            RUN,
            config=config({"schemes.2.construction": "random", "schemes.2.assignment": "graph"}),
        ),
        Case(
            "explicit assignment without a file",
            RUN,
            config=config({"schemes.3.assignment": "explicit"}),
        ),
        Case(
            "assignment_file with cyclic",
            RUN,
            config=config({"schemes.3.assignment_file": "a.txt"}),
            files={"a.txt": "0 1 2\n"},
        ),
        Case(
            "duplicate labels",
            RUN,
            config=config({"schemes.0.label": "same", "schemes.1.label": "same"}),
        ),
        Case(
            "engine fast with crashes",
            RUN,
            config=config({"engine": "fast", "cluster.failures.crash_rate": 0.1}),
        ),
        Case(
            "engine fast with a shared link",
            RUN,
            config=config({"engine": "fast", "cluster.network.ps_ingress": "shared"}),
        ),
        Case("label a number", RUN, config=config({"schemes.0.label": 7})),
        Case("empty config", RUN, config=""),
        Case("config of comments only", RUN, config="# nothing here\n"),
        Case("config a list", RUN, config="- trials: 4\n"),
        Case("config a scalar", RUN, config="42\n"),
        Case("config with tabs", RUN, config="trials:\t4\ncluster:\n\tworkers: 6\n"),
        Case("unclosed flow mapping", RUN, config=text() + "extra: {a: 1\n"),
        Case(
            "python object tag",
            RUN,
            config=text() + "extra: !!python/object/apply:os.system ['touch pwned']\n",
        ),
        Case(
            "python name tag in a value",
            RUN,
            config=text().replace("name: base", "name: !!python/name:os.system"),
        ),
        Case("trials a date", RUN, config=text().replace("trials: 4", "trials: 2024-01-01")),
        Case(
            "trials a binary blob", RUN, config=text().replace("trials: 4", "trials: !!binary AAAA")
        ),
        Case("trials a set", RUN, config=text().replace("trials: 4", "trials: !!set {4: null}")),
        Case("NUL byte inside the YAML", RUN, config=text().replace("name: base", "name: ba\0se")),
        Case("config 64 MiB of comment", RUN, setup=write(CONFIG, "#" * (64 << 20) + "\n")),
    ]


def _file_cases() -> list[Case]:
    """Files a config points at, and config paths, that are not what they should be."""
    empirical = {"cluster.compute": {"dist": "empirical", "file": "times.csv",
                                     "column": "seconds"}}  # fmt: skip

    def emp(relative: str = "times.csv", column: str = "seconds") -> dict:
        return config({"cluster.compute": {"dist": "empirical", "file": relative,
                                           "column": column}})  # fmt: skip

    explicit = {"schemes.3.assignment": "explicit", "schemes.3.assignment_file": "asg.txt"}
    cases = [
        Case("empirical file missing", RUN, config=config(empirical)),
        Case("empirical file empty", RUN, config=config(empirical), files={"times.csv": ""}),
        Case(
            "empirical header only", RUN, config=config(empirical), files={"times.csv": "seconds\n"}
        ),
        Case(
            "empirical NaN values",
            RUN,
            config=config(empirical),
            files={"times.csv": "seconds\n1.0\nnan\n2.0\n"},
        ),
        Case(
            "empirical inf values",
            RUN,
            config=config(empirical),
            files={"times.csv": "seconds\n1.0\ninf\n2.0\n"},
        ),
        Case(
            "empirical negative values",
            RUN,
            config=config(empirical),
            files={"times.csv": "seconds\n1.0\n-2.0\n"},
        ),
        Case(
            "empirical not numeric",
            RUN,
            config=config(empirical),
            files={"times.csv": "seconds\nfast\nslow\n"},
        ),
        Case(
            "empirical column missing",
            RUN,
            config=config(empirical),
            files={"times.csv": "other\n1.0\n"},
        ),
        Case(
            "empirical file is binary",
            RUN,
            config=config(empirical),
            files={"times.csv": bytes(range(256))},
        ),
        Case(
            "empirical parquet is garbage",
            RUN,
            config=emp("times.parquet"),
            files={"times.parquet": b"PAR1 not really"},
        ),
        Case("empirical file is a directory", RUN, config=emp("times.d"), files={"times.d/x": "1"}),
        Case("empirical file is /dev/zero", RUN, config=emp("/dev/zero")),
        Case("empirical file is a FIFO", RUN, config=emp("pipe.csv"), setup=fifo("pipe.csv")),
        Case("empirical file is /etc/hostname", RUN, config=emp("/etc/hostname")),
        Case("explicit assignment file missing", RUN, config=config(explicit)),
        Case("explicit assignment file empty", RUN, config=config(explicit), files={"asg.txt": ""}),
        Case(
            "explicit assignment not numbers",
            RUN,
            config=config(explicit),
            files={"asg.txt": "a b c\n" * 6},
        ),
        Case(
            "explicit assignment wrong shape",
            RUN,
            config=config(explicit),
            files={"asg.txt": "0 1\n"},
        ),
        Case(
            "explicit assignment chunk out of range",
            RUN,
            config=config(explicit),
            files={"asg.txt": "0 1 99\n" * 6},
        ),
        Case(
            "explicit assignment is binary",
            RUN,
            config=config(explicit),
            files={"asg.txt": bytes(range(256))},
        ),
        Case(
            "explicit assignment file is /dev/zero",
            RUN,
            config=config({**explicit, "schemes.3.assignment_file": "/dev/zero"}),
        ),
        Case(
            "explicit assignment file is a FIFO",
            RUN,
            config=config({**explicit, "schemes.3.assignment_file": "pipe.txt"}),
            setup=fifo("pipe.txt"),
        ),
        Case(
            "explicit assignment file is a directory",
            RUN,
            config=config({**explicit, "schemes.3.assignment_file": "adir"}),
            files={"adir/x": "1"},
        ),
        Case(
            "graph edge list with a vertex out of range",
            RUN,
            config=config({"schemes.3.assignment": "graph", "schemes.3.assignment_file": "g.txt"}),
            files={"g.txt": "0 1\n1 2\n2 3\n3 4\n4 5\n5 99\n"},
        ),
        Case("config missing", ("run", "nosuch.yaml"), config=None),
        Case("config is a directory", ("run", "cdir"), files={"cdir/x": "1"}),
        Case("config is /dev/zero", ("run", "/dev/zero")),
        Case("config is /dev/null", ("run", "/dev/null")),
        Case("config is a FIFO", ("run", "pipe.yaml"), setup=fifo("pipe.yaml")),
        Case(
            "config is a dangling symlink",
            ("run", "link.yaml"),
            setup=symlink("link.yaml", "{work}/nowhere.yaml"),
        ),
        Case(
            "config is a symlink loop",
            ("run", "loop.yaml"),
            setup=chain(
                symlink("loop.yaml", "{work}/loop2.yaml"), symlink("loop2.yaml", "{work}/loop.yaml")
            ),
        ),
        Case("validate a missing config", ("validate", "nosuch.yaml")),
        Case("sweep a missing config", ("sweep", "nosuch.yaml", "--grid", "seed=1,2")),
    ]
    return cases


def _argument_cases() -> list[Case]:
    """Bad arguments of every verb, and valid edge cases that must work."""
    cases = [
        Case("--set without =", (*RUN, "--set", "trials")),
        Case("--set with an empty key", (*RUN, "--set", "=4")),
        Case("--set a..b", (*RUN, "--set", "cluster..workers=4")),
        Case("--set invalid YAML", (*RUN, "--set", "trials=[")),
        Case("--set list index out of range", (*RUN, "--set", "schemes.9.ell=2")),
        Case("--set negative index", (*RUN, "--set", "schemes.-1.ell=2")),
        Case("--set into a scalar", (*RUN, "--set", "trials.x=1")),
        Case("--set wildcard matches nothing", (*RUN, "--set", "schemes.*.nosuch=1")),
        Case("--set wildcard as the last part", (*RUN, "--set", "schemes.*=1")),
        Case("--set trials to nothing", (*RUN, "--set", "trials=")),
        Case("--set cluster to nothing", (*RUN, "--set", "cluster=")),
        Case("--set trials=10**12 (text)", (*RUN, "--set", "trials=10**12")),
        Case("--set a python tag", (*RUN, "--set", "name=!!python/name:os.system")),
        Case("--set appends an invalid scheme", (*RUN, "--set", "schemes.4={protocol: nosuch}")),
        Case("--jobs 0", (*RUN, "--jobs", "0")),
        Case("--jobs -1", (*RUN, "--jobs", "-1")),
        Case("--jobs x", (*RUN, "--jobs", "x")),
        Case("run without a config", ("run",)),
        Case("run with an unknown option", (*RUN, "--nosuch")),
        Case("unknown command", ("nosuch",)),
        Case("--out an existing file", (*RUN, "--out", "afile"), files={"afile": "keep\n"}),
        Case("--out an existing run, no --force", (*RUN, "--out", "out"), setup=make_run("out")),
        Case("sweep without --grid", ("sweep", "{cfg}")),
        Case("--grid without =", ("sweep", "{cfg}", "--grid", "seed")),
        Case("--grid with an empty value", ("sweep", "{cfg}", "--grid", "seed=1,,2")),
        Case("--grid with nothing after =", ("sweep", "{cfg}", "--grid", "seed=")),
        Case("--grid with a bad key", ("sweep", "{cfg}", "--grid", ".seed=1,2")),
        Case("--grid invalid YAML", ("sweep", "{cfg}", "--grid", "seed=[1,2")),
        Case("--grid repeats a value", ("sweep", "{cfg}", "--grid", "seed=1,1")),
        Case(
            "--grid key given twice", ("sweep", "{cfg}", "--grid", "seed=1,2", "--grid", "seed=3,4")
        ),
        Case(
            "--zip with unequal grids",
            ("sweep", "{cfg}", "--zip", "--grid", "seed=1,2", "--grid", "trials=1,2,3"),
        ),
        Case("--grid over an unknown key", ("sweep", "{cfg}", "--grid", "nosuch=1,2")),
        Case("--grid with an invalid point", ("sweep", "{cfg}", "--grid", "cluster.workers=6,0")),
        Case(
            "--grid with a .nan point",
            ("sweep", "{cfg}", "--grid", "cluster.compute.shift=1.0,.nan"),
        ),
        Case("--grid trials=10**12", ("sweep", "{cfg}", "--grid", "trials=1,1000000000000")),
        Case("--retries -1", (*SWEEP, "--retries", "-1")),
        Case("sweep --jobs 0", ("sweep", "{cfg}", "--grid", "seed=1,2", "--jobs", "0")),
        Case(
            "sweep over a different sweep's directory",
            ("sweep", "{cfg}", "--grid", "seed=3,4", "--jobs", "1", "--out", "sw"),
            setup=make_sweep("sw"),
        ),
        Case("plot a missing directory", ("plot", "nosuch")),
        Case("plot a file", ("plot", "afile"), files={"afile": "x"}),
        Case(
            "plot an empty directory",
            ("plot", "empty"),
            setup=lambda box: (box.work / "empty").mkdir(),
        ),
        Case(
            "plot --timelines nosuch",
            ("plot", "run1", "--timelines", "nosuch"),
            setup=make_run("run1"),
        ),
        Case(
            "plot --trial 15 with 10 traced trials",
            ("plot", "run1", "--trial", "15"),
            setup=make_run("run1", ["--set", "trials=20", "--set", "output.events_trials=10"]),
        ),
        Case("plot --trial -1", ("plot", "run1", "--trial", "-1"), setup=make_run("run1")),
        Case(
            "plot a run with a corrupt summary",
            ("plot", "run1"),
            setup=chain(make_run("run1"), write("run1/summary.parquet", b"garbage")),
        ),
        Case(
            "plot a run with a corrupt events file",
            ("plot", "run1"),
            setup=chain(make_run("run1"), write("run1/events.parquet", b"garbage")),
        ),
        Case(
            "plot a garbage sweep.json", ("plot", "sw"), setup=write("sw/sweep.json", "{not json")
        ),
        Case(
            "plot --out under a file",
            ("plot", "run1", "--out", "afile/figs"),
            files={"afile": "x"},
            setup=make_run("run1"),
        ),
        Case("trace a missing run", ("trace", "nosuch", "--trial", "0")),
        Case("trace without --trial", ("trace", "run1"), setup=make_run("run1")),
        Case("trace an untraced trial", ("trace", "run1", "--trial", "3"), setup=make_run("run1")),
        Case(
            "trace --scheme nosuch",
            ("trace", "run1", "--trial", "0", "--scheme", "nosuch"),
            setup=make_run("run1"),
        ),
        Case(
            "trace --out under a file",
            ("trace", "run1", "--trial", "0", "--out", "afile/t.json"),
            files={"afile": "x"},
            setup=make_run("run1"),
        ),
        Case(
            "trace --out a directory",
            ("trace", "run1", "--trial", "0", "--out", "adir"),
            files={"adir/x": "keep"},
            setup=make_run("run1"),
        ),
        Case(
            "trace a run with corrupt events",
            ("trace", "run1", "--trial", "0"),
            setup=chain(make_run("run1"), write("run1/events.parquet", b"garbage")),
        ),
        Case("ordering --workers 0", ("ordering", "--workers", "0", "--load", "1")),
        Case("ordering --workers x", ("ordering", "--workers", "x", "--load", "1")),
        Case("ordering --workers 10**30", ("ordering", "--workers", str(10**30), "--load", "2")),
        Case("ordering --load 0", ("ordering", "--workers", "6", "--load", "0")),
        Case("ordering --load > --workers", ("ordering", "--workers", "6", "--load", "7")),
        Case("ordering --ell 0", ("ordering", "--workers", "6", "--load", "3", "--ell", "0")),
        Case(
            "ordering --ell > --load", ("ordering", "--workers", "6", "--load", "3", "--ell", "4")
        ),
        Case(
            "ordering --assignment nosuch",
            ("ordering", "--workers", "6", "--load", "3", "--assignment", "nosuch"),
        ),
        Case(
            "ordering --ordering nosuch",
            ("ordering", "--workers", "6", "--load", "3", "--ordering", "nosuch"),
        ),
        Case("ordering --seed -1", ("ordering", "--workers", "6", "--load", "3", "--seed", "-1")),
        Case(
            "ordering frc load not dividing",
            ("ordering", "--workers", "7", "--load", "3", "--assignment", "frc"),
        ),
        Case(
            "ordering impossible graph",
            ("ordering", "--workers", "5", "--load", "2", "--assignment", "graph"),
        ),
        Case("ordering without --load", ("ordering", "--workers", "6")),
        Case("bench --sizes garbage", ("bench", "--quick", "--sizes", "x")),
        Case("bench --sizes load 0", ("bench", "--quick", "--sizes", "20:0")),
        Case("bench --sizes three fields", ("bench", "--quick", "--sizes", "20:4:3")),
        Case("bench --repeats 0", ("bench", "--quick", "--repeats", "0")),
    ]
    return cases


def _valid_cases() -> list[Case]:
    """Valid edge cases: each must run (exit 0) with sane outputs."""
    ok = (OK,)
    return [
        Case("the base config", RUN, expect=ok),
        Case("validate the base config", VALIDATE, expect=ok),
        Case("one trial", RUN, expect=ok, config=config({"trials": 1})),
        Case(
            "one worker, uncoded",
            RUN,
            expect=ok,
            config=config({"cluster.workers": 1, "schemes": [{"protocol": "uncoded"}]}),
        ),
        Case("every worker down", RUN, expect=ok, config=config({"cluster.failures.prob": 1.0})),
        Case(
            "fixed failures of every worker",
            RUN,
            expect=ok,
            config=config({"cluster.failures.workers": [0, 1, 2, 3, 4, 5]}),
        ),
        Case(
            "no failures, no network",
            RUN,
            expect=ok,
            config=config(
                {
                    "cluster.failures.prob": 0.0,
                    "cluster.network.latency": 0.0,
                    "cluster.network.time_per_float": 0.0,
                }
            ),
        ),
        Case(
            "deterministic times (ties)",
            RUN,
            expect=ok,
            config=config({"cluster.compute": _distribution("deterministic", value=1.0)}),
        ),
        Case(
            "deterministic time 0",
            RUN,
            expect=ok,
            config=config({"cluster.compute": _distribution("deterministic", value=0.0)}),
        ),
        Case(
            "bimodal p_slow 0",
            RUN,
            expect=ok,
            config=config(
                {
                    "cluster.compute": _distribution(
                        "bimodal",
                        p_slow=0.0,
                        fast=_distribution("exponential", rate=2.0),
                        slow=_distribution("exponential", rate=0.1),
                    )
                }
            ),
        ),
        Case(
            "bimodal p_slow 1, per chunk",
            RUN,
            expect=ok,
            config=config(
                {
                    "cluster.compute": _distribution(
                        "bimodal",
                        p_slow=1.0,
                        per="chunk",
                        fast=_distribution("exponential", rate=2.0),
                        slow=_distribution("exponential", rate=0.1),
                    )
                }
            ),
        ),
        Case(
            "crashes with a detect timeout",
            RUN,
            expect=ok,
            config=config(
                {"cluster.failures.crash_rate": 0.5, "cluster.failures.detect_timeout": 0.2}
            ),
        ),
        Case(
            "shared PS link",
            RUN,
            expect=ok,
            config=config({"cluster.network.ps_ingress": "shared"}),
        ),
        Case("gradients none", RUN, expect=ok, config=config({"data.gradients": "none"})),
        Case("dim 1", RUN, expect=ok, config=config({"data.dim": 1})),
        Case("no traces", RUN, expect=ok, config=config({"output.events_trials": 0})),
        Case(
            "events_trials far above trials",
            RUN,
            expect=ok,
            config=config({"output.events_trials": 10**12}),
        ),
        Case("decode_cond off", RUN, expect=ok, config=config({"output.decode_cond": False})),
        Case("engine des", RUN, expect=ok, config=config({"engine": "des"})),
        Case("engine fast", RUN, expect=ok, config=config({"engine": "fast"})),
        Case(
            "every protocol",
            RUN,
            expect=ok,
            config=config(
                {
                    "schemes": [
                        {"protocol": "uncoded"},
                        {"protocol": "fastest_k", "fraction": 0.5},
                        {"protocol": "original_gc", "load": 3, "ell": 2},
                        {"protocol": "partial_gc", "load": 3, "ell": 3},
                        {"protocol": "frc", "load": 3},
                        {"protocol": "multi_message", "load": 2},
                    ]
                }
            ),
        ),
        Case(
            "explicit ordering lists",
            RUN,
            expect=ok,
            config=config(
                {"schemes.3.ordering": [[(w + i) % 6 for i in (2, 1, 0)] for w in range(6)]}
            ),
        ),
        Case("seed 2**64", RUN, expect=ok, config=config({"seed": 2**64})),
        Case("unicode name", RUN, expect=ok, config=config({"name": "r\u00e9sum\u00e9 \u2713"})),
        Case("name with a space and a dash", RUN, expect=ok, config=config({"name": "-my run"})),
        Case("YAML with a BOM", RUN, expect=ok, config=b"\xef\xbb\xbf" + text().encode()),
        Case(
            "YAML anchors used sensibly",
            RUN,
            expect=ok,
            config=text().split("schemes:")[0] + "schemes:\n- &coded {protocol: partial_gc, "
            "load: 3}\n- {<<: *coded, label: two, ell: 2}\n",
        ),
        Case(
            "--set appends a scheme",
            (*RUN, "--set", "schemes.4={protocol: frc, load: 2}"),
            expect=ok,
        ),
        Case(
            "--set every ell",
            (*RUN, "--set", "schemes.*.ell=2", "--set", "schemes.2.construction=polynomial"),
            expect=ok,
        ),
        Case("--out a fresh nested directory", (*RUN, "--out", "deep/er/out"), expect=ok),
        Case(
            "--out an empty existing directory",
            (*RUN, "--out", "empty"),
            expect=ok,
            setup=lambda box: (box.work / "empty").mkdir(),
        ),
        Case(
            "--force over a run directory",
            (*RUN, "--out", "out", "--force"),
            expect=ok,
            setup=make_run("out"),
            replaces=run_files("out"),
            check=whole_run("out"),
        ),
        Case("run twice into results/", RUN, expect=ok, setup=make_run("results/base/first")),
        Case("a sweep", SWEEP, expect=ok),
        Case(
            "a sweep resumed",
            (*SWEEP, "--out", "sw"),
            expect=ok,
            setup=make_sweep("sw"),
            replaces=("sw/sweep.json", "sw/summary.parquet"),
        ),
        Case(
            "a sweep with --force",
            (*SWEEP, "--out", "sw", "--force"),
            expect=ok,
            setup=make_sweep("sw"),
            replaces=("sw",),
        ),
        Case(
            "plot one timeline",
            ("plot", "run1", "--timelines", "uncoded"),
            expect=ok,
            setup=make_run("run1"),
            check=has_files("run1/figures"),
        ),
        Case(
            "trace a trial",
            ("trace", "run1", "--trial", "1"),
            expect=ok,
            setup=make_run("run1"),
            check=has_files("run1/trace_trial1.json"),
        ),
        Case(
            "ordering",
            ("ordering", "--workers", "12", "--load", "3"),
            expect=ok,
            check=stdout_has("Q_max"),
        ),
        Case(
            "ordering optimal --json",
            ("ordering", "--workers", "12", "--load", "4", "--ordering", "optimal", "--json"),
            expect=ok,
            check=stdout_has('"q_max"'),
        ),
        Case("--version", ("--version",), expect=ok),
        Case("--help", ("--help",), expect=ok),
    ]


#: Verbs whose valid runs are slow on a busy machine (a process pool is spawned, or figures
#: drawn: seconds of CPU each): their cases get these timeouts instead of TIMEOUT, the longer
#: one where the command may succeed (an error may still come after the pool started).
SLOW_TIMEOUT = 120.0
SLOW_ERROR_TIMEOUT = 45.0


#: What the clean error of an issue case must name: the key or option to change.
NAMES = {
    "lognormal.mu .nan": "mu",
    "lognormal.mu .nan, fastest_k only": "mu",
    "lognormal.mu .nan (validate)": "mu",
    "lognormal.mu .inf": "mu",
    "lognormal.mu -.inf": "mu",
    "--set cluster.compute.shift=.nan": "shift",
    ".inf shift": "shift",
    ".inf pareto scale": "scale",
    ".inf weibull scale": "scale",
    ".inf gamma scale": "scale",
    ".inf deterministic value": "value",
    ".inf latency": "latency",
    ".inf time_per_float": "time_per_float",
    ".inf slowdown": "slowdown",
    "trials 10**12": "trials",
    "workers 10**7": "workers",
    "workers 10**7, uncoded only": "workers",
    "chunks 10**9, uncoded only": "chunks",
    "candidates 10**9": "candidates",
    "ordering --workers 10000000": "--workers",
    "dim 10**12": "dim",
    "dim 10**9 with gradients": "dim",
    "name with a NUL byte": "name",
    "name of 5,000 characters": "name",
    "name with a NUL byte (sweep)": "name",
    "name of 5,000 characters (sweep)": "name",
    "--out under a file": "--out",
    "--out under a file (sweep)": "--out",
    "--out in /proc": "--out",
    "--out in /proc/self": "--out",
    "--out in read-only /sys": "--out",
    "--out in read-only /sys/kernel": "--out",
    "sweep --out in read-only /sys": "--out",
    "--out of 5,000 characters": "--out",
    "run --dask 'not a url'": "--dask",
    "sweep --dask 'not a url'": "--dask",
    "garbage DASK_SCHEDULER_ADDRESS": "DASK_SCHEDULER_ADDRESS",
    "duplicate top-level key": "trials",
    "duplicate nested key": "workers",
    "duplicate key in a scheme": "load",
    "duplicate key in a distribution": "rate",
    "duplicate key in a flow mapping": "dim",
    "force over a directory of documents": "--out",
    "force over the working directory ($PWD)": "--out",
    "force over results/ holding other runs": "--out",
    "force over a directory with a foreign manifest.json": "--out",
}


def build_cases() -> list[Case]:
    cases = _issue_cases() + _key_cases() + _semantic_cases() + _file_cases()
    cases += _argument_cases() + _valid_cases()
    for case in cases:
        if case.id in NAMES:
            case.names = NAMES[case.id]
        elif case.id.startswith("ordering: "):
            case.names = "ordering"
        slow = case.argv[:1] in (("sweep",), ("plot",)) or "--jobs" in case.argv[:-1]
        if slow and case.timeout == TIMEOUT:
            case.timeout = SLOW_TIMEOUT if OK in case.expect else SLOW_ERROR_TIMEOUT
    ids = [case.id for case in cases]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"duplicate case ids: {sorted(duplicates)}")
    return cases


CASES = build_cases()
