"""Replacing results safely: only what gcsim wrote, one writer at a time, atomically.

``--force`` is a promise to replace *results*, never a licence to delete a directory: a user who
points ``--out`` at their home, their thesis or the directory holding the config must get a
refusal, not an empty directory. So a directory is replaced only when it is recognisably
gcsim's (a run directory with its manifest, or a sweep directory with its ``sweep.json``) and
holds nothing gcsim did not write. Two processes writing one target would tear it, so writers
take an exclusive lock on a hidden file beside the target. The swap itself is one
``renameat2(RENAME_EXCHANGE)`` where the kernel offers it, so at every instant the target holds
either the old results or the new ones; elsewhere it is two renames, and a kill between them is
repaired by the next run (``scratch.recover_retired``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from .errors import ConfigError
from .paths import short_path
from .scratch import scratch_path

#: What a run directory may hold: the five files ``write_run`` writes, the figures ``gcsim
#: plot`` writes, the traces ``gcsim trace`` writes (and a real run's ``compare/``). "May": a
#: run directory of an older gcsim, without ``schemes.parquet``, is still recognised and
#: replaceable.
RUN_FILES = frozenset(
    {
        "config.yaml",
        "manifest.json",
        "summary.parquet",
        "events.parquet",
        "schemes.parquet",
        "training.parquet",
    }
)
#: What a sweep directory may hold (``schemes.parquet``: the combined scheme tables).
SWEEP_FILES = frozenset(
    {"sweep.json", "summary.parquet", "schemes.parquet", "training.parquet", "points"}
)
#: What ``gcsim compare`` writes under a real run's ``compare/`` (``compare.write_comparison``).
COMPARE_FILES = frozenset({"pairs.csv", "table.csv", "delays.csv", "scatter.png", "cdf.png"})
#: What ``gcsim fit`` writes under a run's ``fit/`` (``fit.write_report``).
FIT_FILES = frozenset({"fit.png", "fits.csv"})
#: Sub-directories of a run directory that gcsim's own commands fill, and what they write.
OWN_SUBDIRS = {"compare": COMPARE_FILES, "fit": FIT_FILES}
_TRACE = re.compile(r"^trace_trial\d+\.json$")
_FIGURE = re.compile(r"^[^/]+\.(png|pdf)$")


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def kind_of(path: Path) -> str | None:
    """ "run" or "sweep" when ``path`` is a directory gcsim wrote (by its manifest or sweep.json),
    else None."""
    path = Path(path)
    manifest = _read_json(path / "manifest.json")
    if manifest is not None and "gcsim_version" in manifest and "files" in manifest:
        return "run"
    spec = _read_json(path / "sweep.json")
    if spec is not None and isinstance(spec.get("points"), list):
        return "sweep"
    return None


def foreign_entries(path: Path, kind: str) -> list[str]:
    """Entries of a ``kind`` directory that gcsim does not write there (sorted names)."""
    allowed = RUN_FILES if kind == "run" else SWEEP_FILES
    foreign = []
    for entry in Path(path).iterdir():
        name = entry.name
        if name in allowed or (kind == "run" and _TRACE.match(name)):
            continue
        if name == "figures" and entry.is_dir() and not entry.is_symlink():
            foreign += [f"figures/{f.name}" for f in entry.iterdir() if not _FIGURE.match(f.name)]
            continue
        if kind == "run" and name in OWN_SUBDIRS and entry.is_dir() and not entry.is_symlink():
            own = OWN_SUBDIRS[name]
            foreign += [f"{name}/{f.name}" for f in entry.iterdir() if f.name not in own]
            continue
        if kind == "sweep" and name.startswith(".") and name.endswith(".tmp"):
            continue  # the sweep's own staging files
        foreign.append(name)
    return sorted(foreign)


def replacement_problem(out: Path, force: bool, kind: str = "run") -> str | None:
    """Why ``out`` cannot receive a new ``kind`` directory, or None. An empty or missing
    directory always can; a non-empty one only with ``force`` and only when it is a ``kind``
    directory holding nothing but what gcsim wrote."""
    out = Path(out)
    name = short_path(str(out))
    if out.is_symlink():
        return f"{name} is a symbolic link; give the real directory or another --out"
    if not out.exists():
        return None
    if not out.is_dir():
        return f"{name} exists and is not a directory; choose another --out"
    try:
        empty = not any(out.iterdir())
    except OSError as exc:
        return f"cannot read {out}: {exc.strerror or exc}"
    if empty:
        return None
    found = kind_of(out)
    if not force:
        if found == kind:
            return (
                f"{name} already holds a {kind} directory; choose another --out or pass "
                "--force to replace it"
            )
        return f"{name} is not empty and holds no gcsim {kind}; choose another --out"
    if found != kind:
        what = f"a gcsim {found} directory" if found else "files gcsim did not write"
        return (
            f"{name} holds {what}; --force replaces only a {kind} directory, so nothing was "
            "deleted: choose another --out"
        )
    foreign = foreign_entries(out, kind)
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        return (
            f"{name} is a {kind} directory but also holds files gcsim did not write ({shown}); "
            "--force will not delete them: move them away or choose another --out"
        )
    return None


def check_replaceable(out: Path, force: bool, kind: str = "run") -> None:
    """``replacement_problem`` as a ConfigError naming --out."""
    problem = replacement_problem(out, force, kind)
    if problem:
        raise ConfigError([("--out", problem)])


# --------------------------------------------------------------------------------------------
# One writer per target

_HELD: dict[Path, int] = {}  # lock files this process holds -> nesting depth


def lock_path(target: Path) -> Path:
    target = Path(target)
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def target_lock(target: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``target`` (a hidden ``.<name>.lock`` beside it), or raise a
    ConfigError naming the process that holds it. Re-entrant within a process (``gcsim run``
    holds it for the whole run, ``write_run`` again to write). The parent must exist."""
    path = lock_path(target).absolute()
    if path in _HELD:
        _HELD[path] += 1
        try:
            yield
        finally:
            _HELD[path] -= 1
        return
    fd = _acquire(path, target)
    _HELD[path] = 1
    try:
        yield
    finally:
        del _HELD[path]
        with contextlib.suppress(OSError):
            if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                os.unlink(path)
        os.close(fd)


def _acquire(path: Path, target: Path) -> int:
    """Open and flock the lock file; retry when it was replaced meanwhile (a holder that
    finishes unlinks it, and a lock on an unlinked file would exclude nobody)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ConfigError(
                    [("--out", f"{path} is a symbolic link; remove it (gcsim never makes one)")]
                ) from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                [
                    (
                        "--out",
                        f"{target} is being written by another gcsim process (pid {holder}); "
                        "wait for it to finish or choose another --out",
                    )
                ]
            ) from None
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)


# --------------------------------------------------------------------------------------------
# The swap

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the kernel or filesystem
    cannot, so the caller falls back to two renames."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def swap_into_place(staging: Path, out: Path) -> None:
    """Put the complete directory ``staging`` at ``out``, replacing what is there. The old
    contents are removed only once the new ones are in place; a kill at any instant leaves
    either the old or the new results at ``out`` (or, on the two-rename fallback, the old ones
    in a hidden ``.<name>.old-...`` that the next run restores)."""
    if not out.exists():
        staging.rename(out)
        return
    if _exchange(staging, out):
        shutil.rmtree(staging)  # now the old results; swept by the next run if killed here
        return
    retired = scratch_path(out, "old")
    out.rename(retired)
    staging.rename(out)
    shutil.rmtree(retired)
