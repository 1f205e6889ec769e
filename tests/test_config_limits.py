"""Hostile configs are refused up front (issue 16): non-finite and overflowing numbers, YAML
bombs (size, aliases, depth, duplicate keys, encodings, huge integers), unsafe names, wrong
types anywhere in the schema, and runs too large for this machine. Each case failed before
(a traceback, a hang, memory exhausted, or a run with wrong rows) and must now be one line per
problem naming the key, exit status 2, nothing written.

Inputs that could exhaust memory or hang if a fix regressed run in a child process with an
address-space limit (RLIMIT_AS) and a timeout, so a regression fails its test instead of
taking the test run down.
"""

from __future__ import annotations

import copy
import math
import os
import resource
import subprocess
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

import simulator
from simulator import budget, yaml_loading
from simulator import config as cfg
from simulator.bench import bench_experiment
from simulator.cli import JobsOption, local_jobs_limit
from simulator.coding.ordering import REPORT_LIMIT_SECONDS, report_cost

from .conftest import make_config, tree, write_config

ROOT = Path(simulator.__file__).resolve().parents[1]
CHILD_MEMORY = 3 * 2**30


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))


@dataclass
class Child:
    code: int
    stdout: str
    stderr: str

    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def gcsim_child(args: list[str], cwd: Path, timeout: float = 120) -> Child:
    """``python -m simulator ARGS`` with 3 GiB of address space and a timeout (a hang guard,
    not a measurement), importing this checkout's package."""
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        preexec_fn=_limited,
    )
    return Child(proc.returncode, proc.stdout, proc.stderr)


def assert_clean(result: Child, key: str | None, *says: str) -> None:
    """Exit 2, every stderr line an ``error:`` line, the first naming ``key``."""
    assert result.code == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = result.errors()
    assert errors and all(line.startswith("error: ") for line in errors), result.stderr
    if key is not None:
        assert errors[0].startswith(f"error: {key}: "), errors[0]
    for fragment in says:
        assert fragment in result.stderr, result.stderr


def problems_of(data: dict[str, Any], **kwargs: Any) -> list[tuple[str, str]]:
    try:
        cfg.from_dict(data, **kwargs)
    except cfg.ConfigError as exc:
        return exc.problems
    return []


# --------------------------------------------------------------------------------------------
# The table: one row per input, through the CLI (validate and run) and checked for nothing
# written.


@dataclass
class Case:
    id: str
    overrides: dict[str, Any] = field(default_factory=dict)  # on the base config (make_config)
    key: str | None = None  # the dotted key the first error line names
    says: tuple[str, ...] = ()
    raw: str | None = None  # raw config text instead
    sets: tuple[str, ...] = ()  # --set arguments
    child: bool = False  # a memory bomb or a hang if its fix regressed: run in a child


LOGNORMAL = {"dist": "lognormal", "mu": 0.0, "sigma": 1.0}
FINITE = "Input should be a finite number"
NAME_RULE = "a name is a directory under results/"

CASES = [
    # 1. Non-finite floats (these ran: decoded rows with completion_time NaN or inf).
    Case("lognormal mu .nan", raw="lognormal_nan", key="cluster.compute.mu", says=(FINITE,)),
    Case(
        "shift .inf",
        sets=("cluster.compute.shift=.inf",),
        key="cluster.compute.shift",
        says=(FINITE, "inf"),
    ),
    Case(
        "pareto scale .inf",
        {"cluster.compute": {"dist": "pareto", "scale": math.inf, "alpha": 2.0}},
        key="cluster.compute.scale",
        says=(FINITE,),
    ),
    Case(
        "deterministic value .inf",
        {"cluster.compute": {"dist": "deterministic", "value": math.inf}},
        key="cluster.compute.value",
        says=(FINITE,),
    ),
    Case(
        "latency .inf",
        sets=("cluster.network.latency=.inf",),
        key="cluster.network.latency",
        says=(FINITE,),
    ),
    Case(
        "time_per_float .inf",
        sets=("cluster.network.time_per_float=.inf",),
        key="cluster.network.time_per_float",
        says=(FINITE,),
    ),
    Case(
        "slowdown .inf",
        sets=("cluster.slowdown=[1, 1, 1, 1, 1, .inf]",),
        key="cluster.slowdown.5",
        says=(FINITE,),
    ),
    Case(
        "deadline -.inf",
        sets=("schemes.2.deadline=-.inf",),
        key="schemes.2.deadline",
        says=(FINITE,),
    ),
    Case(
        "exponential rate that draws inf",
        sets=("cluster.compute={dist: exponential, rate: 1.0e-320}",),
        key="cluster.compute",
        says=("overflow to infinity",),
    ),
    Case(
        "lognormal mu that draws inf",
        {"cluster.compute": dict(LOGNORMAL, mu=1e12)},
        key="cluster.compute",
        says=("overflow to infinity",),
    ),
    # 2. YAML read with limits.
    Case(
        "duplicate key",
        raw="trials: 4\ntrials: 5\n",
        says=("key 'trials' is given twice", "line 2", "first at line 1"),
    ),
    Case(
        "duplicate nested key",
        raw="cluster: {workers: 6, workers: 7}\n",
        says=("key 'workers' is given twice",),
    ),
    Case(
        "integer of 5,000 digits",
        raw="trials: " + "9" * 5000 + "\n",
        says=("5,000 digits", "at most 4,300"),
    ),
    Case("non-UTF-8 file", raw="latin1", says=("is not UTF-8", "line 1")),
    Case("binary file", raw="binary", says=("is not UTF-8",)),
    Case("NUL byte in the text", raw="trials: 4\x00\n", says=("is not valid YAML",)),
    Case("file over the size limit", raw="huge", says=("2 MiB",)),
    Case("recursive alias", raw="trials: &r [*r]\n", says=("recursive",)),
    Case(
        "alias bomb in --set",
        child=True,
        sets=(
            "cluster.slowdown=[&a0 [1, 1], "
            + ", ".join(f"&a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 26))
            + "]",
        ),
        key="cluster.slowdown",
        says=("1,000,000 values",),
    ),
    Case("bad date", raw="name: 2024-13-45\n", says=("cannot read '2024-13-45'",)),
    # 3. Names and labels (a name becomes a directory under results/).
    Case("name with ..", {"name": "../../../x"}, key="name", says=(NAME_RULE, "separator")),
    Case("absolute name", {"name": "/tmp/gcsim-x"}, key="name", says=("separator",)),
    Case("name ..", {"name": ".."}, key="name", says=("must not start with '.'",)),
    Case("hidden name", {"name": ".x"}, key="name", says=("must not start with '.'",)),
    Case("name with NUL", {"name": "a\x00b"}, key="name", says=("control",)),
    Case("name with a newline", {"name": "a\nb"}, key="name", says=("control",)),
    Case(
        "name of 5,000 characters",
        {"name": "n" * 5000},
        key="name",
        says=("at most 200 bytes", "5,000 characters"),
    ),
    Case("empty name", {"name": ""}, key="name", says=("must not be empty",)),
    Case(
        "label with a newline",
        {"schemes.0.label": "a\nb"},
        key="schemes.0.label",
        says=("control",),
    ),
    Case("empty label", {"schemes.0.label": ""}, key="schemes.0.label", says=("empty",)),
    Case(
        "label of 5,000 characters",
        {"schemes.0.label": "l" * 5000},
        key="schemes.0.label",
        says=("at most 200 characters",),
    ),
    # 4. Wrong types for ordering (AttributeError: model_fields before).
    Case(
        "ordering: 5",
        {"schemes.2.ordering": 5},
        key="schemes.2.ordering",
        says=("'natural', 'random' or 'optimal', or a valid list", "got 5"),
    ),
    Case("ordering: mapping", {"schemes.2.ordering": {"a": 1}}, key="schemes.2.ordering"),
    Case(
        "ordering: list of strings",
        {"schemes.2.ordering": [["a"]]},
        key="schemes.2.ordering.0.0",
        says=("valid integer",),
    ),
    Case(
        "ordering: flat list",
        {"schemes.2.ordering": [1, 2]},
        key="schemes.2.ordering.0",
        says=("valid list",),
    ),
    Case("ordering: true", {"schemes.2.ordering": True}, key="schemes.2.ordering"),
    # 5. Sizes this machine cannot run.
    Case("trials: 10**12", {"trials": 10**12}, key="trials", says=("memory",), child=True),
    Case(
        "workers: 10**7",
        child=True,
        overrides={"cluster.workers": 10**7, "data.chunks": 10**7},
        key="cluster.workers",
        says=("lower cluster.workers",),
    ),
    Case(
        "chunks: 10**9 (uncoded)",
        child=True,
        overrides={"data.chunks": 10**9, "schemes": [{"protocol": "uncoded"}]},
        key="data.chunks",
        says=("memory",),
    ),
    Case(
        "original_gc at 2,000 workers",
        child=True,
        overrides={
            "cluster.workers": 2000,
            "data.chunks": 2000,
            "schemes": [{"protocol": "original_gc", "load": 10}],
        },
        # Memory (9.9 GiB: refused first on a smaller machine) and planning time (2.7 h).
        says=("error: schemes.0.candidates: planning would take", "SVDs of 1,991 x 2,000"),
    ),
    Case(
        "candidates: 10**9",
        child=True,
        overrides={"schemes.1.candidates": 10**9},
        key="schemes.1.candidates",
        says=("candidate codes",),
    ),
    Case("dim: 10**19", {"data.dim": 10**19}, key="data.dim", says=("64-bit counts",)),
    Case(
        "dim: 10**11 with gradients",
        child=True,
        overrides={"data.dim": 10**11, "data.gradients": "gaussian"},
        key="data.dim",
        says=("gradients",),
    ),
]

BOMB_LINES = ["x0: &a0 {dist: deterministic, value: 1.0}"] + [
    f"x{i}: &a{i} {{dist: bimodal, p_slow: 0.5, fast: *a{i - 1}, slow: *a{i - 1}}}"
    for i in range(1, 26)
]


def _raw_text(raw: str) -> str | bytes:
    """The named raw inputs of the table (most are literal YAML)."""
    if raw == "lognormal_nan":
        text = yaml.safe_dump(make_config({"cluster.compute": LOGNORMAL}), sort_keys=False)
        return text.replace("mu: 0.0", "mu: .nan")
    if raw == "latin1":
        return "name: caf\xe9\n".encode("latin-1")
    if raw == "binary":
        return bytes(range(256)) * 4
    if raw == "huge":
        return "slowdown: [" + ", ".join(["1.0"] * 500_000) + "]\n"
    return raw


def _write(case: Case, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "exp.yaml"
    if case.raw is None:
        return write_config(path, make_config(case.overrides))
    text = _raw_text(case.raw)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_config_is_one_clean_line_and_writes_nothing(case: Case, tmp_path, gcsim):
    config = _write(case, tmp_path / "cfg")
    before = tree(tmp_path)
    args = ["run", str(config), "--quiet", "--out", str(tmp_path / "out")]
    for text in case.sets:
        args += ["--set", text]
    if case.child:
        result = gcsim_child(args, tmp_path)
    else:
        ran = gcsim(args, cwd=tmp_path)
        assert ran.exception is None or isinstance(ran.exception, SystemExit), repr(ran.exception)
        result = Child(ran.exit_code, ran.stdout, ran.stderr)
    assert_clean(result, case.key, *case.says)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "results").exists()
    assert tree(tmp_path) == before


def test_the_table_breaks_valid_configs():
    """The control: without its one change, each table case's base config is valid."""
    assert problems_of(make_config()) == []
    assert problems_of(make_config({"cluster.compute": LOGNORMAL})) == []


# --------------------------------------------------------------------------------------------
# Bombs: in a child process with 3 GiB of address space.


@pytest.mark.parametrize(
    ("what", "text", "says"),
    [
        ("25 nested bimodals by alias", "\n".join(
            [*BOMB_LINES, "trials: 1", "cluster: {workers: 2, compute: *a25}",
             "schemes: [{protocol: uncoded}]"]) + "\n", "1,000,000 values"),
        ("nesting 20,000 deep", "trials: " + "[" * 20_000 + "]" * 20_000 + "\n",
         "nesting deeper than 64 levels"),
        ("nesting 200,000 deep (crashed libyaml's composer)",
         "trials: " + "[" * 200_000 + "]" * 200_000 + "\n", "nesting deeper than 64 levels"),
    ],
    ids=["alias bomb", "deep 20k", "deep 200k"],
)  # fmt: skip
def test_yaml_bombs_stop_at_once(what, text, says, tmp_path):
    config = tmp_path / "bomb.yaml"
    config.write_text(text, encoding="utf-8")
    result = gcsim_child(["validate", str(config)], tmp_path)
    assert_clean(result, None, "is too large to be a config", says, "at line")
    assert len(config.read_bytes()) < 2 * 2**20  # the size limit is not what stopped it


def test_ordering_and_jobs_refuse_absurd_sizes(tmp_path, gcsim):
    """``gcsim ordering --workers 10000000`` and ``--jobs 1000000`` ran until memory or
    patience ran out. The memory bombs run in a child; ``run`` and ``sweep`` would start few
    processes for 4 trials or 2 points even if the refusal regressed, so CliRunner will do."""
    result = gcsim_child(["ordering", "--workers", "10000000", "--load", "2", "--json"], tmp_path)
    assert_clean(result, "--workers", "lower --workers or --load")
    result = gcsim_child(["reproduce", "--quick", "--out", str(tmp_path / "r"), "--jobs",
                          "1000000"], tmp_path)  # fmt: skip
    assert_clean(result, "--jobs", f"at most {local_jobs_limit()}")
    table = gcsim(["ordering", "--workers", "10000000", "--load", "2"], cwd=tmp_path)
    assert table.exit_code == 2 and table.stderr.startswith("error: --workers: ")
    assert "--json skips it" in table.stderr  # the table alone would take hours
    config = write_config(tmp_path / "exp.yaml", make_config())
    for command in (
        ["run", str(config), "--quiet", "--out", str(tmp_path / "o")],
        ["sweep", str(config), "--grid", "seed=1,2", "--out", str(tmp_path / "s")],
    ):
        result = gcsim([*command, "--jobs", "1000000"], cwd=tmp_path)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: --jobs: "), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.yaml"]


def test_three_thousand_aliased_schemes_validate(tmp_path):
    """Experiment.labels() was cubic: 3,000 copies of one aliased scheme took minutes."""
    text = (
        "trials: 2\ncluster: {workers: 6, compute: {dist: exponential, rate: 1.0}}\n"
        "data: {gradients: none}\nschemes: [&s {protocol: uncoded}" + ", *s" * 2999 + "]\n"
    )
    config = tmp_path / "many.yaml"
    config.write_text(text, encoding="utf-8")
    result = gcsim_child(["validate", str(config)], tmp_path)
    assert result.code == 0, result.stderr
    labels = [s["label"] for s in yaml.safe_load(result.stdout)["schemes"]]
    assert labels[:3] == ["uncoded", "uncoded#2", "uncoded#3"] and labels[-1] == "uncoded#3000"


# --------------------------------------------------------------------------------------------
# In-process: the library refuses the same things, and accepts what it must.


def _old_labels(bases: list[str]) -> list[str]:
    """The previous (cubic) algorithm, as the reference for the linear one."""
    out: list[str] = []
    for base in bases:
        label, n = base, 1
        while label in out:
            n += 1
            label = f"{base}#{n}"
        out.append(label)
    return out


@pytest.mark.parametrize(
    "labels",
    [
        [None, None, None],
        ["uncoded#2", None, None, None],
        [None, "uncoded#3", None, None, "uncoded", None],
        ["a", "a#2", None, "b"],
    ],
)
def test_labels_are_those_of_the_quadratic_search(labels):
    schemes = [{"protocol": "uncoded"} if x is None else {"protocol": "uncoded", "label": x}
               for x in labels]  # fmt: skip
    exp = cfg.Experiment.model_validate(make_config({"schemes": schemes}))  # no semantics
    bases = [x if x is not None else "uncoded" for x in labels]
    assert exp.labels() == _old_labels(bases)


def test_nan_through_the_api_and_grid_values_are_refused():
    data = make_config({"cluster.compute": dict(LOGNORMAL, mu=math.nan)})
    assert problems_of(data)[0][0] == "cluster.compute.mu"
    # A sweep's --grid values become config data validated the same way.
    from simulator.sweep import plan_points

    with pytest.raises(cfg.ConfigError) as info:
        plan_points(_config_file(make_config()), [], ["cluster.compute.shift=1.0,.inf"], False)
    assert info.value.problems[0][0] == "cluster.compute.shift"


def _config_file(data: dict[str, Any]) -> Path:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="gcsim-limits-"))
    return write_config(folder / "exp.yaml", data)


def test_raw_data_that_contains_itself_or_nests_too_deep_is_refused():
    looped = make_config()
    looped["schemes"].append(looped["schemes"])
    message = problems_of(looped)[0][1]
    assert "contains itself" in message or "nesting deeper" in message
    deep: Any = 1.0
    for _ in range(200):
        deep = [deep]
    assert "nesting deeper" in problems_of(make_config({"cluster.slowdown": deep}))[0][1]
    assert "4,300 digits" in problems_of(make_config({"seed": 10**5000}))[0][1]


def test_a_name_from_the_file_stem_says_where_it_came_from(tmp_path):
    data = make_config()
    del data["name"]
    config = write_config(tmp_path / ".hidden.yaml", data)
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load_config(config)
    key, message = info.value.problems[0]
    assert key == "name" and "config file's stem '.hidden'" in message


@pytest.mark.parametrize("name", ["my run 2", "expérience ünï", "a-b_c (v2)", "実験"])
def test_ordinary_names_stay_valid(name):
    assert cfg.from_dict(make_config({"name": name})).name == name


def test_yaml_loading_matches_safe_load_on_the_repository_configs():
    files = sorted(ROOT.glob("configs/*.yaml")) + sorted(ROOT.glob("experiments/*/*.yaml"))
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert yaml_loading.load(text) == yaml.safe_load(text), path
    text = "a: &x {b: 1}\nc: *x\nd: {<<: *x, e: 2}\nf: 0x1F\ng: 1:30\nh: ~\ni: 2024-01-02\n"
    assert yaml_loading.load(text) == yaml.safe_load(text)


def test_the_budget_accepts_the_repository_configs_and_the_benchmarks():
    """The estimate must not refuse reasonable runs: every shipped config, the benchmark sizes
    (m = 1000, load 10, original_gc with decode_cond), and original_gc at m = 1000 with the
    default 16 candidates, all within 8 GiB (this machine has more)."""
    for path in sorted(ROOT.glob("configs/*.yaml")) + sorted(ROOT.glob("experiments/*/*.yaml")):
        assert budget.problems(cfg.load_config(path), memory=2 * 2**30) == [], path
    for workers, load in ((20, 4), (200, 10), (1000, 10)):
        for decode_cond in (False, True):
            exp = bench_experiment(workers, load, 256, decode_cond)
            assert budget.problems(exp, memory=8 * 2**30) == []
    data = make_config({"cluster.workers": 1000, "data.chunks": 1000, "trials": 2000,
                        "schemes": [{"protocol": "original_gc", "load": 10}]})  # fmt: skip
    assert budget.problems(cfg.from_dict(data), memory=8 * 2**30) == []


def test_the_budget_names_the_key_and_grows_with_it():
    small = budget.estimate(cfg.from_dict(make_config()))
    big = budget.estimate(cfg.from_dict(make_config({"cluster.workers": 60, "data.chunks": 60})))
    assert big.memory > small.memory
    refused = budget.problems(cfg.from_dict(make_config()), memory=1.0)
    assert [key for key, _ in refused] and "this process may use" in refused[0][1]


def test_ordering_report_cost_is_refused_above_its_limit():
    assert report_cost(1000, 10).seconds < REPORT_LIMIT_SECONDS
    assert report_cost(10**7, 2, table=True).table_seconds > REPORT_LIMIT_SECONDS
    assert report_cost(3000, 3000).bytes > 16 * 2**30


def test_jobs_option_leaves_dask_alone():
    @click.command()
    @click.option("--jobs", cls=JobsOption, dask_from_env=True, type=int, default=None)
    @click.option("--dask", default=None)
    def command(jobs, dask):
        click.echo(f"jobs={jobs}")

    runner = CliRunner()
    too_many = str(local_jobs_limit() + 1)
    refused = runner.invoke(command, ["--jobs", too_many])
    assert refused.exit_code == 2 and "--jobs" in refused.stderr
    for args in (["--jobs", too_many, "--dask", "tcp://h:1"], ["--dask", "x", "--jobs", too_many]):
        assert runner.invoke(command, args).stdout == f"jobs={too_many}\n"
    env = {"DASK_SCHEDULER_ADDRESS": "tcp://h:1"}
    assert runner.invoke(command, ["--jobs", too_many], env=env).exit_code == 0
    assert runner.invoke(command, ["--jobs", str(local_jobs_limit())]).exit_code == 0


# --------------------------------------------------------------------------------------------
# Every key of the schema with wrong values: a ConfigError (or a valid config), never another
# exception, never a non-finite number accepted.

HOSTILE: list[Any] = [
    "x", "", True, None, [], [1], {}, {"a": 1}, -1, -1.5, 0, 0.0, 10**12, 10**30, 1e300, 1e-320,
    math.nan, math.inf, -math.inf, [[1, 2], [3]], "a\x00b", "n" * 5000,
]  # fmt: skip


def _schema_keys() -> list[tuple[str, dict[str, Any]]]:
    """(dotted key, a valid base config in which that key exists) for every model field."""
    base = make_config({"schemes.1.candidates": 2})
    base["schemes"].append({"protocol": "frc", "load": 3})
    base["schemes"].append({"protocol": "multi_message", "load": 3, "ordering": "optimal"})
    out = [(name, base) for name in cfg.Experiment.model_fields]

    def walk(model: type, prefix: str, data: dict[str, Any]) -> None:
        for name, info in model.model_fields.items():
            out.append((prefix + name, data))
            inner = cfg._unwrap(info.annotation)
            if isinstance(inner, type) and issubclass(inner, cfg.BaseModel):
                walk(inner, f"{prefix}{name}.", data)

    for model, prefix in ((cfg.Cluster, "cluster."), (cfg.Data, "data."), (cfg.Output, "output.")):
        walk(model, prefix, base)
    members = typing.get_args(typing.get_args(cfg.Distribution)[0])
    params = {"bimodal": {"p_slow": 0.5, "fast": {"dist": "exponential", "rate": 1.0},
                          "slow": {"dist": "exponential", "rate": 0.5}},
              "empirical": {"file": "t.csv", "column": "t"}}  # fmt: skip
    for member in members:
        dist = typing.get_args(member.model_fields["dist"].annotation)[0]
        compute = {"dist": dist, **params.get(dist, {})}
        for name, info in member.model_fields.items():
            if info.is_required() and name not in compute:
                compute[name] = 1.0
        data = copy.deepcopy(base)
        data["cluster"]["compute"] = compute
        data["engine"] = "des"
        out += [(f"cluster.compute.{name}", data) for name in member.model_fields]
    for i, scheme in enumerate(base["schemes"]):
        out += [(f"schemes.{i}.{name}", base) for name in cfg.scheme_model(scheme["protocol"])
                .model_fields]  # fmt: skip
    return out


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    node: Any = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[int(parts[-1]) if isinstance(node, list) else parts[-1]] = value
    return data


def _floats(exp: cfg.Experiment) -> list[float]:
    found: list[float] = []

    def walk(value: Any) -> None:
        if isinstance(value, float):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(exp.model_dump())
    return found


def hostile_loop(folder: str) -> None:
    """Every key x every hostile value through ``from_dict``; prints the counts. Runs in a
    child (``test_every_key...``): sizes like workers = 10**12 were memory bombs."""
    source = Path(folder)
    (source / "t.csv").write_text("t\n1.0\n2.5\n", encoding="utf-8")
    keys = _schema_keys()
    refused = accepted = 0
    for key, base in keys:
        for value in [*HOSTILE, "unknown key"]:
            if value == "unknown key":
                parent = key.rsplit(".", 1)[0] + "." if "." in key else ""
                data = _set(base, parent + "zz_unknown", 1)
            else:
                data = _set(base, key, value)
            try:
                exp = cfg.from_dict(data, source_dir=source)
            except cfg.ConfigError as exc:
                assert exc.problems and all(isinstance(k, str) for k, _ in exc.problems)
                assert all("\n" not in line for line in exc.lines()), exc.lines()
                refused += 1
                continue
            accepted += 1
            assert all(math.isfinite(x) for x in _floats(exp)), (key, value)
            assert exp.name is None or "/" not in exp.name
    print(f"keys={len(keys)} refused={refused} accepted={accepted}")


def test_every_key_with_hostile_values_is_a_config_error_or_valid(tmp_path):
    code = f"from tests.test_config_limits import hostile_loop; hostile_loop({str(tmp_path)!r})"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=env, preexec_fn=_limited,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = dict(item.split("=") for item in proc.stdout.split())
    keys, refused, accepted = (int(counts[k]) for k in ("keys", "refused", "accepted"))
    assert keys > 80
    assert refused > 10 * accepted  # almost every hostile value is refused
