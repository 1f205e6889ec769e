"""The printed tables of ``gcsim run`` and ``gcsim sweep``: one layout, four formats.

A table is first built as plain cells (``Layout``: the columns that identify a row, the
statistics, a caption), then rendered as terminal tables, markdown, CSV or JSON. The terminal
form (plain fixed-width text) fits the console's width by splitting the statistics into as many
tables as it takes, each repeating the identifying columns: a cell is never cut ("4…" said
nothing), and every number printed is whole. CSV and JSON carry the numbers themselves
(``statistics.column_stats`` keys), for scripts; JSON writes NaN as null and infinities as the
strings "inf" and "-inf".

Numbers come from ``statistics.py`` only, so every table states its rules the same way
(``statistics.RULES``, the caption).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field

import pandas as pd
from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from .statistics import RULES

#: The formats ``--format`` takes.
FORMATS = ("table", "markdown", "csv", "json")


@dataclass
class Layout:
    """A table as text cells: ``keys`` identify a row (repeated in every part of a split
    table), ``columns`` are the statistics; a cell may hold two lines (a value, then its
    interval or standard error)."""

    title: str
    keys: list[str]
    columns: list[str]
    rows: list[tuple[list[str], list[str]]] = field(default_factory=list)
    caption: str = ""
    #: Each column's group (times, errors, traffic): a split keeps a group whole if it can.
    groups: list[int] = field(default_factory=list)


def fmt(value: float, digits: int = 3) -> str:
    """A number for a table: '-' for NaN, 'inf', 2.07e-26 when tiny or huge, else fixed."""
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


def rate_cell(row: dict, short: str) -> str:
    """'99.8%' over '[99.5, 99.9]': a rate and its 95% Wilson interval, in percent."""
    low, high = row[f"{short}_rate_lo"], row[f"{short}_rate_hi"]
    if math.isnan(low):
        return percent(row[f"{short}_rate"])
    return f"{percent(row[f'{short}_rate'])}\n[{100 * low:.1f}, {100 * high:.1f}]"


def interval_cell(value: float, low: float, high: float) -> str:
    """A value over its 95% interval."""
    if math.isnan(low):
        return fmt(value)
    return f"{fmt(value)}\n[{fmt(low)}, {fmt(high)}]"


def error_cell(value: float, error: float, digits: int = 3) -> str:
    """A mean over its standard error ('-' alone when there is none)."""
    if math.isnan(error):
        return fmt(value, digits)
    return f"{fmt(value, digits)}\n±{fmt(error, digits)}"


#: The statistics of a scheme's row, in order: (header, cell of a ``column_stats`` row).
TIME_COLUMNS = (
    ("decoded", lambda r: rate_cell(r, "decode")),
    ("accurate", lambda r: rate_cell(r, "accurate")),
    ("mean T\n(decoded)", lambda r: error_cell(r["mean_time_decoded"], r["se_time_decoded"])),
    ("median T", lambda r: interval_cell(r["median_time"], r["median_time_lo"],
                                         r["median_time_hi"])),
    ("p95 T", lambda r: interval_cell(r["p95_time"], r["p95_time_lo"], r["p95_time_hi"])),
)  # fmt: skip
ERROR_COLUMNS = (
    ("rel_error\nmean", lambda r: error_cell(r["mean_rel_error"], r["se_rel_error"])),
    ("rel_error\nmax", lambda r: fmt(r["max_rel_error"])),
)
TRAFFIC_COLUMNS = (
    ("up floats", lambda r: fmt(r["mean_upload_floats"], 0)),
    ("down floats", lambda r: fmt(r["mean_download_floats"], 0)),
    ("msgs +\nctrl", lambda r: f"{r['mean_messages']:.1f} + {r['mean_control_messages']:.0f}"),
)

RUN_NOTES = (
    "T: completion time. up/down floats, msgs (data uploads) + ctrl (control messages): "
    "means per trial."
)


def run_layout(stats: pd.DataFrame, title: str, tolerance: float | None = None) -> Layout:
    """The run table: one row per scheme (``RunResult.table()``), its protocol under the
    label where the label is not the protocol's name."""
    parts = [TIME_COLUMNS, ERROR_COLUMNS, TRAFFIC_COLUMNS]
    columns = [column for part in parts for column in part]
    layout = Layout(title, ["scheme"], [header for header, _ in columns])
    layout.groups = [number for number, part in enumerate(parts) for _ in part]
    for row in stats.to_dict("records"):
        layout.rows.append(([scheme_cell(row)], [cell(row) for _, cell in columns]))
    rules = (
        RULES
        if tolerance is None
        else RULES.replace("data.tolerance", f"data.tolerance ({tolerance:g})")
    )
    layout.caption = f"{rules} {RUN_NOTES}"
    return layout


def scheme_cell(row: dict) -> str:
    """A scheme's label, over its protocol in parentheses when the label is another name."""
    label, protocol = row["scheme"], row["protocol"]
    return label if label == protocol else f"{label}\n({protocol})"


def sweep_layout(frame: pd.DataFrame, keys: list[str], title: str) -> Layout:
    """The sweep table: one row per (point, scheme), the grid values first (``frame``: the
    grid keys, ``scheme`` and each point's ``column_stats``, in grid order)."""
    columns = [*TIME_COLUMNS, *ERROR_COLUMNS]
    layout = Layout(title, [*keys, "scheme"], [header for header, _ in columns])
    layout.groups = [0] * len(TIME_COLUMNS) + [1] * len(ERROR_COLUMNS)
    for row in frame.to_dict("records"):
        layout.rows.append(
            ([_grid_text(row[key]) for key in keys] + [scheme_cell(row)],
             [cell(row) for _, cell in columns])
        )  # fmt: skip
    layout.caption = RULES
    return layout


def sweep_statistics(report) -> tuple[pd.DataFrame, list[str]]:
    """Every finished point's per-scheme statistics (``runner.scheme_table_of_file`` of its
    ``points/<id>/summary.parquet``, one point in memory at a time), each row led by the
    point's id and grid values (``report.grid``: the combined file's values and dtypes), and
    the grid keys. Empty when the sweep combined nothing."""
    from .runner import scheme_table_of_file

    grid = report.grid
    if grid is None or grid.empty:
        return pd.DataFrame(), []
    keys = list(grid.columns[1:])
    frames = []
    for position, point in enumerate(grid["point"]):
        stats = scheme_table_of_file(report.root / "points" / point / "summary.parquet")
        for index, column in enumerate(grid.columns):
            values = grid[column].iloc[[position]].repeat(len(stats))
            stats.insert(index, column, values.array)
        frames.append(stats)
    return pd.concat(frames, ignore_index=True), keys


def _grid_text(value: object) -> str:
    return fmt(value) if isinstance(value, float) and not math.isfinite(value) else str(value)


# --------------------------------------------------------------------------------------------
# Rendering


#: Spaces between two columns of a terminal table.
GAP = 2


def terminal_tables(layout: Layout, width: int) -> list[Text]:
    """The layout as terminal tables no wider than ``width`` (plain text: a title, headers, a
    rule, the rows), then the caption (wrapped at the console's width). The statistics go in
    consecutive parts, as many per table as fit beside the identifying columns (at least one),
    and a group of columns (times, errors, traffic) stays on one table when it fits.

    Drawn here rather than by rich's Table, whose layout pass cost about 10 ms a row: a run of
    3,000 schemes took minutes to print. Each part is one ``Text`` that is never wrapped."""
    cells = [_shown_rows(layout, index) for index in range(len(layout.columns))]
    keys = [[row[0][k] for row in layout.rows] for k in range(len(layout.keys))]
    key_widths = [_column_width(h, c) for h, c in zip(layout.keys, keys, strict=True)]
    widths = [_column_width(h, c) for h, c in zip(layout.columns, cells, strict=True)]

    def fits(members: list[int]) -> bool:
        used = sum(key_widths) + sum(widths[i] for i in members)
        return used + GAP * (len(key_widths) + len(members) - 1) <= width

    kinds = layout.groups or [0] * len(layout.columns)
    parts: list[list[int]] = []
    for kind in dict.fromkeys(kinds):
        members = [index for index, each in enumerate(kinds) if each == kind]
        if parts and fits(parts[-1] + members):
            parts[-1] += members  # the whole group fits beside the one before
        elif fits(members):
            parts.append(members)  # the whole group on a table of its own
        else:  # too wide alone: as many of its columns per table as fit
            for index in members:
                if parts and parts[-1][0] in members and fits([*parts[-1], index]):
                    parts[-1].append(index)
                else:
                    parts.append([index])
    texts = []
    for number, part in enumerate(parts):
        title = layout.title if len(parts) == 1 else f"{layout.title} ({number + 1}/{len(parts)})"
        columns = [*keys, *(cells[i] for i in part)]
        headers = [*layout.keys, *(layout.columns[i] for i in part)]
        sizes = [*key_widths, *(widths[i] for i in part)]
        left = len(layout.keys)
        texts.append(Text(_draw(title, headers, columns, sizes, left) + "\n", no_wrap=True))
    if not texts and layout.title:
        texts.append(Text(layout.title, no_wrap=True))
    return [*texts, Text(layout.caption, style="dim")] if layout.caption else texts


def _shown_rows(layout: Layout, index: int) -> list[str]:
    return [_shown(row[1][index]) for row in layout.rows]


def _column_width(header: str, cells: list[str]) -> int:
    lines = [*header.split("\n"), *(line for cell in cells for line in cell.split("\n"))]
    return max(cell_len(line) for line in lines)


def _draw(title: str, headers: list[str], columns: list[list[str]], sizes: list[int],
          left: int) -> str:  # fmt: skip
    """One table as text: the first ``left`` columns left-justified, the rest right-justified,
    multi-line headers aligned on their last line, multi-line cells on consecutive lines."""

    def line(pieces: list[str]) -> str:
        out = []
        for position, (piece, size) in enumerate(zip(pieces, sizes, strict=True)):
            pad = " " * (size - cell_len(piece))
            out.append(piece + pad if position < left else pad + piece)
        return (" " * GAP).join(out).rstrip()

    def block(texts: list[str], top: bool) -> list[str]:
        split = [text.split("\n") for text in texts]
        height = max(len(lines) for lines in split)
        padded = [
            lines + [""] * (height - len(lines)) if top else [""] * (height - len(lines)) + lines
            for lines in split
        ]
        return [line([lines[k] for lines in padded]) for k in range(height)]

    total = sum(sizes) + GAP * (len(sizes) - 1)
    lines = [title, *block(headers, top=False), "─" * total]
    for row in range(len(columns[0]) if columns else 0):
        lines += block([column[row] for column in columns], top=True)
    return "\n".join(lines)


def _shown(cell: str) -> str:
    """A cell as printed: an interval that says nothing more than its value ("inf" over
    "[inf, inf]") is left out."""
    value, _, interval = cell.partition("\n")
    return value if interval == f"[{value}, {value}]" else cell


def markdown(layout: Layout) -> str:
    """The layout as one GitHub markdown table (a cell's lines joined by a space), the title
    above and the caption below."""

    def cell(text: str) -> str:
        return " ".join(_shown(text).split("\n")).replace("|", "\\|")

    headers = [cell(h) for h in [*layout.keys, *layout.columns]]
    lines = [f"**{layout.title}**", "", "| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join(["---"] * len(layout.keys) + ["---:"] * len(layout.columns)) + "|")
    for keys, cells in layout.rows:
        lines.append("| " + " | ".join(cell(c) for c in [*keys, *cells]) + " |")
    lines += ["", layout.caption]
    return "\n".join(lines)


def csv_text(frame: pd.DataFrame) -> str:
    """The numbers as CSV (inf as 'inf', NaN as an empty field)."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue()


def json_text(frame: pd.DataFrame) -> str:
    """The numbers as a JSON list of records: NaN as null, infinities as "inf"/"-inf" (JSON
    has no such numbers)."""

    def plain(value: object) -> object:
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float):
            if math.isnan(value):
                return None
            if math.isinf(value):
                return "inf" if value > 0 else "-inf"
        return value

    records = [{k: plain(v) for k, v in row.items()} for row in frame.to_dict("records")]
    return json.dumps(records, indent=1)


def emit(layout: Layout, frame: pd.DataFrame, form: str, console: Console) -> None:
    """Print a table in ``form`` (``FORMATS``): terminal tables fitted to ``console``'s width;
    markdown, CSV and JSON as plain text (no wrapping, no colours)."""
    if form == "table":
        for part in terminal_tables(layout, console.width):
            if part.no_wrap:  # a table, drawn already: written as is (rich takes ms a row)
                console.file.write(part.plain + "\n")
            else:
                console.print(part)
        return
    if form == "markdown":
        out = markdown(layout)
    elif form == "csv":
        out = csv_text(frame)
    else:
        out = json_text(frame)
    console.file.write(out if out.endswith("\n") else out + "\n")
