"""Make one or all of the paper's reconstructed figures (the code is simulator/reproduce/paper.py;
`gcsim reproduce` runs them all and judges the claims).

    python experiments/paper/make_figures.py [--budget quick|full] [--only exact,approx,ordering,
        instability,qmax] [--out results/paper]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from simulator.reproduce import paper

FIGURES = {
    "exact": lambda b, out: paper.exact_experiments(b, out)[0],
    "approx": lambda b, out: paper.approximate_experiment(b, out)[0],
    "ordering": lambda b, out: paper.ordering_experiment(b, out)[0],
    "instability": lambda b, out: paper.instability_experiment(b, out)[1],
    "qmax": lambda b, out: paper.qmax_table(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", choices=["quick", "full"], default="quick")
    parser.add_argument("--only", default=",".join(FIGURES), help="comma-separated figures")
    parser.add_argument("--out", type=Path, default=Path("results/paper"))
    args = parser.parse_args()
    budget = paper.Budget.named(args.budget)
    for name in args.only.split(","):
        if name not in FIGURES:
            parser.error(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")
        table = FIGURES[name](budget, args.out)
        print(f"== {name}\n{table.to_string(index=False)}\n")
    print(f"figures: {args.out / 'figures'}")


if __name__ == "__main__":
    main()
