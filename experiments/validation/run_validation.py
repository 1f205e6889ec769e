"""The simulator against closed forms (code: simulator/reproduce/validation.py).

python experiments/validation/run_validation.py [--quick] [--out results/validation]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from simulator.reproduce.validation import run_validation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("results/validation"))
    args = parser.parse_args()
    checks, figures = run_validation(args.out, quick=args.quick)
    for c in checks:
        ks = "-" if math.isnan(c.ks_p) else f"{c.ks_p:.3f}"
        print(
            f"{'ok ' if c.holds else 'BAD'} {c.name}: {c.simulated:.4f} +- {c.stderr:.4f} "
            f"vs {c.analytic:.4f} (z = {c.z:+.2f}, KS p = {ks})"
        )
    print("figures:", *map(str, figures[::2]))


if __name__ == "__main__":
    main()
