"""Measured chunk times, resampled: a cluster's own trace as the model."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from numpy.typing import ArrayLike

from ..errors import ConfigError
from .base import Dist


def read_empirical(path: Path, column: str, key: str = "cluster.compute") -> np.ndarray:
    """Non-negative finite samples from a CSV or parquet column, or ConfigError naming the key."""
    import pandas as pd

    try:
        found = path.is_file()
    except OSError as exc:  # a name too long for the file system, ...
        raise ConfigError([(f"{key}.file", f"cannot use {path}: {exc.strerror}")]) from None
    if not found:
        raise ConfigError([(f"{key}.file", f"empirical data file not found: {path}")])
    try:
        frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a problem with the file
        one_line = " ".join(str(exc).split())  # a reader's message may span lines
        raise ConfigError([(f"{key}.file", f"cannot read {path}: {one_line}")]) from None
    if column not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise ConfigError(
            [(f"{key}.column", f"no column {column!r} in {path}; columns: {columns}")]
        )
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ConfigError(
            [
                (
                    f"{key}.column",
                    f"column {column!r} of {path} must hold non-negative finite numbers only",
                )
            ]
        )
    return values


class Empirical(Dist):
    dist: Literal["empirical"]
    file: str
    column: str
    """Samples are drawn with replacement from this column of a CSV or parquet file (a path
    relative to the config file)."""

    EXAMPLE: ClassVar[dict] = {"file": "compute_times.csv", "column": "seconds"}

    def sampler(self, source_dir: Path) -> Resampled:
        return Resampled(read_empirical(source_dir / self.file, self.column))

    def tail_time(self) -> float:
        """0: the model alone does not know its data, which is checked finite when read (the
        sampler knows its largest value)."""
        return 0.0

    def atoms(self, key: str) -> list[tuple[str, str]]:
        return [(f"{key}.dist", "empirical (resampled, so repeated)")]

    def data_problems(self, key: str, source_dir: Path) -> list[tuple[str, str]]:
        try:
            read_empirical(source_dir / self.file, self.column, key)
        except ConfigError as exc:
            return exc.problems
        return []


class Resampled:
    """The empirical law of loaded samples: draws with replacement, sample moments, ECDF."""

    def __init__(self, values: np.ndarray):
        self.values = values
        self._sorted = np.sort(values)

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.choice(self.values, size=shape, replace=True)

    def mean(self) -> float:
        return float(self.values.mean())

    def var(self) -> float:
        return float(self.values.var())  # of one draw: the population variance of the data

    def cdf(self, x: ArrayLike) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.searchsorted(self._sorted, x, side="right") / self._sorted.size

    def sf(self, x: ArrayLike) -> np.ndarray:
        return 1.0 - self.cdf(x)

    def tail_time(self) -> float:
        return float(self._sorted[-1])
