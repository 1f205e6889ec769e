"""Assignments and orderings as configured on schemes: errors, and what ordering buys."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from simulator.coding import assignment as asg
from simulator.coding import layout
from simulator.coding.ordering import q_max
from simulator.coding.registry import build
from simulator.config import ConfigError, from_dict
from simulator.runner import run


def experiment(schemes, workers=12, tmp=None, **extra):
    return from_dict(
        {
            "seed": 3,
            "trials": extra.pop("trials", 10),
            "cluster": {
                "workers": workers,
                "compute": {"dist": "shifted_exponential", "shift": 1.0, "rate": 1.0},
            },
            "data": {"dim": 8, **extra.pop("data", {})},
            "schemes": schemes,
        },
        source_dir=tmp or ".",
    )


def problems(schemes, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as info:
        experiment(schemes, **kwargs)
    return info.value.lines()


def test_layout_errors_name_the_keys(tmp_path):
    (tmp_path / "few.txt").write_text("0 1\n1 2\n2 0\n3 0\n")  # chunk 3 on one worker
    cases = [
        ([{"protocol": "partial_gc", "load": 3, "assignment": "explicit"}],
         "schemes.0.assignment_file"),
        ([{"protocol": "partial_gc", "load": 3, "assignment_file": "x.txt"}],
         "schemes.0.assignment_file"),
        ([{"protocol": "original_gc", "load": 3, "assignment": "graph"}], "schemes.0.assignment"),
        ([{"protocol": "partial_gc", "load": 3, "assignment": "graph",
           "assignment_file": "missing.txt"}], "schemes.0.assignment_file"),
        ([{"protocol": "partial_gc", "load": 2, "ell": 2, "assignment": "explicit",
           "assignment_file": "few.txt"}], "schemes.0.assignment"),
        ([{"protocol": "partial_gc", "load": 3, "ordering": [[0, 1, 2]]}], "schemes.0.ordering"),
        ([{"protocol": "partial_gc", "load": 2, "ordering": [[1, 0]] + [[j, j] for j in
          range(1, 12)]}], "schemes.0.ordering.1"),
    ]  # fmt: skip
    for schemes, key in cases:
        workers = 4 if "few.txt" in json.dumps(schemes) else 12
        data = {"chunks": 4} if workers == 4 else {}
        lines = problems(schemes, workers=workers, tmp=tmp_path, data=data)
        assert any(line.startswith(f"{key}:") for line in lines), (key, lines)
    lines = problems([{"protocol": "original_gc", "load": 3, "assignment": "graph"}])
    assert "schemes.0.construction" in lines[0] and "generic" in lines[0]


def test_explicit_assignment_and_edge_list_are_used(tmp_path):
    (tmp_path / "a.txt").write_text("0 1\n1 2\n2 3\n3 0\n")
    (tmp_path / "ring.txt").write_text("0 1\n1 2\n2 3\n3 0\n")
    exp = experiment(
        [
            {"protocol": "partial_gc", "load": 2, "assignment": "explicit",
             "assignment_file": "a.txt", "label": "explicit"},
            {"protocol": "multi_message", "load": 3, "assignment": "graph",
             "assignment_file": "ring.txt", "label": "ring"},
        ],
        workers=4, tmp=tmp_path,
    )  # fmt: skip
    explicit, ring = build(exp)
    assert explicit.orders == [[0, 1], [1, 2], [2, 3], [3, 0]]
    assert ring.orders == [[0, 1, 3], [1, 0, 2], [2, 1, 3], [3, 0, 2]]


def test_config_accepts_exactly_the_config_assignment_names(tmp_path):
    """The config's ``assignment:`` key and the registry agree: every CONFIG_ASSIGNMENTS name
    runs through the layout code, and a registered name the config may not use (frc, the frc
    protocol's own layout) is refused at the key."""
    (tmp_path / "held.txt").write_text("".join(f"{j} {(j + 1) % 6}\n" for j in range(6)))
    for name in asg.CONFIG_ASSIGNMENTS:
        scheme = {"protocol": "multi_message", "load": 2, "assignment": name}
        if asg.ASSIGNMENT_KINDS[name].file == "required":
            scheme["assignment_file"] = "held.txt"
        (planned,) = build(experiment([scheme], workers=6, tmp=tmp_path))
        assert sorted(len(w) for w in planned.orders) == [2] * 6, name
    hidden = [n for n in asg.ASSIGNMENT_KINDS if n not in asg.CONFIG_ASSIGNMENTS]
    assert hidden == ["frc"]
    lines = problems([{"protocol": "multi_message", "load": 2, "assignment": "frc"}], workers=6)
    assert len(lines) == 1 and lines[0].startswith("schemes.0.assignment:"), lines


def test_random_assignments_are_keyed_by_kind_and_load():
    """The layout draws a random assignment from the seed keyed by its kind and load, the same
    one for every scheme (and label) asking for it."""
    for name in ("random_regular", "graph"):
        schemes = [
            {"protocol": p, "load": 3, "assignment": name, "label": f"{p} {name}"}
            for p in ("partial_gc", "multi_message")
        ]
        first, second = build(experiment(schemes))
        seed = layout.layout_seed(3, f"{name}:load=3", "assignment")
        assert first.orders == second.orders == asg.build_assignment(name, 12, 3, seed)


def test_orderings_are_permutations_and_seeded_per_label():
    schemes = [
        {
            "protocol": "partial_gc",
            "load": 4,
            "assignment": "random_regular",
            "ordering": o,
            "label": o,
        }
        for o in ("natural", "random", "optimal")
    ]
    natural, random_, optimal = build(experiment(schemes))
    for p in (random_, optimal):
        assert [sorted(w) for w in p.orders] == [sorted(w) for w in natural.orders]
    again = build(experiment(schemes))
    assert again[1].orders == random_.orders and again[2].orders == optimal.orders
    # The optimal order meets the regular-class bound 1 + m*load - load(load+1)/2.
    assert q_max(optimal.orders, 12, 1) == 1 + 12 * 4 - 10 < q_max(random_.orders, 12, 1)


def test_optimal_ordering_finishes_sooner_than_random_on_random_regular():
    """Issue 4's acceptance run: partial_gc, m = 20, load = 4, random_regular, no failures,
    2000 trials. Measured: mean T 3.55 (optimal) vs 5.05 (random) vs 5.85 (natural)."""
    schemes = [
        {
            "protocol": "partial_gc",
            "load": 4,
            "assignment": "random_regular",
            "ordering": o,
            "label": o,
        }
        for o in ("optimal", "random")
    ]
    exp = experiment(schemes, workers=20, trials=2000, data={"gradients": "none"})
    table = run(exp).table().set_index("scheme")
    assert table.loc["optimal", "mean_time"] < 0.85 * table.loc["random", "mean_time"]


def test_gcsim_ordering_json_meets_the_bound_with_optimal_and_not_with_random():
    def report(ordering):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "simulator",
                "ordering",
                "--workers",
                "20",
                "--load",
                "4",
                "--assignment",
                "random_regular",
                "--ordering",
                ordering,
                "--json",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return json.loads(out)

    optimal, random_ = report("optimal"), report("random")
    assert set(optimal) >= {"order", "q_max", "lower_bound"}
    assert optimal["q_max"][0] == optimal["lower_bound"][0] == 71
    assert random_["q_max"][0] > random_["lower_bound"][0]
    bad = subprocess.run(
        [sys.executable, "-m", "simulator", "ordering", "--workers", "4", "--load", "6"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--load" in bad.stderr
