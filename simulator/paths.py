"""Directories a command creates, undone when it fails, and what a failed write tells the user.

A command that fails (a bad config found late, an unreachable Dask scheduler, a full disk) must
leave the filesystem as it found it: it removes the directories it created, when they are still
empty. A failure of the environment is reported as one line naming the path and the fix, never
as a traceback.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

_HINTS = {
    errno.ENOSPC: "the disk is full: free some space or choose another --out",
    errno.EDQUOT: "the disk quota is exceeded: free some space or choose another --out",
    errno.EROFS: "the filesystem is read-only: choose another --out",
    errno.EACCES: "permission denied: choose a directory you can write",
    errno.EPERM: "operation not permitted: choose a directory you can write",
    errno.ENOTDIR: "a parent of this path is a file, not a directory: choose another --out",
    errno.ENAMETOOLONG: "the path is too long: choose a shorter --out or name",
    errno.ENOENT: "a parent directory does not exist and cannot be made here",
    errno.EEXIST: "something already exists at this path: choose another --out",
    errno.ELOOP: "the path goes through a symbolic link loop: choose another --out",
}


def environment_problem(exc: OSError) -> str:
    """One line for an OSError: the path, what went wrong, and the fix."""
    where = exc.filename if exc.filename is not None else ""
    what = exc.strerror or type(exc).__name__
    hint = _HINTS.get(exc.errno or -1, "")
    line = f"cannot write {where}: {what}" if where else f"cannot write results: {what}"
    return f"{line} ({hint})" if hint else line


def make_dirs(path: Path) -> list[Path]:
    """``mkdir -p path``; return the directories it created, outermost first."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and not probe.is_symlink():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    created: list[Path] = []
    try:
        for directory in reversed(missing):
            os.mkdir(directory)
            created.append(directory)
    except BaseException:
        remove_if_empty(created)
        raise
    return created


def remove_if_empty(created: list[Path]) -> None:
    """Undo ``make_dirs``: remove the directories it created, innermost first, while empty."""
    for directory in reversed(created):
        try:
            os.rmdir(directory)
        except OSError:
            return
