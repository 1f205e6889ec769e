"""--force replaces only what gcsim wrote, one writer per target, atomically; every path stays
where the user put it; a failing environment is one line with exit 2 and nothing written."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from simulator import parquet, replace, scratch
from simulator.cli import cli
from simulator.config import ConfigError, load_config
from simulator.results import confined, run_problem
from simulator.scratch import create_exclusive, recover_retired, scratch_path

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "configs" / "quickstart.yaml")
SMALL = ["--set", "trials=20", "--set", "data.dim=50", "-q"]


def gcsim(*args: str, cwd: Path | None = None):
    """The CLI in this process (cwd changed for the call)."""
    old = os.getcwd()
    os.chdir(cwd or old)
    try:
        return CliRunner().invoke(cli, list(args))
    finally:
        os.chdir(old)


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (hidden ones included) with its bytes."""
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


# --------------------------------------------------------------------------------------------
# --force


def test_force_never_deletes_a_directory_gcsim_did_not_write(tmp_path):
    docs = tmp_path / "mydocs"
    docs.mkdir()
    (docs / "thesis.tex").write_text("precious")
    before = tree(tmp_path)
    line = one_error_line(gcsim("run", QUICK, *SMALL, "--out", str(docs), "--force"))
    assert "files gcsim did not write" in line and "nothing was deleted" in line
    assert tree(tmp_path) == before


def test_force_into_the_working_directory_keeps_the_config(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(Path(QUICK).read_text())
    before = tree(tmp_path)
    one_error_line(gcsim("run", "c.yaml", *SMALL, "--out", str(tmp_path), "--force", cwd=tmp_path))
    assert tree(tmp_path) == before


def test_force_replaces_a_run_directory_and_leaves_nothing_hidden(tmp_path):
    out = tmp_path / "run"
    assert gcsim("run", QUICK, *SMALL, "--out", str(out)).exit_code == 0
    first = (out / "summary.parquet").read_bytes()
    refused = gcsim("run", QUICK, *SMALL, "--set", "seed=7", "--out", str(out))
    assert "pass --force" in one_error_line(refused)
    result = gcsim("run", QUICK, *SMALL, "--set", "seed=7", "--out", str(out), "--force")
    assert result.exit_code == 0, result.output
    assert (out / "summary.parquet").read_bytes() != first
    assert run_problem(out) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_force_replaces_a_run_directory_of_an_older_gcsim_without_schemes_parquet(tmp_path):
    """A run directory written before schemes.parquet existed (its manifest does not list it)
    is still gcsim's: --force replaces it, and the new one has the file."""
    out = tmp_path / "run"
    assert gcsim("run", QUICK, *SMALL, "--out", str(out)).exit_code == 0
    (out / "schemes.parquet").unlink()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    del manifest["files"]["schemes.parquet"]
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert replace.kind_of(out) == "run" and replace.foreign_entries(out, "run") == []
    result = gcsim("run", QUICK, *SMALL, "--out", str(out), "--force")
    assert result.exit_code == 0, result.output
    assert (out / "schemes.parquet").is_file() and run_problem(out) is None


def test_force_keeps_a_run_directory_that_holds_a_users_file(tmp_path):
    out = tmp_path / "run"
    assert gcsim("run", QUICK, *SMALL, "--out", str(out)).exit_code == 0
    (out / "notes.md").write_text("mine")
    (out / "figures").mkdir()
    (out / "figures" / "draft.docx").write_text("mine too")
    before = tree(tmp_path)
    line = one_error_line(gcsim("run", QUICK, *SMALL, "--out", str(out), "--force"))
    assert "figures/draft.docx" in line and "notes.md" in line
    assert tree(tmp_path) == before


def test_force_keeps_gcsims_figures_and_traces_replaceable(tmp_path):
    out = tmp_path / "run"
    assert gcsim("run", QUICK, *SMALL, "--out", str(out)).exit_code == 0
    assert gcsim("trace", str(out), "--trial", "0").exit_code == 0
    assert gcsim("plot", str(out)).exit_code == 0
    assert replace.foreign_entries(out, "run") == []
    assert gcsim("run", QUICK, *SMALL, "--out", str(out), "--force").exit_code == 0


def test_run_force_does_not_replace_a_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    result = gcsim("sweep", QUICK, "--grid", "cluster.workers=8,12", *SMALL, "--jobs", "1",
                   "--out", str(sweep))  # fmt: skip
    assert result.exit_code == 0, result.output
    before = tree(tmp_path)
    line = one_error_line(gcsim("run", QUICK, *SMALL, "--out", str(sweep), "--force"))
    assert "gcsim sweep directory" in line
    assert tree(tmp_path) == before


def test_a_sweep_never_writes_into_a_directory_of_other_files(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.tex").write_text("precious")
    before = tree(tmp_path)
    for extra in ([], ["--force"]):
        result = gcsim("sweep", QUICK, "--grid", "cluster.workers=8,12", *SMALL, "--jobs", "1",
                       "--out", str(docs), *extra)  # fmt: skip
        assert "not a sweep" in one_error_line(result)
    assert tree(tmp_path) == before


# --------------------------------------------------------------------------------------------
# A kill between the two renames, and the atomic exchange


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def retired_name(target: Path, pid: int) -> Path:
    return target.parent / f".{target.name}.old-{scratch._HOST}-{pid}-0badc0de"


def test_results_set_aside_by_a_killed_force_are_restored_by_the_next_run(tmp_path):
    out = tmp_path / "run"
    assert gcsim("run", QUICK, *SMALL, "--out", str(out)).exit_code == 0
    old = tree(out)
    out.rename(retired_name(out, dead_pid()))  # killed after the first rename of --force
    result = gcsim("run", QUICK, *SMALL, "--out", str(out))
    assert result.exit_code == 2 and "restored the results" in result.output
    assert tree(out) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_retired_copy_whose_replacement_landed_is_removed(tmp_path):
    out = tmp_path / "run"
    assert gcsim("run", QUICK, *SMALL, "--out", str(out)).exit_code == 0
    retired = retired_name(out, dead_pid())
    retired.mkdir()
    (retired / "summary.parquet").write_bytes(b"old")
    lines = recover_retired(out)
    assert len(lines) == 1 and "removed" in lines[0]
    assert not retired.exists() and run_problem(out) is None


def test_a_live_runs_retired_copy_is_left_alone(tmp_path):
    out = tmp_path / "run"
    retired = retired_name(out, os.getppid())
    retired.mkdir()
    assert recover_retired(out) == [] and retired.exists()


def test_force_without_an_atomic_exchange_replaces_too(tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert gcsim("run", QUICK, *SMALL, "--out", str(out)).exit_code == 0
    monkeypatch.setattr(replace, "_exchange", lambda a, b: False)
    result = gcsim("run", QUICK, *SMALL, "--set", "seed=3", "--out", str(out), "--force")
    assert result.exit_code == 0, result.output
    assert run_problem(out) is None
    assert load_config(out / "config.yaml").seed == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_the_exchange_swaps_two_directories(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x").write_text("a"), (b / "y").write_text("b")
    if not replace._exchange(a, b):
        pytest.skip("this filesystem cannot exchange directories (the fallback is tested)")
    assert [p.name for p in a.iterdir()] == ["y"] and [p.name for p in b.iterdir()] == ["x"]


# --------------------------------------------------------------------------------------------
# One writer at a time


def test_a_target_being_written_is_refused_with_the_writers_pid(tmp_path):
    out = tmp_path / "run"
    lock = replace.lock_path(out)
    with open(lock, "w") as held:  # another process's lock, as flock sees it
        held.write("4242\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        line = one_error_line(gcsim("run", QUICK, *SMALL, "--out", str(out), "--force"))
    assert "being written by another gcsim process (pid 4242)" in line
    assert not out.exists()


def test_the_lock_is_reentrant_and_leaves_no_file(tmp_path):
    out = tmp_path / "run"
    with replace.target_lock(out), replace.target_lock(out):
        assert replace.lock_path(out).read_text().strip() == str(os.getpid())
    assert list(tmp_path.iterdir()) == []


def test_two_concurrent_force_runs_one_wins_one_is_told(tmp_path):
    """Both start at once into one target: each either writes whole results or exits 2 with
    the lock message; never a traceback, and the directory ends whole."""
    out = tmp_path / "run"
    assert gcsim("run", QUICK, *SMALL, "--out", str(out)).exit_code == 0
    command = [sys.executable, "-m", "simulator", "run", QUICK, "--set", "trials=400",
               "--out", str(out), "--force", "-q"]  # fmt: skip
    runs = [subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]  # fmt: skip
    outcomes = [(run.wait(), run.stderr.read()) for run in runs]
    for code, err in outcomes:
        assert code in (0, 2) and "Traceback" not in err, err
        if code == 2:
            assert "being written by another gcsim process" in err
    assert run_problem(out) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# --------------------------------------------------------------------------------------------
# Confinement


@pytest.mark.parametrize("name", ["../../../x", "/tmp/absolute", "..", "a/../../b"])
def test_a_name_never_leads_out_of_the_results_root(tmp_path, name):
    with pytest.raises(ConfigError, match="outside"):
        confined(tmp_path / "results", name)


def test_scratch_names_are_fresh_and_created_exclusively(tmp_path):
    target = tmp_path / "out"
    names = {scratch_path(target, "events", ".parquet") for _ in range(50)}
    assert len(names) == 50  # a random token: no name can be planted in advance
    victim = tmp_path / "victim"
    victim.write_text("keep")
    planted = tmp_path / "planted.parquet"
    planted.symlink_to(victim)
    with pytest.raises(FileExistsError):
        create_exclusive(planted)
    with pytest.raises(FileExistsError):
        parquet.ParquetStream(planted, parquet.schema_of({"a": "int64"}))
    assert victim.read_text() == "keep"


# --------------------------------------------------------------------------------------------
# The environment fails: one line, exit 2, nothing written


def test_out_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    before = tree(tmp_path)
    line = one_error_line(gcsim("run", QUICK, *SMALL, "--out", str(tmp_path / "file" / "run")))
    assert "not a directory" in line
    assert tree(tmp_path) == before


def test_out_in_proc_is_one_line():
    one_error_line(gcsim("run", QUICK, *SMALL, "--out", "/proc/gcsim-cannot/run"))


@pytest.mark.parametrize("address", ["not a url", "tcp://host", "tcp://h:99999", "http://x:1"])
def test_a_malformed_dask_address_is_refused_before_anything_is_made(tmp_path, address):
    line = one_error_line(gcsim("run", QUICK, *SMALL, "--dask", address, cwd=tmp_path))
    assert "--dask" in line
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_scheduler_leaves_no_directory(tmp_path):
    for args in (["run", QUICK, *SMALL, "--dask", "tcp://127.0.0.1:1"],
                 ["sweep", QUICK, "--grid", "cluster.workers=8,12", *SMALL,
                  "--dask", "tcp://127.0.0.1:1"]):  # fmt: skip
        assert "cannot reach a scheduler" in one_error_line(gcsim(*args, cwd=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_a_garbage_scheduler_variable_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "::garbage::")
    result = gcsim("sweep", QUICK, "--grid", "cluster.workers=8,12", *SMALL, cwd=tmp_path)
    assert "DASK_SCHEDULER_ADDRESS" in one_error_line(result)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    real = parquet.ParquetStream.append

    def full(self, frame):
        real(self, frame)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    monkeypatch.setattr(parquet.ParquetStream, "append", full)
    line = one_error_line(gcsim("run", QUICK, *SMALL, "--out", str(tmp_path / "r" / "run")))
    assert "disk is full" in line
    assert list(tmp_path.iterdir()) == []


def test_a_really_full_disk(tmp_path):
    """A 256 KiB tmpfs (needs root and mount rights; the monkeypatched test always runs)."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        line = one_error_line(
            gcsim(
                "run",
                QUICK,
                "--set",
                "output.events_trials=2000",
                "-q",
                "--out",
                str(mount / "run"),
            )
        )
        assert "disk is full" in line
        assert list(mount.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mount)], check=True)
