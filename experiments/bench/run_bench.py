"""Benchmark the event engine and the fast engine against bare SimPy and bare NumPy.

    python experiments/bench/run_bench.py [--quick] [--json PATH] [--sizes 20:4,200:10]

Prints a table and writes the full result as JSON (default: results/bench/<mode>.json).
See simulator/bench.py for what is measured and experiments/bench/README.md for how to read it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Small matrices everywhere: one BLAS thread (bench.run_benchmark also sets it at run time).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from simulator.bench import DEFAULT_SIZES, format_table, run_benchmark, write_json  # noqa: E402


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """``20:4,200:10`` -> ((20, 4), (200, 10))."""
    sizes = []
    for item in text.split(","):
        workers, _, load = item.partition(":")
        sizes.append((int(workers), int(load)))
    return tuple(sizes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials (under a minute)")
    parser.add_argument("--json", type=Path, default=None, help="where to write the result")
    parser.add_argument("--sizes", type=parse_sizes, default=DEFAULT_SIZES, help="m:load,...")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    args = parser.parse_args(argv)

    def progress(message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)

    result = run_benchmark(args.sizes, repeats=args.repeats, quick=args.quick, progress=progress)
    path = args.json or Path("results") / "bench" / f"{result['mode']}.json"
    write_json(result, path)
    try:
        from rich.console import Console

        Console(width=200).print(format_table(result))
    except ImportError:  # pragma: no cover - rich is a dependency
        print(format_table(result))
    print(f"{result['seconds']:.1f} s; written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
