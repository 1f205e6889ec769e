"""Hidden scratch files beside a run directory, and sweeping up those of killed runs.

A run streams its summary and traces to hidden files beside its target and stages the run
directory under a hidden name; all are moved into place or removed when the run ends. A run
killed outright (SIGKILL, power loss) cannot remove them, and streamed files can be as large as
the run. Each name therefore says which host and process made it, so a later run can remove
those whose process is gone. Only this host's names are touched: on a shared filesystem another
machine's pid means nothing here. Each name also carries a random token, and files are created
exclusively (``create_exclusive``), so a name planted beforehand (a symlink in a shared ``/tmp``)
is never followed or overwritten.

A retired run directory (``.{name}.old-...``: the previous results while ``--force`` replaces
them without an atomic exchange) is never deleted while it may be the only copy:
``recover_retired`` puts it back when its run died before the new results were in place.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path
from typing import BinaryIO

#: Kinds of scratch that are safe to remove once their process is gone.
SWEPT_KINDS = ("events", "summary", "tmp")

_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
_NAME = re.compile(
    r"^\.(?P<target>.+)\.(?P<kind>[a-z]+)-(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)"
    r"(-(?P<token>[0-9a-f]+))?(\.parquet)?$"
)


def scratch_path(target: Path, kind: str, suffix: str = "") -> Path:
    """A fresh hidden path for this process's ``kind`` scratch for ``target`` (a new random
    token on every call: keep the path you are given)."""
    target = Path(target)
    token = os.urandom(4).hex()
    return target.parent / f".{target.name}.{kind}-{_HOST}-{os.getpid()}-{token}{suffix}"


def create_exclusive(path: Path) -> BinaryIO:
    """Open a new file for writing; fail if anything, a symbolic link included, is there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags, 0o644), "wb")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale(directory: Path) -> tuple[int, int]:
    """Remove the scratch in ``directory`` left by this host's processes that are gone; return
    (entries removed, bytes freed). Never raises: a scratch that vanishes or cannot be removed
    meanwhile is left to the next sweep."""
    removed = freed = 0
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return 0, 0
    for entry in entries:
        match = _NAME.match(entry.name)
        if match is None or match["kind"] not in SWEPT_KINDS or match["host"] != _HOST:
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or _alive(pid):
            continue
        try:
            if entry.is_dir():
                size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
                shutil.rmtree(entry)
            else:
                size = entry.stat().st_size
                entry.unlink()
        except OSError:
            continue
        removed += 1
        freed += size
    return removed, freed


def recover_retired(target: Path) -> list[str]:
    """Repair a ``--force`` replacement killed between its two renames (the fallback where the
    kernel cannot exchange directories atomically): a retired copy of ``target`` left by a dead
    process of this host is renamed back when ``target`` is missing, and removed when the new
    results are in place. Returns one line per repair, for the user."""
    target = Path(target)
    repairs = []
    try:
        entries = sorted(target.parent.iterdir())
    except OSError:
        return repairs
    for entry in entries:
        match = _NAME.match(entry.name)
        if match is None or match["kind"] != "old" or match["target"] != target.name:
            continue
        if match["host"] != _HOST or _alive(int(match["pid"])):
            continue
        try:
            if not target.exists():
                entry.rename(target)
                repairs.append(
                    f"restored the results of {target} that an interrupted --force "
                    f"had set aside in {entry.name}"
                )
            else:
                shutil.rmtree(entry)
                repairs.append(
                    f"removed {entry.name}, the previous results an interrupted "
                    f"--force had already replaced in {target}"
                )
        except OSError:
            continue
    return repairs
