"""``gcsim reproduce``: run the paper and validation experiments, judge each claim, write
REPORT.md (figures, tables, a verdict per claim) and claims.json (the verdicts, for tests)."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from .paper import Budget, PaperResults, run_paper
from .validation import Check, run_validation


@dataclass
class Claim:
    id: str
    claim: str
    paper: str
    measured: str
    holds: bool
    why: str = ""


def _speedups(exact: pd.DataFrame) -> dict[int, float]:
    """T_original / T_partial per ell on the cyclic assignment. Schemes are found by their
    parameters (family and ell columns, ``paper._with_parameters``), never by their labels."""
    cyclic = exact[exact.assignment == "cyclic"].set_index(["family", "ell"])["mean"]
    return {
        ell: cyclic.loc[("original", ell)] / cyclic.loc[("partial", ell)]
        for ell in _ells(exact[exact.assignment == "cyclic"])
    }


def _ells(frame: pd.DataFrame) -> list[int]:
    return sorted(int(ell) for ell in frame.ell.unique())


def judge(paper: PaperResults, checks: list[Check]) -> list[Claim]:
    claims = []
    speed = _speedups(paper.exact)
    coded = [s for ell, s in speed.items() if ell < max(speed)]
    claims.append(Claim(
        "exact_speedup", "Exact recovery is faster than the original protocols",
        "about 2x faster",
        "mean T_original / T_partial (cyclic): "
        + ", ".join(f"ell={e}: {s:.2f}x" for e, s in speed.items()),
        bool(np.mean(coded) >= 1.8 and min(coded) > 1.0),
        "holds if the mean speed-up over ell < load is at least 1.8 and every one exceeds 1 "
        "(at ell = load both need every worker, so they coincide)",
    ))  # fmt: skip

    approx = paper.approx
    largest = approx.deadline.max()
    at_t = approx[approx.deadline == largest].set_index(["family", "ell"])["mse"]
    ratios = {
        ell: at_t.loc[("original", ell)] / max(at_t.loc[("partial", ell)], 1e-300)
        for ell in _ells(approx)
    }
    wide = approx.pivot(index="deadline", columns=["family", "ell"], values="mse")
    best = {
        ell: (wide[("original", ell)] / wide[("partial", ell)].clip(lower=1e-300)).max()
        for ell in ratios
    }
    short = [e for e, r in ratios.items() if r < 100]
    explain = (
        f" Not reached for ell = {', '.join(map(str, short))}: with ell copies needed per "
        "chunk, partial_gc itself is still far from exact at this deadline (its mean exact time "
        "grows with ell), so the gap is smaller there; larger deadlines widen it."
        if short
        else ""
    )
    claims.append(Claim(
        "approx_mse", "Approximate recovery has a much lower MSE",
        "several orders of magnitude lower MSE",
        f"MSE original / partial at T = {largest:g}: "
        + ", ".join(f"ell={e}: {r:.1e}" for e, r in ratios.items())
        + "; largest over T: " + ", ".join(f"ell={e}: {r:.1e}" for e, r in best.items()),
        all(r >= 100 for r in ratios.values()),
        "holds if the ratio is at least 100 (two orders of magnitude) for every ell at the "
        "largest deadline." + explain,
    ))  # fmt: skip

    exact = paper.exact
    better_exact, better_mse, total_mse = [], 0, 0
    for kind in ("graph", "random_regular"):
        part = exact[exact.assignment == kind]
        mean = part.set_index(["family", "ell"])["mean"]
        for ell in _ells(part)[:-1]:
            better_exact.append(mean.loc[("partial", ell)] < mean.loc[("random order", ell)])
        mse = paper.ordering_mse[paper.ordering_mse.assignment == kind]
        wide = mse.pivot(index="deadline", columns="ordering", values="mse")
        late = wide[wide.index >= np.median(wide.index)]  # where MSE is well below 1
        better_mse += int((late["optimal"] < late["random"]).sum())
        total_mse += len(late)
    gains = []
    for kind in ("graph", "random_regular"):
        mean = exact[exact.assignment == kind].set_index(["family", "ell"])["mean"]
        gains.append(mean.loc[("random order", 1)] / mean.loc[("partial", 1)])
    claims.append(Claim(
        "ordering", "Optimal chunk ordering beats a random one", "optimal better than random",
        f"exact T lower for {sum(better_exact)}/{len(better_exact)} (assignment, ell < load); "
        f"T_random / T_optimal at ell=1: {gains[0]:.2f} (graph), {gains[1]:.2f} "
        f"(random_regular); MSE lower at {better_mse}/{total_mse} later deadlines",
        all(better_exact) and better_mse >= 0.75 * total_mse,
        "holds if the optimal order's exact completion is lower for every ell < load on both "
        "graph assignments and its MSE is lower at >= 75% of the later half of the deadlines",
    ))  # fmt: skip

    lost = {
        degree: {d: d + 0.5 * math.log10(err) for d, err in by_digits.items()}
        for degree, by_digits in paper.precision.items()
    }
    degrees = sorted(lost)
    grows = all(
        min(lost[b].values()) > max(lost[a].values()) - 0.5
        for a, b in zip(degrees, degrees[1:], strict=False)
    )
    double = paper.poly_double
    poly = double[double.protocol == "original_gc"].set_index("workers").mse
    growth = poly.iloc[-1] / poly.iloc[0]
    worst = lost[degrees[-1]]
    claims.append(Claim(
        "instability", "Polynomial (Lagrange) decoding is numerically unstable",
        "unstable even at high precision",
        f"decimal digits lost at degree {degrees[-1]}: "
        + ", ".join(f"{v:.1f} at {d} digits" for d, v in worst.items())
        + f"; float64 polynomial decoder rel_error {poly.iloc[0]:.1e} (m={poly.index[0]}) to "
        f"{poly.iloc[-1]:.1e} (m={poly.index[-1]})",
        bool(min(worst.values()) >= 6 and grows and growth >= 1e6),
        "holds if at degree 30 at least 6 digits are lost at every precision (raising the "
        "precision does not remove the loss), the loss grows with degree, and the float64 error "
        "grows by 1e6 or more from m = 8 to 32",
    ))  # fmt: skip

    q = paper.qmax
    at_bound = bool((q.optimal == q.bound).all())
    random_above = bool((q[q.ell == 1].random > q[q.ell == 1].bound).all())
    claims.append(Claim(
        "qmax", "The optimal ordering meets the Q_max lower bound",
        "an order with every chunk once at every position is optimal",
        f"optimal = bound in {(q.optimal == q.bound).sum()}/{len(q)} (assignment, ell); random "
        "above the bound at ell = 1 on every assignment: " + ("yes" if random_above else "no"),
        at_bound and random_above,
    ))  # fmt: skip

    failed = [c.name for c in checks if not c.holds]
    claims.append(Claim(
        "closed_forms", "The simulator agrees with the closed forms (PROTOCOLS.md section 6)",
        "order statistics, frc, fail-stop decodability",
        f"{len(checks) - len(failed)}/{len(checks)} checks within 4 standard errors and KS "
        "p > 0.001" + (f"; failed: {', '.join(failed)}" if failed else ""),
        not failed,
    ))  # fmt: skip
    return claims


def reproduce(out: Path, budget_name: str = "full", jobs: int | None = None) -> Path:
    """Run everything, write ``out/REPORT.md`` and ``out/claims.json``; return the report path."""
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    budget = Budget.named(budget_name, jobs or os.cpu_count() or 1)
    paper = run_paper(budget, out)
    checks, validation_figures = run_validation(out / "figures", quick=budget_name != "full")
    claims = judge(paper, checks)
    seconds = time.perf_counter() - started
    report = out / "REPORT.md"
    report.write_text(
        _markdown(paper, checks, validation_figures, claims, budget_name, seconds, out),
        encoding="utf-8",
    )
    (out / "claims.json").write_text(
        json.dumps({"budget": budget_name, "seconds": round(seconds, 1),
                    "claims": [asdict(c) for c in claims]}, indent=2),
        encoding="utf-8",
    )  # fmt: skip
    return report


def _img(paths: list[Path], out: Path) -> str:
    png = next(p for p in paths if p.suffix == ".png")
    return f"![{png.stem}]({png.relative_to(out).as_posix()})"


def _table(frame: pd.DataFrame, floatfmt: str = ".3g") -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        cells = [format(v, floatfmt) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _markdown(paper, checks, validation_figures, claims, budget, seconds, out) -> str:
    verdict = "all claims hold" if all(c.holds for c in claims) else "some claims do NOT hold"
    parts = [
        "# Reproduction report: leveraging partial stragglers within gradient coding",
        "",
        f"gcsim {__version__}, budget `{budget}`, {seconds:.0f} s wall time; {verdict}. "
        f"Regenerate with `gcsim reproduce{' --quick' if budget == 'quick' else ''}`.",
        "",
        "## Claims",
        "",
        "| claim | the paper | measured here | holds |",
        "|---|---|---|---|",
        *[f"| {c.claim} | {c.paper} | {c.measured} | {'yes' if c.holds else '**no**'} |"
          for c in claims],
        "",
        "How each verdict is decided:",
        "",
        *[f"- **{c.id}**: {c.why}" for c in claims if c.why],
        "",
        "## Assumptions (the paper's exact settings were not available)",
        "",
        "- m = N = 20 workers and chunks, load 4; compute time per chunk shift 1 + Exp(rate 1),",
        "  one draw per worker per iteration (a slow worker is slow on every chunk); no failures;",
        "  free network. Configs: `experiments/paper/*.yaml`.",
        "- original_gc: Tandon's random cyclic code (best of 16 draws) at ell = 1, the",
        "  polynomial (Ye & Abbe style) code with Chebyshev points for ell > 1; on graph-based",
        "  assignments Tandon's null-space construction on the assignment (ell = 1 only: no",
        "  original-class code for ell > 1 on non-cyclic assignments is implemented).",
        "- Graph-based assignments: the closed neighbourhoods of a random 3-regular graph",
        "  (`graph`) and a random 4-regular bipartite assignment (`random_regular`), N = m = 20.",
        "- MSE is the mean over trials of ||g_hat - g||^2 / ||g||^2 with Gaussian gradients",
        "  (dim 120); approximate decoders use what arrived by T (or decode exactly earlier).",
        "- Interpolation instability: random Gaussian polynomials of degree 20, 25, 30, values",
        "  at Chebyshev points, Vandermonde LU solve, all at the given decimal precision (mpmath).",
        "",
        "## Exact completion time against ell",
        "",
        _img(paper.figures["exact"], out),
        "",
        _table(paper.exact[["assignment", "scheme", "mean", "std", "decode_rate"]]),
        "",
        "## Approximate recovery: MSE against the deadline",
        "",
        _img(paper.figures["approx"], out),
        "",
        _table(paper.approx.pivot(index="deadline", columns="scheme", values="mse")
               .reset_index(), ".2e"),
        "",
        "## Chunk ordering on graph-based assignments",
        "",
        _img(paper.figures["ordering"], out),
        "",
        _table(paper.ordering_mse.pivot(index=["assignment", "deadline"], columns="scheme",
                                        values="mse").reset_index(), ".2e"),
        "",
        "Q_max(ell) (worst-case chunk computations before exact decoding), m = 20, load 4:",
        "",
        _table(paper.qmax),
        "",
        "The bound for ell = 1 is the averaging bound 1 + m*load - load(load+1)/2; for ell > 1 a",
        "proven LP relaxation (docs/ordering.md). PROTOCOLS.md's Q*(ell), met by the balanced",
        "order, is proven optimal for load <= 4 (as here), for ell = 1, load - 1 and load, but",
        "not in general: cyclic m = 6, load = 5, ell = 3 has an order with Q_max = 24 < Q* = 25",
        "(found and checked by brute force; tests/test_ordering.py).",
        "",
        "## Numerical instability of polynomial decoding",
        "",
        _img(paper.figures["instability"], out),
        "",
        "Relative squared coefficient error by degree (rows) and decimal digits (columns):",
        "",
        _table(pd.DataFrame(paper.precision).T.reset_index(names="degree"), ".2e"),
        "",
        "Double precision, rel_error against m:",
        "",
        _table(paper.poly_double[["workers", "scheme", "mse"]], ".2e"),
        "",
        "## Validation against closed forms",
        "",
        *[_img(validation_figures[i : i + 2], out) + "\n"
          for i in range(0, len(validation_figures), 2)],
        "| check | simulated | std. error | analytic | z | KS p | holds |",
        "|---|---|---|---|---|---|---|",
        *[f"| {c.name} | {c.simulated:.4f} | {c.stderr:.4f} | {c.analytic:.4f} | {c.z:+.2f} | "
          f"{'-' if math.isnan(c.ks_p) else format(c.ks_p, '.3f')} | "
          f"{'yes' if c.holds else '**no**'} |" for c in checks],
        "",
    ]  # fmt: skip
    return "\n".join(parts)
