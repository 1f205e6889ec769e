"""Scratch files of killed runs are swept up, and nothing else is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from simulator import scratch
from simulator.cli import cli
from simulator.scratch import scratch_path, sweep_stale

ROOT = Path(__file__).resolve().parents[1]


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_this_hosts_dead_scratch_is_removed(tmp_path):
    dead, host = dead_pid(), scratch._HOST
    stale_file = tmp_path / f".run-1.events-{host}-{dead}.parquet"
    stale_file.write_bytes(b"x" * 1000)
    stale_dir = tmp_path / f".run-1.tmp-{host}-{dead}"
    stale_dir.mkdir()
    (stale_dir / "summary.parquet").write_bytes(b"y" * 24)
    kept = [
        tmp_path / f".run-2.summary-{host}-{os.getpid()}.parquet",  # this process: running
        tmp_path / f".run-3.summary-{host}-{os.getppid()}.parquet",  # a live process
        tmp_path / f".run-4.events-otherhost-{dead}.parquet",  # another machine's pid
        tmp_path / f".run-5.old-{host}-{dead}",  # a retired run: maybe the only copy
        tmp_path / ".notes",  # not scratch at all
        tmp_path / "run-6",  # a run directory
    ]
    for path in kept:
        path.mkdir() if path.name.startswith(".run-5") or path.name == "run-6" else path.touch()
    assert sweep_stale(tmp_path) == (2, 1024)
    assert not stale_file.exists() and not stale_dir.exists()
    assert all(path.exists() for path in kept)
    assert sweep_stale(tmp_path / "missing") == (0, 0)


def test_scratch_names_parse_back(tmp_path):
    path = scratch_path(tmp_path / "my.run-2024", "summary", ".parquet")
    match = scratch._NAME.match(path.name)
    assert match is not None
    assert (match["target"], match["kind"], match["pid"]) == (
        "my.run-2024",
        "summary",
        str(os.getpid()),
    )


def test_gcsim_run_sweeps_up_a_killed_runs_files(tmp_path):
    stale = tmp_path / f".earlier.summary-{scratch._HOST}-{dead_pid()}.parquet"
    stale.write_bytes(b"z" * 2048)
    result = CliRunner().invoke(
        cli,
        ["run", str(ROOT / "configs" / "quickstart.yaml"), "--set", "trials=20",
         "--out", str(tmp_path / "run")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert "removed 1 temporary file(s) of killed runs" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
