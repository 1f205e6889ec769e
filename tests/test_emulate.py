"""``gcsim emulate``: the protocols on real worker processes (Dask actors), judged against the
simulator on the same draws; no worker process outlives the emulation, however it ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from simulator.cluster import Cluster
from simulator.coding.registry import build
from simulator.config import load_config
from simulator.emulate import emulate, ps
from simulator.results import run_problem
from simulator.runner import run

from .conftest import REPO, make_config, write_config

pytest.importorskip("distributed")

SMALL = {
    "seed": 5,
    "trials": 3,
    "cluster.workers": 4,
    "cluster.compute": {"dist": "shifted_exponential", "shift": 1.0, "rate": 2.0, "per": "chunk"},
    "cluster.failures": {"prob": 0.0, "crash_rate": 0.15, "detect_timeout": 0.5},
    "data": {"chunks": 4, "dim": 24, "gradients": "gaussian"},
    "output.events_trials": 3,
    "schemes": [
        {"protocol": "uncoded"},
        {"protocol": "original_gc", "load": 2, "ell": 1},
        {"protocol": "partial_gc", "load": 2, "ell": 1},
        {"protocol": "multi_message", "load": 2},
    ],
}
SCALE = 0.04  # 40 ms per time unit: chunks of 40 ms and more


def _children() -> set[int]:
    """This process's descendants, but multiprocessing's resource tracker (one per
    interpreter, started with the first process and ended when this one exits)."""
    return {
        p.pid
        for p in psutil.Process().children(recursive=True)
        if "resource_tracker" not in " ".join(p.cmdline())
    }


def test_small_emulation_matches_the_simulator(tmp_path, gcsim) -> None:
    """m = 4, three trials, four protocols (partial_gc's downloads included), crashes
    injected: exact decodes, the simulator's counts where timing cannot change them, measured
    times no shorter than the injected ones, crashes at the drawn instants, and the run
    directory of ``gcsim emulate`` is whole and marked real."""
    path = write_config(tmp_path / "small.yaml", make_config(SMALL))
    exp = load_config(path)
    before = _children()
    real = emulate(exp, "local", SCALE)
    assert _children() <= before  # every worker process is gone
    sim = run(exp).summary
    protocols = {p.label: p for p in build(exp)}
    rows = real.summary.merge(sim, on=["scheme", "trial"], suffixes=("", "_sim"))
    assert len(rows) == 3 * 4
    draws = Cluster(exp, max(p.steps for p in protocols.values())).draw(0, exp.trials)
    for row in rows.itertuples():
        if row.decoded:
            assert row.rel_error <= protocols[row.scheme].error_bound(), row
        # Crashes are at the same instants, so the decodes agree, unless a crash falls
        # between the predicted and the measured completion (a loaded machine is slow).
        ends = sorted((row.completion_time, row.completion_time_sim))
        between = (draws.crash_time[row.trial] >= ends[0] - 0.5).any()
        if not between:
            assert row.decoded == row.decoded_sim, row
        if row.decoded_sim:  # real time only adds to the injected times
            assert row.completion_time >= 0.97 * row.completion_time_sim, row
            assert row.completion_time <= 3 * row.completion_time_sim + 2.0, row
    uncoded = rows[rows.scheme == "uncoded"]
    for column in ("messages", "upload_floats", "download_floats", "control_messages"):
        assert (uncoded[column] == uncoded[f"{column}_sim"]).all(), column
    partial = rows[rows.scheme == "partial_gc"]
    assert (partial.download_floats[partial.decoded] > 0).all()
    events = real.events
    crashes = events[events.kind == "crash"]
    for crash in crashes.itertuples():
        assert crash.time == pytest.approx(draws.crash_time[crash.trial, crash.worker], abs=0.1)
    # The drawn times reach the workers x the scale: uncoded's one chunk per worker takes its
    # drawn time (step 0), and real overheads only add to it.
    starts = events[(events.scheme == "uncoded") & (events.kind == "chunk_start")]
    ends = events[(events.scheme == "uncoded") & (events.kind == "chunk_done")]
    took = ends.merge(starts, on=["trial", "worker"], suffixes=("", "_start"))
    drawn = draws.step_times[took.trial, took.worker, 0]
    excess = (took.time - took.time_start).to_numpy() - drawn
    assert len(took) > 0 and (excess > -1e-3).all() and np.median(excess) < 0.25, excess
    assert set(events.kind) >= {"chunk_start", "chunk_done", "upload_sent", "upload_received",
                                "download_sent", "download_received", "decoded"}  # fmt: skip

    out = gcsim(["emulate", str(path), "--time-scale", "0.001", "--out", "real"], tmp_path)
    assert out.exit_code == 0, out.output
    # The run's own tables (as gcsim run prints them), one row per scheme; no object reprs.
    table = out.stdout.split("emulation on")[0]
    assert all(f"\n{label} " in table for label in exp.labels()), out.stdout
    assert "<text" not in out.stdout and "decoded/accurate:" in out.stdout
    assert run_problem(tmp_path / "real") is None
    manifest = json.loads((tmp_path / "real" / "manifest.json").read_text())
    assert manifest["real"] is True and manifest["engine"] == "real"
    assert manifest["time_scale"] == 0.001


def test_worker_processes_end_on_an_error(tmp_path, monkeypatch) -> None:
    """The PS failing in the middle of a trial: the error reaches the caller and the worker
    processes are gone."""
    path = write_config(tmp_path / "small.yaml", make_config({**SMALL, "trials": 1}))

    def broken(self):
        raise ps.EmulationError("injected failure")

    monkeypatch.setattr(ps.TrialPlay, "_check", broken)
    before = _children()
    with pytest.raises(ps.EmulationError, match="injected failure"):
        emulate(load_config(path), "local", SCALE)
    assert _children() <= before


def test_worker_processes_end_on_ctrl_c(tmp_path) -> None:
    """SIGINT while the trials run: exit status 130, nothing written, no process left."""
    data = make_config({**SMALL, "trials": 400})
    write_config(tmp_path / "long.yaml", data)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "emulate", "long.yaml", "--time-scale", "0.05",
         "--out", "real", "-q"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 90
        family: set[psutil.Process] = set()
        while time.monotonic() < deadline:  # wait for the four workers to be running
            family = set(parent.children(recursive=True))
            if sum("spawn_main" in " ".join(p.cmdline()) for p in family if p.is_running()) >= 4:
                break
            time.sleep(0.2)
        time.sleep(3.0)  # the actors are made and trials run
        family = set(parent.children(recursive=True))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    gone, alive = psutil.wait_procs(list(family), timeout=10)
    assert not alive, alive
    assert not (tmp_path / "real").exists()


def test_refuses_what_it_cannot_emulate(tmp_path, gcsim) -> None:
    data = make_config({**SMALL, "cluster.network": {"ps_ingress": "shared"}})
    write_config(tmp_path / "c.yaml", data)
    out = gcsim(["emulate", "c.yaml", "--time-scale", "-1"], tmp_path)
    assert out.exit_code == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2 and "--time-scale" in out.stderr and "ps_ingress" in out.stderr
    assert not (tmp_path / "results").exists()


TRAINING = {
    "seed": 7,
    "trials": 1,
    "iterations": 3,
    "cluster.workers": 4,
    "cluster.compute": {"dist": "shifted_exponential", "shift": 1.0, "rate": 2.0, "per": "chunk"},
    "data": {"chunks": 4},
    "training": {"model": "logistic", "dataset": "synthetic", "learning_rate": 1.0,
                 "synthetic": {"samples": 400, "features": 6}},
    "output.events_trials": 1,
    "schemes": [
        {"protocol": "uncoded"},
        {"protocol": "partial_gc", "load": 2, "ell": 1},
        {"protocol": "original_gc", "load": 2, "ell": 1},
    ],
}  # fmt: skip


def test_a_training_emulation_trains_the_model(tmp_path) -> None:
    """With ``training:`` the workers compute the model's chunk gradients at the parameters
    the PS broadcasts: every exact decode equals the true gradient sum, and since the steps
    are then the simulator's, so is the loss trajectory (whatever the timing)."""
    path = write_config(tmp_path / "train.yaml", make_config(TRAINING))
    exp = load_config(path)
    real = emulate(exp, "local", 0.002)
    sim = run(exp)
    summary = real.summary
    assert len(summary) == 3 * 3 and summary.decoded.all()
    assert (summary.rel_error <= 1e-20).all(), summary[["scheme", "iteration", "rel_error"]]
    rows = real.training.merge(sim.training, on=["scheme", "trial", "iteration"],
                               suffixes=("", "_sim"))  # fmt: skip
    assert len(rows) == 3 * 4 == len(real.training)
    assert np.allclose(rows.loss, rows.loss_sim, rtol=1e-9, atol=0), rows[["loss", "loss_sim"]]
    assert rows.loss.iloc[-1] < rows.loss.iloc[0]  # it learns
    # The parameters' broadcast is no protocol message: uncoded counts what the simulator does.
    both = summary.merge(sim.summary, on=["scheme", "trial", "iteration"], suffixes=("", "_sim"))
    uncoded = both[both.scheme == "uncoded"]
    for column in ("messages", "upload_floats", "download_floats", "control_messages"):
        assert (uncoded[column] == uncoded[f"{column}_sim"]).all(), column


def test_emulation_on_a_running_scheduler(tmp_path) -> None:
    """``--dask ADDRESS``: the actors go to an existing cluster's workers, which open their
    streams back to this process; the decodes are exact and the cluster is left running (it is
    not the emulation's to stop)."""
    from distributed import LocalCluster

    from simulator.emulate.wire import reachable_host

    assert reachable_host("tcp://127.0.0.1:8786") == "127.0.0.1"
    assert reachable_host("tcp://[::1]:8786") == "127.0.0.1"
    schemes = [*SMALL["schemes"], {"protocol": "fastest_k", "fraction": 0.5}]
    data = make_config({**SMALL, "trials": 2, "cluster.failures": {"prob": 0.0},
                        "schemes": schemes})  # fmt: skip
    exp = load_config(write_config(tmp_path / "small.yaml", data))
    with LocalCluster(n_workers=4, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, memory_limit=0) as cluster:  # fmt: skip
        real = emulate(exp, cluster.scheduler_address, 0.01)
        assert len(cluster.scheduler.workers) == 4
    summary = real.summary
    assert len(summary) == 2 * 5 and summary["decoded"].all()
    exact = summary["protocol"] != "fastest_k"
    assert (summary.loc[exact, "rel_error"] <= 1e-20).all()
    # accurate is the simulator's rule on the measured rel_error (an approximate decode is not)
    assert summary["accurate"].tolist() == (summary["rel_error"] <= 1e-6).tolist()
    assert not summary.loc[~exact, "accurate"].all()
    assert real.executor.startswith("emulation on Dask scheduler tcp://127.0.0.1:")
