"""Shared helpers: a small valid config to break key by key, and ways to run the real CLI."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
"""The checkout under test (subprocesses import its simulator package)."""

DELETE = object()
"""An override value that removes the key instead of setting it."""

BASE_CONFIG: dict[str, Any] = {
    "name": "base",
    "seed": 1,
    "trials": 4,
    "cluster": {
        "workers": 6,
        "compute": {"dist": "shifted_exponential", "shift": 1.0, "rate": 1.0, "per": "worker"},
        "failures": {"prob": 0.0},
    },
    "data": {"chunks": 6, "dim": 12, "gradients": "none"},
    "output": {"events_trials": 1},
    "schemes": [
        {"protocol": "uncoded"},
        {"protocol": "original_gc", "load": 3, "ell": 1},
        {"protocol": "partial_gc", "load": 3, "ell": 2, "mode": "approximate", "deadline": 2.0},
        {"protocol": "fastest_k", "k": 4},
    ],
}
"""Valid as is (a test checks that): every error case changes one thing in it."""


def set_key(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set (or, with DELETE, remove) ``a.b.0.c`` in nested dicts/lists, in place."""
    parts = dotted.split(".")
    node: Any = data
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last: Any = int(parts[-1]) if isinstance(node, list) else parts[-1]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value


def make_config(overrides: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """A fresh copy of BASE_CONFIG with overrides: dotted keys in ``overrides``
    (``{"schemes.0.load": 9}``) or keyword arguments with ``__`` for dots
    (``cluster__workers=9``). A value of DELETE removes the key."""
    data = copy.deepcopy(BASE_CONFIG)
    merged = dict(overrides or {})
    merged.update({key.replace("__", "."): value for key, value in kwargs.items()})
    for dotted, value in merged.items():
        set_key(data, dotted, value if value is DELETE else copy.deepcopy(value))
    return data


def write_config(path: Path, data: dict[str, Any] | str) -> Path:
    """Write a config (a dict as YAML, or raw text as is) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None  # CliRunner only: what ended the command

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_subprocess(args: Iterable[str], cwd: Path) -> CliResult:
    """``python -m simulator ARGS`` in a real process: the real exit status and streams."""
    # This checkout's simulator, not whichever one an editable install points at.
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", PYTHONPATH=path)
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def run_clirunner(args: Iterable[str], cwd: Path) -> CliResult:
    """The same command in-process through click's CliRunner (fast), with cwd switched."""
    from simulator.cli import cli

    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=True)
    finally:
        os.chdir(old)
    return CliResult(result.exit_code, result.stdout, result.stderr, result.exception)


def tree(root: Path) -> dict[str, int]:
    """Every path under ``root`` (hidden ones too) with its size, to prove nothing was written."""
    return {
        str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def config_builder() -> Callable[..., dict[str, Any]]:
    return make_config


@pytest.fixture
def gcsim() -> Callable[..., CliResult]:
    """``gcsim(args, cwd, via="clirunner" | "subprocess")``."""

    def invoke(args: Iterable[str], cwd: Path, via: str = "clirunner") -> CliResult:
        runner = {"clirunner": run_clirunner, "subprocess": run_subprocess}[via]
        return runner(args, cwd)

    return invoke


@pytest.fixture(autouse=True, scope="session")
def _plan_cache_in_a_temporary_directory(tmp_path_factory: pytest.TempPathFactory):
    """Plans the tests compute (simulator.plan_cache) go to a temporary directory, never to the
    user's cache; subprocesses inherit it through the environment."""
    before = os.environ.get("GCSIM_CACHE_DIR")
    os.environ["GCSIM_CACHE_DIR"] = str(tmp_path_factory.mktemp("plan-cache"))
    yield
    if before is None:
        os.environ.pop("GCSIM_CACHE_DIR", None)
    else:
        os.environ["GCSIM_CACHE_DIR"] = before
