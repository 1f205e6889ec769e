"""Which engine runs which scheme.

The fast engine gives the event engine's rows only where a trial's outcome is a fixed function
of its drawn times: no crashes, no shared PS link, no per-message PS overhead, every setting one
it models, and, for a protocol that is sensitive to the order of simultaneous events, compute
times without atoms. The first four are properties of the run; the last two of each scheme
(its protocol's ``tags``). ``engine: auto`` therefore chooses per scheme: a run with one
event-only scheme still runs the others fast, and the manifest says which engine ran each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..coding.registry import PROTOCOLS
from ..workers import laws
from ..workers import problems as workers_problems

if TYPE_CHECKING:
    from ..config import Experiment

Problems = list[tuple[str, str]]

#: Run-wide settings whose meaning the fast engine implements, per config model; a setting not
#: listed that differs from its default keeps every scheme on the event engine (it may change
#: what happens in a trial, and fast would silently ignore it). A scheme's own settings are its
#: protocol's: its module implements all of them in both engines.
KNOWN = {
    # How workers differ is drawn into the realization, which both engines read alike.
    "Cluster": {
        "workers",
        "compute",
        "groups",
        "slowdown",
        "racks",
        "stragglers",
        "delay",
        "failures",
        "network",
    },
    "Failures": {"prob", "workers", "crash_rate", "detect_timeout"},
    "Network": {"latency", "time_per_float", "ps_ingress", "ps_overhead"},
    "Data": {"chunks", "dim", "gradients"},
}


def run_problems(exp: Experiment) -> Problems:
    """(dotted key, reason) for what keeps every scheme of ``exp`` off the fast engine."""
    problems: Problems = []
    cluster = exp.cluster
    if cluster.failures.crash_rate > 0:
        problems.append(
            (
                "cluster.failures.crash_rate",
                "crashes need the event engine: a crash interrupts a worker mid-chunk "
                "and partial_gc re-plans when the PS notices it, a history the "
                "vectorised evaluation does not model; set crash_rate: 0 or engine: "
                "des",
            )
        )
    if cluster.network.ps_ingress == "shared":
        problems.append(
            (
                "cluster.network.ps_ingress",
                "a shared PS link queues uploads first come first served, so a "
                "message's arrival depends on every earlier one; needs the event "
                "engine (ps_ingress: parallel for fast)",
            )
        )
    if cluster.network.ps_overhead > 0:
        problems.append(
            (
                "cluster.network.ps_overhead",
                "a PS that handles one message at a time makes each message wait for every "
                "earlier one; needs the event engine (ps_overhead: 0 for fast)",
            )
        )
    problems += _unknown(cluster, "cluster")
    problems += _unknown(cluster.failures, "cluster.failures")
    problems += _unknown(cluster.network, "cluster.network")
    problems += _unknown(exp.data, "data")
    return problems


def scheme_problems(exp: Experiment, index: int) -> Problems:
    """(dotted key, reason) for what keeps scheme ``index`` off the fast engine on its own."""
    spec = exp.schemes[index]
    tags = PROTOCOLS[spec.protocol].tags
    if not tags.fast:
        fast = ", ".join(name for name, cls in PROTOCOLS.items() if cls.tags.fast)
        return [
            (
                f"schemes.{index}.protocol",
                f"no vectorised evaluation of protocol {spec.protocol!r}; fast supports {fast}",
            )
        ]
    found = [] if tags.tie_safe else cluster_atoms(exp)
    if found:
        return [
            (
                found[0][0],
                f"{spec.protocol} is sensitive to the order of simultaneous events",
            )
        ]
    return []


def fast_problems(exp: Experiment) -> Problems:
    """Everything that keeps ``engine: fast`` from giving the event engine's rows for every
    scheme of ``exp``; empty: the fast engine is exact for the whole run."""
    problems = run_problems(exp)
    for i, spec in enumerate(exp.schemes):
        if not PROTOCOLS[spec.protocol].tags.fast:
            problems += scheme_problems(exp, i)
    sensitive = sorted({s.protocol for s in exp.schemes if not PROTOCOLS[s.protocol].tags.tie_safe})
    found = cluster_atoms(exp)
    if found and sensitive:
        key, kind = found[0]
        problems.append(
            (
                key,
                f"{kind} compute times make events simultaneous; the event engine "
                "orders them by scheduling order, which decides what "
                f"{', '.join(sensitive)} count at the decode instant and is not "
                "reproduced by fast; use a continuous distribution or engine: des",
            )
        )
    return problems


def scheme_engines(exp: Experiment) -> list[str]:
    """The engine ("fast" or "des") of each scheme's untraced trials, in config order."""
    if exp.engine != "auto":
        return [exp.engine] * len(exp.schemes)
    if run_problems(exp):
        return ["des"] * len(exp.schemes)
    return ["des" if scheme_problems(exp, i) else "fast" for i in range(len(exp.schemes))]


def engine_description(exp: Experiment) -> str:
    """How the run's rows were made, in words (the terminal line and the manifest)."""
    engines = scheme_engines(exp)
    if len(set(engines)) == 1:
        engine = engines[0]
    else:
        fast = sum(e == "fast" for e in engines)
        engine = f"fast for {fast} schemes, des for {len(engines) - fast}"
    if "fast" in engines and exp.output.events_trials:
        traced = min(exp.output.events_trials, exp.trials)
        return f"{engine} (event engine for the {traced} traced trials)"
    return engine


def cluster_atoms(exp: Experiment) -> list[tuple[str, str]]:
    """``atoms`` of every worker's compute law (a delay only adds to them: it makes no tie
    that the laws do not)."""
    if workers_problems(exp.cluster):
        return []  # the config is refused anyway, by those problems
    return [found for key, law, _, _ in laws(exp.cluster) for found in atoms(law, key)]


def atoms(dist: Any, key: str) -> list[tuple[str, str]]:
    """Where a compute distribution puts probability on single values (so draws tie):
    [(dotted key, kind)], as the distribution itself declares (``compute/``)."""
    return dist.atoms(key)


def _unknown(model: Any, key: str) -> Problems:
    """Settings of a run-wide config model the fast engine does not know, not at defaults."""
    known = KNOWN.get(type(model).__name__)
    if known is None:
        return [(key, f"fast does not know {type(model).__name__} settings; use engine: des")]
    out = []
    for name, info in type(model).model_fields.items():
        if name not in known and getattr(model, name) != info.get_default(
            call_default_factory=True
        ):
            out.append((f"{key}.{name}", f"fast does not model {name!r}; use engine: des"))
    return out
