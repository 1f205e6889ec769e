"""Fuzzing the config schema (issue 16): random, mostly valid configs with random damage.

Property: loading a config (YAML text through ``load_config``) either succeeds or raises
``ConfigError``, never anything else; and a config that loads and is tiny (a few trials and
workers) runs, on both engines where the fast one claims to be exact, and gives sane rows (a
decoded row has a finite completion time, an undecoded one inf, no NaN where a number must be,
every trial of every scheme once) on which the engines agree.

Each example runs in a forked child with a memory limit and a timeout (tests/hostile_cases.py),
so a damaged config that hangs or allocates without bound fails the test instead of taking the
machine. The examples are derandomized: the same ones every run, well under 30 s.
"""

from __future__ import annotations

import json
import math
import tempfile
import traceback
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from . import hostile_cases as hc

# --------------------------------------------------------------------------------------------
# Mostly valid configs

positive = st.floats(0.05, 5.0)
non_negative = st.floats(0.0, 3.0)

SIMPLE_DISTRIBUTIONS = st.one_of(
    st.fixed_dictionaries({"dist": st.just("deterministic"), "value": non_negative}),
    st.fixed_dictionaries({"dist": st.just("exponential"), "rate": positive}),
    st.fixed_dictionaries(
        {"dist": st.just("shifted_exponential"), "shift": non_negative, "rate": positive}
    ),
    st.fixed_dictionaries(
        {"dist": st.just("pareto"), "scale": positive, "alpha": st.floats(1.1, 5.0)}
    ),
    st.fixed_dictionaries({"dist": st.just("weibull"), "scale": positive, "shape": positive}),
    st.fixed_dictionaries(
        {"dist": st.just("lognormal"), "mu": st.floats(-1.0, 1.0), "sigma": st.floats(0.1, 1.5)}
    ),
    st.fixed_dictionaries({"dist": st.just("gamma"), "shape": positive, "scale": positive}),
)


@st.composite
def distributions(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        dist = dict(draw(SIMPLE_DISTRIBUTIONS))
    else:
        dist = {
            "dist": "bimodal",
            "p_slow": draw(st.floats(0.0, 1.0)),
            "fast": draw(SIMPLE_DISTRIBUTIONS),
            "slow": draw(SIMPLE_DISTRIBUTIONS),
        }
    if draw(st.booleans()):
        dist["per"] = draw(st.sampled_from(["worker", "chunk"]))
    return dist


@st.composite
def schemes(draw: st.DrawFn, workers: int) -> dict[str, Any]:
    protocol = draw(
        st.sampled_from(
            ["uncoded", "fastest_k", "original_gc", "partial_gc", "frc", "multi_message"]
        )
    )
    scheme: dict[str, Any] = {"protocol": protocol}
    if protocol == "fastest_k":
        if draw(st.booleans()):
            scheme["k"] = draw(st.integers(1, workers))
        else:
            scheme["fraction"] = draw(st.floats(0.1, 1.0))
        return scheme
    if protocol == "uncoded":
        return scheme
    load = draw(st.integers(1, workers))
    scheme["load"] = load
    if protocol == "frc":
        return scheme
    scheme["ordering"] = draw(st.sampled_from(["natural", "random", "optimal"]))
    if protocol in ("original_gc", "partial_gc"):
        scheme["ell"] = draw(st.integers(1, load))
        if draw(st.booleans()):
            scheme["mode"] = "approximate"
            scheme["deadline"] = draw(st.floats(0.1, 10.0))
    if protocol == "original_gc":
        scheme["candidates"] = draw(st.integers(1, 4))
    return scheme


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    workers = draw(st.integers(1, 8))
    data: dict[str, Any] = {
        "name": "fuzz",
        "seed": draw(st.integers(0, 2**32)),
        "trials": draw(st.integers(1, 3)),
        "engine": draw(st.sampled_from(["auto", "auto", "des", "fast"])),
        "cluster": {
            "workers": workers,
            "compute": draw(distributions()),
            "failures": {
                "prob": draw(st.sampled_from([0.0, 0.0, 0.2, 1.0])),
                "crash_rate": draw(st.sampled_from([0.0, 0.0, 0.5])),
                "detect_timeout": draw(st.sampled_from([0.0, 0.3])),
            },
            "network": {
                "latency": draw(st.sampled_from([0.0, 0.01, 0.5])),
                "time_per_float": draw(st.sampled_from([0.0, 0.001])),
                "ps_ingress": draw(st.sampled_from(["parallel", "parallel", "shared"])),
            },
        },
        "data": {
            "dim": draw(st.integers(1, 12)),
            "gradients": draw(st.sampled_from(["gaussian", "none"])),
        },
        "output": {
            "events_trials": draw(st.integers(0, 3)),
            "decode_cond": draw(st.booleans()),
        },
        "schemes": draw(st.lists(schemes(workers), min_size=1, max_size=4)),
    }
    if draw(st.booleans()):
        data["cluster"]["slowdown"] = draw(
            st.lists(st.floats(0.5, 3.0), min_size=workers, max_size=workers)
        )
    return data


# --------------------------------------------------------------------------------------------
# Damage

HOSTILE_VALUES = [
    math.nan, math.inf, -math.inf, -1, 0, -0.5, 10**30, 2**63, 1.5, 1e308, 5e-324, "x", "",
    "1e3", None, True, False, [], {}, [1], {"a": 1}, [[0]],
]  # fmt: skip
#: What a float of the config is most often damaged to: "every float is finite unless
#: infinity means something", and a finite float must not overflow the times.
FLOAT_DAMAGE = [math.nan, math.inf, -math.inf, 1e308, 5e-324]


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a config (mappings and lists), the root excluded."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        out.append((*prefix, key))
        if isinstance(value, dict | list):
            out += _paths(value, (*prefix, key))
    return out


def _parent(data: Any, path: tuple) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


@st.composite
def damaged_configs(draw: st.DrawFn) -> dict[str, Any]:
    """A config with 1-3 random changes: a hostile value anywhere, a key removed or added.
    Where and what come from a seeded ``random.Random`` (drawn by hypothesis): its own choices
    shrink towards the first item, which would put most of the damage on ``name``."""
    data = draw(configs())
    rng = draw(st.randoms(use_true_random=False))
    for _ in range(rng.choice([1, 1, 1, 1, 2, 3])):
        paths = _paths(data)
        if not paths:
            break
        floats = [p for p in paths if isinstance(_parent(data, p)[p[-1]], float)]
        leaves = [p for p in paths if not isinstance(_parent(data, p)[p[-1]], dict | list)]
        action = rng.choice(["float"] * 4 + ["leaf", "leaf", "any", "delete", "unknown key"])
        if action == "float" and floats:
            path = rng.choice(floats)
            _parent(data, path)[path[-1]] = rng.choice(FLOAT_DAMAGE)
            continue
        path = rng.choice(leaves if action == "leaf" and leaves else paths)
        parent = _parent(data, path)
        if action in ("float", "leaf", "any"):
            parent[path[-1]] = rng.choice(HOSTILE_VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[rng.choice(["extra", "Workers", "per", "dist", "label"])] = 1
    return data


# --------------------------------------------------------------------------------------------
# The property, judged in a forked child

TINY = {"trials": 3, "workers": 8, "chunks": 8, "dim": 64}


def _tiny(exp) -> bool:
    candidates = [getattr(s, "candidates", 1) for s in exp.schemes]
    return (
        exp.trials <= TINY["trials"]
        and exp.cluster.workers <= TINY["workers"]
        and exp.chunks <= TINY["chunks"]
        and exp.data.dim <= TINY["dim"]
        and max(candidates) <= 16
    )


def judge(path: Path) -> str:
    """Load the config at ``path`` and, if it is tiny, run it on both engines: '' when the
    property holds, else what broke it. Runs in a child."""
    import pandas as pd

    from simulator import config as cfg
    from simulator.runner import run

    try:
        exp = cfg.load_config(path)
    except cfg.ConfigError as exc:
        if not exc.problems:
            return "ConfigError without a problem"
        return ""
    except Exception:  # noqa: BLE001 - the property: nothing but ConfigError
        return "loading raised:\n" + traceback.format_exc()
    if not _tiny(exp):
        return ""
    frames = {}
    for engine in ("des", "fast"):
        try:
            variant = cfg.from_dict({**exp.resolved(), "engine": engine}, source_dir=path.parent)
        except cfg.ConfigError:
            continue  # fast is not exact for this config, and says so
        except Exception:  # noqa: BLE001
            return f"reloading the resolved config (engine {engine}) raised:\n" + (
                traceback.format_exc()
            )
        try:
            frames[engine] = run(variant).summary
        except cfg.ConfigError:
            return ""  # a run may still refuse, with a clean error (e.g. its size)
        except Exception:  # noqa: BLE001
            return f"run on engine {engine} raised:\n" + traceback.format_exc()
    for engine, frame in frames.items():
        problems = hc.frame_problems(
            frame, exp.trials, len(exp.schemes), exp.data.gradients == "gaussian"
        )
        if problems:
            return f"engine {engine}: " + "; ".join(problems)
    if len(frames) == 2:
        des, fast = frames["des"], frames["fast"]
        exact = ["scheme", "trial", "decoded", "upload_floats", "messages", "chunks_used"]
        if not des[exact].equals(fast[exact]):
            return (
                "the engines disagree:\n" + pd.concat([des[exact], fast[exact]], axis=1).to_string()
            )
        if not (des.completion_time.to_numpy() == fast.completion_time.to_numpy()).all():
            both = des.completion_time.to_numpy(), fast.completion_time.to_numpy()
            if not all(a == b or abs(a - b) <= 1e-12 * abs(a) for a, b in zip(*both, strict=True)):
                return f"the engines disagree on completion_time: {both}"
    return ""


_warm: list[bool] = []


def verdict(data: dict[str, Any]) -> str:
    """``judge`` in a forked child with the harness's limits; a hang or crash is a verdict."""
    if not _warm:  # import and warm up once: every child inherits it
        hc.preload()
        _warm.append(True)
    with tempfile.TemporaryDirectory(prefix="gcsim-fuzz-") as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        answer = Path(tmp) / "verdict.json"

        def work() -> int:
            answer.write_text(json.dumps(judge(path)), encoding="utf-8")
            return 0

        child = hc.fork_child(work, Path(tmp))
        child.release(hc.TIMEOUT)
        while not hc.wait_children([child]):
            pass
        hc.settle_group(child, grace=1.0)
        if child.timed_out:
            return f"hang (over {hc.TIMEOUT:.0f} s)"
        if child.signal is not None or child.exit_code != 0 or not answer.exists():
            return f"crash: {child.status}: {child.stderr[-2000:]}"
        return json.loads(answer.read_text(encoding="utf-8"))


def fuzz(examples: int) -> settings:
    """Derandomized (the same examples every run), no example database, no shrinking (each
    example is a forked run: a failure is reported as found, with its config)."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@fuzz(30)
@given(configs())
def test_valid_configs_load_and_run_sanely(data: dict[str, Any]) -> None:
    problem = verdict(data)
    assert not problem, f"{problem}\n--- config ---\n{yaml.safe_dump(data, sort_keys=False)}"


@fuzz(150)
@given(damaged_configs())
def test_damaged_configs_are_rejected_cleanly_or_run_sanely(data: dict[str, Any]) -> None:
    problem = verdict(data)
    assert not problem, f"{problem}\n--- config ---\n{yaml.safe_dump(data, sort_keys=False)}"
