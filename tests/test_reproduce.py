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
        "paper_sensitivity",
        "training_loss",
        "time_to_target",
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


def test_verdicts_say_where_they_hold_and_form_no_ratio_of_round_off(small_run):
    """Issue 14: REPORT.md headlined "ratio 1.6e+30" of two round-off errors; verdicts said
    nothing about where a claim holds; the instability verdict blamed precision, not
    conditioning; nothing showed how the speed-up depends on the setting."""
    claims = {c["id"]: c for c in json.loads((small_run / "claims.json").read_text())["claims"]}
    approx = claims["approx_mse"]["measured"]
    assert "ell=1: T = " in approx and "better of the polynomial and random" in approx
    assert "e+30" not in approx and "e+2" not in approx.replace("e+20", "")
    assert "[" in claims["exact_speedup"]["measured"]  # intervals
    assert "network latency" in claims["exact_speedup"]["measured"]
    assert "conditioning" in claims["instability"]["why"]
    report = (small_run / "REPORT.md").read_text(encoding="utf-8")
    assert "both exact" in report and "P(exact)" in report and "original (random code)" in report


def test_mse_ratio_is_a_word_at_round_off():
    import pandas as pd

    from simulator.reproduce.report import mse_ratio

    def trials(partial, baseline):
        rows = [("partial", t, e) for t, e in enumerate(partial)]
        rows += [("original", t, e) for t, e in enumerate(baseline)]
        frame = pd.DataFrame(rows, columns=["family", "trial", "rel_error"])
        return frame.assign(ell=1, deadline=10.0)

    assert mse_ratio(trials([1e-30] * 4, [1e-25] * 4), "original", 1, 10.0)["word"] == "both exact"
    exact = mse_ratio(trials([1e-30] * 4, [1e-3] * 4), "original", 1, 10.0)
    assert exact["word"] == "partial exact" and "ratio" not in exact
    ratio = mse_ratio(trials([1e-3, 2e-3, 1e-3, 2e-3], [0.5] * 4), "original", 1, 10.0)
    assert "word" not in ratio and ratio["low"] <= ratio["ratio"] <= ratio["high"]
