"""Bad configs through the real command line: exit status 2, one line per problem naming the
dotted key, no traceback, nothing written (no --out directory, no results/ root, no staging)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.config import DIST_NAMES, from_dict, load_config, protocol_names

from .conftest import BASE_CONFIG, DELETE, make_config, tree, write_config

PROTOCOLS = ", ".join(protocol_names())  # the registry grows: read it, do not copy it
TOP_KEYS = (
    "name",
    "seed",
    "trials",
    "iterations",
    "engine",
    "cluster",
    "data",
    "output",
    "training",
    "schemes",
)
EMPIRICAL = {"dist": "empirical", "file": "times.csv", "column": "seconds"}
TIMES_CSV = "seconds,other\n1.0,2\n1.5,3\n2.5,1\n"


@dataclass
class Case:
    id: str
    overrides: dict[str, Any] = field(default_factory=dict)
    key: str | None = None  # the dotted key the first line must name ("error: KEY: ...")
    says: tuple[str, ...] = ()  # further fragments stderr must contain
    sets: tuple[str, ...] = ()  # --set arguments
    problems: int = 1  # expected number of "error:" lines
    raw: str | None = None  # raw config text instead of make_config(overrides)
    missing: bool = False  # do not write the config file at all
    files: dict[str, str] = field(default_factory=dict)  # written next to the config
    via: str = "clirunner"
    out: bool = True  # pass --out (False: the default results/<name>/<id> root is used)
    allowed: tuple[str, ...] = ()  # keys the "allowed keys here: ..." list must include


CASES = [
    Case(
        "load > workers",
        {"schemes.1.load": 7},
        "schemes.1.load",
        ("load must be at most workers (6), got 7",),
    ),
    Case(
        "ell > load",
        {"schemes.2.ell": 4},
        "schemes.2.ell",
        ("ell must be at most load (3), got 4",),
    ),
    Case(
        "partial_gc chunks != workers",
        {"data.chunks": 8, "schemes": [{"protocol": "partial_gc", "load": 3}]},
        "data.chunks",
        ("partial_gc", "chunks == workers (6), got 8"),
    ),
    Case(
        "uncoded chunks < workers",
        {"data.chunks": 4, "schemes": [{"protocol": "uncoded"}]},
        "data.chunks",
        ("chunks >= workers (6), got 4",),
    ),
    Case(
        "negative rate",
        {"cluster.compute.rate": -1.0},
        "cluster.compute.rate",
        ("greater than 0", "-1.0"),
    ),
    Case(
        "negative shift",
        {"cluster.compute.shift": -0.5},
        "cluster.compute.shift",
        ("greater than or equal to 0", "-0.5"),
    ),
    Case(
        "missing distribution parameter",
        {"cluster.compute.rate": DELETE},
        "cluster.compute.rate",
        ("required key is missing",),
    ),
    Case(
        "unknown distribution",
        {"cluster.compute": {"dist": "erlang", "rate": 1.0}},
        "cluster.compute.dist",
        ("unknown dist 'erlang'", "known: " + ", ".join(DIST_NAMES)),
    ),
    Case(
        "unknown protocol",
        {"schemes.0.protocol": "gossip"},
        "schemes.0.protocol",
        ("unknown protocol 'gossip'", "known: " + PROTOCOLS),
        via="subprocess",
        out=False,
    ),
    Case(
        "scheme without protocol",
        {"schemes.3": {"k": 2}},
        "schemes.3.protocol",
        ("missing 'protocol'", "known: " + PROTOCOLS),
    ),
    Case(
        "unknown top-level key",
        {"epochs": 5},
        "epochs",
        ("unknown key",),
        allowed=TOP_KEYS,
    ),
    Case(
        "unknown nested key",
        {"cluster.network.bandwidth": 3},
        "cluster.network.bandwidth",
        ("unknown key",),
        allowed=("latency", "time_per_float"),
    ),
    Case(
        "unknown key in a scheme",
        {"schemes.1.stragglers": 2},
        "schemes.1.stragglers",
        ("unknown key",),
        allowed=("label", "protocol", "load", "ell", "construction", "candidates"),
    ),
    Case(
        "unknown key in a distribution",
        {"cluster.compute.scale": 2},
        "cluster.compute.scale",
        ("unknown key",),
        allowed=("per", "dist", "shift", "rate"),
    ),
    Case(
        "deadline missing in approximate mode",
        {"schemes.2.deadline": DELETE},
        "schemes.2.deadline",
        ("approximate mode needs a deadline",),
    ),
    Case(
        "deadline given in exact mode",
        {"schemes.2.mode": "exact"},
        "schemes.2.deadline",
        ("only applies to mode: approximate",),
    ),
    Case(
        "fastest_k k > workers",
        {"schemes.3.k": 7},
        "schemes.3.k",
        ("k must be at most workers (6), got 7",),
    ),
    Case(
        "failure worker id out of range",
        {"cluster.failures.workers": [1, 6]},
        "cluster.failures.workers.1",
        ("worker id 6 is out of range 0..5",),
    ),
    Case(
        "negative failure worker id",
        {"cluster.failures.workers": [-1]},
        "cluster.failures.workers.0",
        ("greater than or equal to 0",),
    ),
    Case(
        "slowdown of the wrong length",
        {"cluster.slowdown": [1.0, 2.0, 3.0]},
        "cluster.slowdown",
        ("one factor per worker (6), got 3",),
    ),
    Case(
        "negative slowdown factor",
        {"cluster.slowdown": [1, 1, 1, -2, 1, 1]},
        "cluster.slowdown.3",
        ("greater than 0", "-2"),
    ),
    Case(
        "failures.prob > 1",
        {"cluster.failures.prob": 1.5},
        "cluster.failures.prob",
        ("less than or equal to 1", "1.5"),
    ),
    Case("trials: 0", {"trials": 0}, "trials", ("greater than or equal to 1", "got 0")),
    Case("trials missing", {"trials": DELETE}, "trials", ("required key is missing",)),
    Case(
        "non-integer workers",
        {"cluster.workers": "many"},
        "cluster.workers",
        ("valid integer", "'many'"),
    ),
    Case(
        "fractional workers",
        {"cluster.workers": 2.5},
        "cluster.workers",
        ("valid integer", "2.5"),
    ),
    Case(
        "duplicate scheme labels",
        {"schemes.0.label": "A", "schemes.1.label": "A"},
        "schemes.0.label",
        ("schemes.1.label", "label 'A' is used by several schemes"),
        problems=2,
    ),
    Case(
        "generic construction with ell > 1",
        {"schemes.1.ell": 2, "schemes.1.construction": "generic"},
        "schemes.1.ell",
        ("supports ell = 1 only, got 2",),
    ),
    Case("empty schemes list", {"schemes": []}, "schemes", ("at least 1 item",)),
    Case(
        "per on a nested bimodal part",
        {
            "cluster.compute": {
                "dist": "bimodal",
                "p_slow": 0.1,
                "per": "worker",
                "fast": {"dist": "deterministic", "value": 1.0},
                "slow": {"dist": "deterministic", "value": 5.0, "per": "chunk"},
            }
        },
        "cluster.compute.slow.per",
        ("outer (bimodal) distribution only",),
    ),
    Case(
        "bad parameter inside bimodal",
        {
            "cluster.compute": {
                "dist": "bimodal",
                "p_slow": 0.1,
                "fast": {"dist": "exponential", "rate": 0.0},
                "slow": {"dist": "deterministic", "value": 5.0},
            }
        },
        "cluster.compute.fast.rate",
        ("greater than 0",),
    ),
    Case(
        "empirical file missing",
        {"cluster.compute": dict(EMPIRICAL, file="nope.csv")},
        "cluster.compute.file",
        ("empirical data file not found", "nope.csv"),
        files={"times.csv": TIMES_CSV},
        via="subprocess",
    ),
    Case(
        "empirical column missing",
        {"cluster.compute": dict(EMPIRICAL, column="secs")},
        "cluster.compute.column",
        ("no column 'secs'", "columns: seconds, other"),
        files={"times.csv": TIMES_CSV},
        via="subprocess",
        out=False,
    ),
    Case(
        "empirical column not numeric",
        {"cluster.compute": dict(EMPIRICAL, column="other")},
        "cluster.compute.column",
        ("non-negative finite numbers only",),
        files={"times.csv": "seconds,other\n1.0,fast\n"},
    ),
    Case(
        "YAML syntax error",
        raw="trials: 4\ncluster: {workers: 6\nschemes: []\n",
        says=("is not valid YAML", "at line"),
        via="subprocess",
    ),
    Case(
        "top level is not a mapping",
        raw="- trials: 4\n",
        says=("expected a mapping of keys at the top level",),
    ),
    Case(
        "config file does not exist",
        missing=True,
        says=("config file not found", "exp.yaml"),
        via="subprocess",
    ),
    Case(
        "--set without =",
        sets=("cluster.workers",),
        key="--set",
        says=("expected KEY=VALUE", "'cluster.workers'"),
        via="subprocess",
    ),
    Case(
        "--set list index out of range",
        sets=("schemes.9.ell=2",),
        key="schemes.9",
        says=("list index must be 0..3", "'9'"),
        via="subprocess",
    ),
    Case(
        "--set through a scalar",
        sets=("cluster.workers.count=3",),
        key="cluster.workers",
        says=("not a mapping or a list",),
    ),
    Case(
        "--set producing a bad value",
        sets=("cluster.workers=-3",),
        key="cluster.workers",
        says=("greater than or equal to 1", "-3"),
        via="subprocess",
        out=False,
    ),
    Case(
        "--set producing load > workers",
        sets=("cluster.workers=2",),
        key="schemes.1.load",
        says=("load must be at most workers (2), got 3", "schemes.3.k"),
        problems=5,
    ),
]


def _prepare(case: Case, root: Path) -> Path:
    folder = root / "cfg"
    folder.mkdir()
    for name, text in case.files.items():
        (folder / name).write_text(text, encoding="utf-8")
    path = folder / "exp.yaml"
    if not case.missing:
        write_config(path, case.raw if case.raw is not None else make_config(case.overrides))
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_config_exits_2_names_the_key_and_writes_nothing(case: Case, tmp_path, gcsim):
    config = _prepare(case, tmp_path)
    before = tree(tmp_path)
    args = ["run", str(config), "--quiet"]
    for text in case.sets:
        args += ["--set", text]
    if case.out:
        args += ["--out", str(tmp_path / "out")]

    result = gcsim(args, cwd=tmp_path, via=case.via)

    assert result.exit_code == 2, result.output
    if result.exception is not None:  # CliRunner: the command ended by sys.exit, nothing else
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert "results:" not in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    if case.key is not None:
        assert errors[0].startswith(f"error: {case.key}: "), result.stderr
    for fragment in case.says:
        assert fragment in result.stderr, result.stderr
    if case.allowed:
        listed = errors[0].split("allowed keys here: ", 1)[1].split(", ")
        assert set(case.allowed) <= set(listed), errors[0]
        assert case.key.rsplit(".", 1)[-1] not in listed
    if case.raw is None and not case.missing:
        assert len(errors) == case.problems, result.stderr
    # Nothing written: no --out directory, no results/ root, no hidden staging directory.
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "results").exists()
    assert tree(tmp_path) == before


def test_base_config_of_the_table_is_valid():
    """Every case above breaks one thing: the unbroken config must pass."""
    exp = from_dict(make_config())
    assert exp.cluster.workers == 6
    assert [s.protocol for s in exp.schemes] == [
        "uncoded",
        "original_gc",
        "partial_gc",
        "fastest_k",
    ]
    assert {"uncoded", "fastest_k", "original_gc", "partial_gc"} <= set(protocol_names())


def test_base_config_runs_and_writes_a_run_directory(tmp_path, gcsim):
    """The control for the table: the same command on the unbroken config succeeds."""
    config = write_config(tmp_path / "cfg" / "exp.yaml", make_config())
    result = gcsim(
        ["run", str(config), "--quiet", "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        via="subprocess",
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert names == {
        "config.yaml",
        "manifest.json",
        "summary.parquet",
        "events.parquet",
        "schemes.parquet",
    }


def test_default_run_directory_is_under_results(tmp_path, gcsim):
    config = write_config(tmp_path / "exp.yaml", make_config())
    result = gcsim(["run", str(config), "--quiet"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "results" / "base").iterdir()
    assert (run_dir / "summary.parquet").is_file()


def test_all_problems_are_reported_at_once(tmp_path, gcsim):
    data = make_config({"trials": 0, "cluster.failures.prob": 2.0, "schemes.0.protocol": "gossip"})
    config = write_config(tmp_path / "exp.yaml", data)
    result = gcsim(["run", str(config), "--out", str(tmp_path / "out")], cwd=tmp_path)
    assert result.exit_code == 2
    keys = [line.split(": ")[1] for line in result.stderr.splitlines()]
    assert keys == ["trials", "cluster.failures.prob", "schemes.0.protocol"]
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# validate


def test_validate_quickstart_prints_the_resolved_config(gcsim):
    root = Path(__file__).resolve().parents[1]
    result = gcsim(["validate", "configs/quickstart.yaml"], cwd=root, via="subprocess")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    resolved = yaml.safe_load(result.stdout)
    source = yaml.safe_load((root / "configs" / "quickstart.yaml").read_text(encoding="utf-8"))
    assert resolved["name"] == "quickstart"
    assert resolved["seed"] == source["seed"] == 2024
    assert resolved["trials"] == source["trials"]
    assert resolved["cluster"]["workers"] == 20
    assert resolved["cluster"]["compute"] == {
        "per": "worker",
        "dist": "shifted_exponential",
        "shift": 1.0,
        "rate": 1.0,
    }
    # Every default filled in.
    assert resolved["cluster"]["failures"]["prob"] == 0.05
    assert resolved["cluster"]["failures"]["workers"] == []
    assert resolved["cluster"]["slowdown"] == []
    assert resolved["data"] == {
        "chunks": 20,
        "dim": 1200,
        "gradients": "gaussian",
        "tolerance": 1e-6,
    }
    assert [s["label"] for s in resolved["schemes"]] == [
        "uncoded",
        "fastest_k",
        "original_gc",
        "partial_gc",
    ]
    assert resolved["schemes"][1]["fraction"] == 0.8 and resolved["schemes"][1]["k"] is None
    assert resolved["schemes"][3]["mode"] == "exact"
    assert resolved["schemes"][3]["deadline"] is None
    assert "valid (4 schemes, 2000 trials)" in result.stderr
    # The printed config is itself a valid config that resolves to the same thing.
    assert from_dict(resolved).resolved() == resolved


def test_validate_applies_overrides_and_rejects_bad_ones(tmp_path, gcsim):
    config = write_config(tmp_path / "exp.yaml", make_config())
    good = gcsim(
        [
            "validate",
            str(config),
            "--set",
            "cluster.workers=8",
            "--set",
            "data.chunks=8",
            "--set",
            "schemes.1.load=5",
        ],
        cwd=tmp_path,
    )
    assert good.exit_code == 0, good.output
    resolved = yaml.safe_load(good.stdout)
    assert resolved["cluster"]["workers"] == 8
    assert resolved["schemes"][1]["load"] == 5
    bad = gcsim(["validate", str(config), "--set", "schemes.1.load=9"], cwd=tmp_path)
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: schemes.1.load: ")
    assert bad.stdout == ""


# --------------------------------------------------------------------------------------------
# --out


def test_existing_non_empty_out_is_refused_and_force_replaces_only_a_run(tmp_path, gcsim):
    config = write_config(tmp_path / "exp.yaml", make_config())
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious", encoding="utf-8")
    before = tree(tmp_path)

    for force in ([], ["--force"]):
        refused = gcsim(
            ["run", str(config), "--quiet", "--out", str(out), *force],
            cwd=tmp_path,
            via="subprocess",
        )
        assert refused.exit_code == 2, refused.output
        assert "Traceback" not in refused.output
        assert refused.stderr.startswith("error: --out: ")
        assert tree(tmp_path) == before
    assert (out / "keep.txt").read_text(encoding="utf-8") == "precious"

    run_dir = tmp_path / "run"
    assert gcsim(["run", str(config), "--quiet", "--out", str(run_dir)], tmp_path).exit_code == 0
    again = gcsim(["run", str(config), "--quiet", "--out", str(run_dir)], cwd=tmp_path)
    assert again.exit_code == 2 and "--force" in again.output
    forced = gcsim(["run", str(config), "--quiet", "--out", str(run_dir), "--force"], tmp_path)
    assert forced.exit_code == 0, forced.output
    assert {p.name for p in run_dir.iterdir()} == {
        "config.yaml",
        "manifest.json",
        "summary.parquet",
        "events.parquet",
        "schemes.parquet",
    }
    assert not (tmp_path / "results").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_existing_empty_out_is_used(tmp_path, gcsim):
    config = write_config(tmp_path / "exp.yaml", make_config())
    (tmp_path / "out").mkdir()
    result = gcsim(["run", str(config), "--quiet", "--out", str(tmp_path / "out")], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "summary.parquet").is_file()


def test_out_that_is_a_file_is_refused(tmp_path, gcsim):
    config = write_config(tmp_path / "exp.yaml", make_config())
    (tmp_path / "out").write_text("x", encoding="utf-8")
    result = gcsim(
        ["run", str(config), "--quiet", "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        via="subprocess",
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "--out" in result.stderr
    assert (tmp_path / "out").read_text(encoding="utf-8") == "x"


# --------------------------------------------------------------------------------------------
# Defects found while writing this table, fixed since: these guard the fixes.


def test_markup_in_a_label_does_not_crash_the_error_report(tmp_path, gcsim):
    data = make_config({"schemes.0.label": "[/]", "schemes.1.label": "[/]"})
    config = write_config(tmp_path / "exp.yaml", data)
    result = gcsim(
        ["run", str(config), "--out", str(tmp_path / "out")], cwd=tmp_path, via="subprocess"
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "label '[/]' is used by several schemes" in result.stderr


def test_label_text_is_reported_verbatim(tmp_path, gcsim):
    data = make_config({"schemes.0.label": "[red]A", "schemes.1.label": "[red]A"})
    config = write_config(tmp_path / "exp.yaml", data)
    result = gcsim(["run", str(config), "--out", str(tmp_path / "out")], cwd=tmp_path)
    assert result.exit_code == 2
    assert "label '[red]A' is used by several schemes" in result.stderr


def test_validate_rejects_a_missing_empirical_column(tmp_path, gcsim):
    (tmp_path / "times.csv").write_text(TIMES_CSV, encoding="utf-8")
    config = write_config(
        tmp_path / "exp.yaml", make_config({"cluster.compute": dict(EMPIRICAL, column="secs")})
    )
    result = gcsim(["validate", str(config)], cwd=tmp_path)
    assert result.exit_code == 2
    assert "cluster.compute.column" in result.stderr


def test_yaml_syntax_error_is_one_line(tmp_path, gcsim):
    config = write_config(tmp_path / "exp.yaml", "trials: 4\ncluster: {workers: 6\n")
    result = gcsim(["run", str(config), "--out", str(tmp_path / "out")], cwd=tmp_path)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_boolean_workers_is_rejected(tmp_path, gcsim):
    config = write_config(tmp_path / "exp.yaml", make_config({"cluster.workers": True}))
    result = gcsim(["run", str(config), "--out", str(tmp_path / "out")], cwd=tmp_path)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cluster.workers: ")


def test_base_config_is_not_mutated_by_the_builder():
    make_config({"cluster.workers": 99, "schemes.0.label": "x"}, trials=DELETE)
    assert BASE_CONFIG["cluster"]["workers"] == 6
    assert "label" not in BASE_CONFIG["schemes"][0]
    assert BASE_CONFIG["trials"] == 4


@pytest.mark.parametrize(
    "path", sorted(Path(__file__).parents[1].glob("configs/*.yaml")), ids=lambda p: p.name
)
def test_every_shipped_configs_resolved_form_runs_again(path) -> None:
    """What a run writes as config.yaml (``resolved``) is itself a config that loads without a
    complaint and resolves to the same thing: a run directory can always be rerun."""
    resolved = load_config(path).resolved()
    again = from_dict(resolved, source_dir=path.parent)
    assert again.resolved() == resolved
