"""Run the whole hostile-input table (tests/hostile_cases.py) and print how each input ended.

    python experiments/reliability/count_outcomes.py [--jobs 2] [--match TEXT] [--verbose]

Prints the counts (inputs tried, clean errors, tracebacks, hangs, crashes, wrong results, data
lost, ...), then every case whose outcome differs from the one it expects, grouped by outcome:
the to-do list of issue 16. Exit status 1 when any case differs. Run it from the repository's
root (it imports ``simulator`` and ``tests``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.hostile_cases import CASES, OUTCOMES, counts, run_cases  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("--match", default="", help="only cases whose id contains this text")
    parser.add_argument("--verbose", action="store_true", help="print every case as it ends")
    args = parser.parse_args()
    cases = [case for case in CASES if args.match.lower() in case.id.lower()]
    started = time.monotonic()

    def show(result) -> None:
        if args.verbose:
            mark = "  " if result.as_expected else "!!"
            print(f"{mark} {result.seconds:5.1f}s {result.outcome:<12} {result.case.id}",
                  flush=True)  # fmt: skip

    results = run_cases(cases, jobs=args.jobs, on_result=show)
    tally = counts(results)
    expected = sum(r.as_expected for r in results)
    print(f"inputs tried:   {len(results)}  ({time.monotonic() - started:.0f} s)")
    for outcome in OUTCOMES:
        print(f"{outcome + ':':<15} {tally[outcome]}")
    print(f"as expected:    {expected}")
    print(f"ok-as-expected: {sum(r.as_expected and r.outcome == 'ok' for r in results)}")
    bullets = sorted({r.case.bullet for r in results if r.case.bullet})
    for bullet in bullets:
        mine = [r for r in results if r.case.bullet == bullet]
        good = sum(r.as_expected for r in mine)
        print(f"  issue 16, {bullet}: {good}/{len(mine)} as expected")
    differ = [r for r in results if not r.as_expected]
    if differ:
        print(f"\n{len(differ)} cases differ from the expected outcome:")
        for outcome in OUTCOMES:
            group = [r for r in differ if r.outcome == outcome]
            if group:
                print(f"\n[{outcome}] {len(group)}")
                for result in group:
                    print(f"  - {result.describe()}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
