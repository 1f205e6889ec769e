"""The scheme parameters as data: one row per scheme (``schema.SCHEMES``), ``schemes.parquet``.

Figures and reports group and label schemes by their parameters (ell, load, deadline...). Those
used to be recovered by parsing labels ("partial ell=2") or by re-reading ``config.yaml`` and
matching labels, which breaks as soon as a label says something else than the config. Here the
parameters are read off the validated scheme specs once, written beside the summary, and joined
on the ``scheme`` column.

The specs are read generically: every column of ``SCHEMES`` after ``protocol`` (except
``engine``) is the attribute of that name of a scheme's spec, when it has one. A new protocol
therefore needs no change here; a protocol without a parameter gets the column's missing value
("" for strings, -1 for integers, NaN for floats), and a value given as a list in the config
(per-worker ``ordering`` lists) is written as "explicit".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import ValidationError

from .config import Experiment
from .schema import SCHEME_COLUMNS, SCHEMES

#: The missing value of each column dtype: a protocol without that parameter.
MISSING: dict[str, Any] = {"str": "", "int64": -1, "float64": math.nan, "bool": False}
#: Columns read from the specs (the rest: ``scheme`` from the labels, ``engine`` from the run).
SPEC_COLUMNS = tuple(c.name for c in SCHEMES if c.name not in ("scheme", "engine", "parameters"))
#: The file name inside a run directory (and, with point and grid columns, a sweep directory).
FILE = "schemes.parquet"


def scheme_table(exp: Experiment, engines: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per scheme of ``exp``, in config order, with ``SCHEME_COLUMNS`` and their dtypes.
    ``engines``: the engine that ran each scheme, by label (``RunResult.engines``); a scheme
    without one gets "" (unknown)."""
    engines = engines or {}
    # Which parameters a kind of spec has, looked up once per kind: a failed attribute lookup
    # on a pydantic model costs microseconds, and a config may list thousands of schemes.
    has: dict[type, tuple[str, ...]] = {}
    rows = []
    for spec, label in zip(exp.schemes, exp.labels(), strict=True):
        kind = type(spec)
        if kind not in has:
            has[kind] = tuple(name for name in SPEC_COLUMNS if hasattr(spec, name))
        row: dict[str, Any] = dict.fromkeys(SPEC_COLUMNS)
        row["scheme"] = label
        for name in has[kind]:
            row[name] = getattr(spec, name)
        for name in SPEC_COLUMNS:
            row[name] = _value(row[name], SCHEME_COLUMNS[name])
        row["parameters"] = json.dumps(spec.model_dump(mode="json", exclude={"label"}),
                                       sort_keys=True)  # fmt: skip
        row["engine"] = engines.get(label, "")
        rows.append(row)
    return _typed(pd.DataFrame(rows, columns=list(SCHEME_COLUMNS)))


def _value(value: Any, dtype: str) -> Any:
    """A spec attribute as a cell of a ``dtype`` column: None -> the missing value, a list
    (values given one per worker in the config) -> "explicit", an enum -> its value."""
    if value is None:
        return MISSING[dtype]
    if isinstance(value, list | tuple):
        return "explicit"
    if dtype == "str":
        return str(getattr(value, "value", value))
    if dtype == "int64":
        return int(value)
    if dtype == "float64":
        return float(value)
    return value


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(SCHEME_COLUMNS)


def read_schemes(run_dir: Path | str) -> pd.DataFrame:
    """The scheme table of a run directory: its ``schemes.parquet``, or, for a run directory
    written before gcsim wrote that file, the same table built from its ``config.yaml`` by
    ``scheme_table`` (one code path; ``engine`` is then "", since those runs did not record it
    per scheme). Raises FileNotFoundError when neither file exists and ValueError when the old
    config no longer validates (the message says to rerun the config)."""
    run_dir = Path(run_dir)
    path = run_dir / FILE
    if path.is_file():
        return _typed(pd.read_parquet(path))
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"{run_dir}: neither {FILE} nor config.yaml; not a run directory")
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        exp = Experiment.model_validate(data)
    except (yaml.YAMLError, ValidationError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(
            f"{run_dir}: written before {FILE} existed, and its config.yaml does not validate "
            f"with this gcsim ({first}); rerun its config to get {FILE}"
        ) from None
    return scheme_table(exp)
