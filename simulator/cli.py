"""The ``gcsim`` command. Every verb is a thin layer over the Python API.

Any problem with the user's input (config, file, argument) exits with status 2 and one line per
problem on stderr naming the key and what was expected, before anything is written.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import config as cfg
from .runner import RunResult, run

INPUT_ERROR = 2


def _fail(problems: list[str]) -> None:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for line in problems:
        err.print(f"[bold red]error:[/] {escape(line)}", markup=True)
    sys.exit(INPUT_ERROR)


def _load(config: str, overrides: tuple[str, ...]) -> cfg.Experiment:
    try:
        return cfg.load_config(config, overrides)
    except cfg.ConfigError as exc:
        _fail(exc.lines())
        raise  # unreachable


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gcsim", prog_name="gcsim")
def cli() -> None:
    """gcsim: simulate stragglers and gradient-coding schemes on a random cluster."""


OVERRIDE = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Override a config key with a YAML value, e.g. --set cluster.workers=40 "
    "--set schemes.1.ell=2 (repeatable).",
)  # fmt: skip


@cli.command("run")
@click.argument("config", type=click.Path(dir_okay=False))
@OVERRIDE
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Run directory (default results/<name>/<run-id>).",
)
@click.option("--force", is_flag=True, help="Replace the results already in --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no table.")
def run_command(
    config: str, overrides: tuple[str, ...], out: str | None, force: bool, quiet: bool
) -> None:
    """Run one experiment and write its run directory."""
    from .results import check_writable, default_run_dir, write_run

    exp = _load(config, overrides)
    target = Path(out) if out else default_run_dir(exp)
    try:
        check_writable(target, force)
        result = _run_with_progress(exp, quiet)
    except cfg.ConfigError as exc:  # e.g. an empirical data file that cannot be read
        _fail(exc.lines())
    path = write_run(result, target, argv=["gcsim", *sys.argv[1:]], force=force)
    if not quiet:
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)
        console.print(scheme_table(result))
        rate = result.timings["trials_per_second"]
        console.print(
            f"{exp.trials} trials x {len(exp.schemes)} schemes in "
            f"{result.timings['simulate_seconds']:.1f} s ({rate:.0f} trials/s, "
            f"engine {result.engine})"
        )
    click.echo(f"results: {path}")


def _run_with_progress(exp: cfg.Experiment, quiet: bool) -> RunResult:
    console = Console(stderr=True)
    show = not quiet and console.is_terminal
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, disable=not show, transient=True) as bar:
        task = bar.add_task(f"{exp.name}: trials", total=exp.trials)
        return run(exp, progress=lambda n: bar.advance(task, n))


def _fmt(value: float, digits: int = 3) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def scheme_table(result: RunResult) -> Table:
    """The per-scheme terminal table."""
    table = Table(
        title=f"{result.config.name}: {result.config.trials} trials, seed {result.config.seed}",
        title_justify="left",
    )
    table.caption = (
        "T: completion time (inf: never decoded); mean T over decoded trials; "
        "rel_error = ||g_hat - g||^2 / ||g||^2, mean over decoded trials"
    )
    table.caption_justify = "left"
    for header in (
        "scheme",
        "protocol",
        "mean T",
        "median T",
        "p95 T",
        "decoded",
        "upload floats",
        "rel_error",
    ):
        table.add_column(
            header, justify="left" if header in ("scheme", "protocol") else "right", no_wrap=True
        )
    for row in result.table().itertuples():
        table.add_row(
            row.scheme,
            row.protocol,
            _fmt(row.mean_time_decoded),
            _fmt(row.median_time),
            _fmt(row.p95_time),
            f"{row.decode_rate:.1%}",
            _fmt(row.mean_upload_floats, 0),
            _fmt(row.mean_rel_error),
        )
    return table


@cli.command("validate")
@click.argument("config", type=click.Path(dir_okay=False))
@OVERRIDE
def validate_command(config: str, overrides: tuple[str, ...]) -> None:
    """Check a config and print it with every default filled in."""
    import yaml

    exp = _load(config, overrides)
    click.echo(yaml.safe_dump(exp.resolved(), sort_keys=False), nl=False)
    click.echo(f"# {config}: valid ({len(exp.schemes)} schemes, {exp.trials} trials)", err=True)


@cli.command("schemes")
def schemes_command() -> None:
    """List every protocol with its parameters and defaults."""
    from .coding.registry import PROTOCOLS

    console = Console()
    for name, protocol in PROTOCOLS.items():
        model = _scheme_model(name)
        console.print(f"[bold]{name}[/]: {(model.__doc__ or '').strip()}", highlight=False)
        for field_name, field in model.model_fields.items():
            if field_name == "protocol":
                continue
            default = "required" if field.is_required() else f"default {field.default!r}"
            console.print(
                f"    {field_name}: {_type_name(field.annotation)} ({default})", highlight=False
            )
        del protocol


def _scheme_model(name: str):
    import typing

    for member in typing.get_args(typing.get_args(cfg.Scheme)[0]):
        if typing.get_args(member.model_fields["protocol"].annotation)[0] == name:
            return member
    raise KeyError(name)


def _type_name(annotation) -> str:
    """A readable type: 'int', 'exact | approximate', 'float | None'."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return " | ".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def main() -> None:
    try:
        cli(standalone_mode=True)
    except cfg.ConfigError as exc:
        _fail(exc.lines())


if __name__ == "__main__":
    main()
