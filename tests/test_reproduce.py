"""The committed reference report's claims, rechecked on a small budget: a flip fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.reproduce.report import reproduce

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "claims.json"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    reproduce(out, budget_name="test", jobs=2)
    return out


def test_report_is_written_with_every_figure(small_run):
    report = (small_run / "REPORT.md").read_text(encoding="utf-8")
    for stem in (
        "paper_exact_vs_ell",
        "paper_mse_vs_deadline",
        "paper_ordering_mse",
        "paper_instability",
        "validation_cdf_exp",
        "validation_cdf_pareto",
    ):
        assert f"figures/{stem}.png" in report
        assert (small_run / "figures" / f"{stem}.png").stat().st_size > 10_000
        assert (small_run / "figures" / f"{stem}.pdf").exists()
    assert "| claim | the paper | measured here | holds |" in report


def test_no_claim_flips_against_the_reference(small_run):
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    now = json.loads((small_run / "claims.json").read_text(encoding="utf-8"))
    expected = {c["id"]: c["holds"] for c in reference["claims"]}
    measured = {c["id"]: c for c in now["claims"]}
    assert set(measured) == set(expected)
    flipped = {k: measured[k]["measured"] for k in expected if measured[k]["holds"] != expected[k]}
    assert not flipped, f"claims flipped against results/reference: {flipped}"
