"""Hidden scratch files beside a run directory, and sweeping up those of killed runs.

A run streams its summary and traces to hidden files beside its target and stages the run
directory under a hidden name; all are moved into place or removed when the run ends. A run
killed outright (SIGKILL, power loss) cannot remove them, and streamed files can be as large as
the run. Each name therefore says which host and process made it, so a later run can remove
those whose process is gone. Only this host's names are touched: on a shared filesystem another
machine's pid means nothing here. A retired run directory (``.{name}.old-...``, the previous
results while ``--force`` replaces them) is never swept: it may be the only copy left.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

#: Kinds of scratch that are safe to remove once their process is gone.
SWEPT_KINDS = ("events", "summary", "tmp")

_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
_NAME = re.compile(
    r"^\.(?P<target>.+)\.(?P<kind>[a-z]+)-(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)(\.parquet)?$"
)


def scratch_path(target: Path, kind: str, suffix: str = "") -> Path:
    """The hidden path of this process's ``kind`` scratch for ``target``."""
    target = Path(target)
    return target.parent / f".{target.name}.{kind}-{_HOST}-{os.getpid()}{suffix}"


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
