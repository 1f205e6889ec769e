"""The ``gcsim`` command. Every verb is a thin layer over the Python API.

Any problem with the user's input (config, file, argument) exits with status 2 and one line per
problem on stderr naming the key and what was expected, before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import config as cfg
from .coding.assignment import GENERATED_ASSIGNMENTS
from .coding.ordering import ORDERINGS
from .paths import environment_problem, make_dirs, remove_if_empty
from .replace import target_lock
from .runner import RunResult, run
from .tables import FORMATS

INPUT_ERROR = 2


def _fail(problems: list[str]) -> None:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for line in problems:
        err.print(f"[bold red]error:[/] {escape(line)}", markup=True)
    sys.exit(INPUT_ERROR)


def _problem_lines(exc: BaseException) -> list[str]:
    """One line per problem: a config's, or the environment's (a path that cannot be made or
    written, a full disk), naming the path and the fix."""
    if isinstance(exc, cfg.ConfigError):
        return exc.lines()
    return [environment_problem(exc)]


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


def local_jobs_limit() -> int:
    """The most processes ``--jobs`` may start on this machine: 4 per core, or 64."""
    return max(64, 4 * (os.cpu_count() or 1))


class JobsOption(click.Option):
    """``--jobs``. On a local process pool every job is a process of its own (hundreds of MB
    each), so more than ``local_jobs_limit()`` is refused before anything starts (--jobs
    1000000 ran until memory ran out). With Dask (``--dask``, or for a sweep
    DASK_SCHEDULER_ADDRESS) the number keeps the meaning Dask gives it and is not limited."""

    def __init__(self, *args, dask_from_env: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dask_from_env = dask_from_env

    def handle_parse_result(self, ctx: click.Context, opts, args):
        # ``opts`` holds every option given, so --dask counts wherever it stands on the line.
        value, args = super().handle_parse_result(ctx, opts, args)
        dask = opts.get("dask") or (self.dask_from_env and os.environ.get("DASK_SCHEDULER_ADDRESS"))
        limit = local_jobs_limit()
        if isinstance(value, int) and value > limit and not dask and not ctx.resilient_parsing:
            _fail(
                [
                    f"--jobs: {value:,} processes is more than this machine runs usefully "
                    f"(at most {limit}: 4 per core on {os.cpu_count() or 1} cores, or 64); "
                    "lower --jobs, or give --dask for a cluster"
                ]
            )
        return value, args


FORMAT = click.option(
    "--format", "form", type=click.Choice(FORMATS),
    default="table", show_default=True,
    help="How to print the per-scheme statistics: terminal tables fitted to its width, one "
    "markdown table, or the numbers as CSV or JSON (then alone on stdout).",
)  # fmt: skip

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
@click.option(
    "--jobs",
    "-j",
    cls=JobsOption,
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Split the trials over this many processes (same results as 1).",
)
@click.option(
    "--dask",
    metavar="ADDRESS|local",
    default=None,
    help="Split the trials over a Dask cluster (an address, or 'local').",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no table.")
@FORMAT
def run_command(
    config: str,
    overrides: tuple[str, ...],
    out: str | None,
    force: bool,
    jobs: int,
    dask: str | None,
    quiet: bool,
    form: str,
) -> None:
    """Run one experiment and write its run directory."""
    from .results import check_writable, default_run_dir, write_run
    from .scratch import scratch_path

    exp = _load(config, overrides)
    created: list[Path] = []
    try:
        target = Path(out) if out else default_run_dir(exp)
        if target.parent.is_dir():  # first repair what killed runs left beside the target
            _repair(target, quiet)
        check_writable(target, force)  # before anything is created
        if dask is not None:
            from .executors import check_dask_address

            check_dask_address(dask)
        created = make_dirs(target.parent)
        with target_lock(target):  # one writer per target, held until the results are in
            # The summary and the event traces stream to hidden files beside the target
            # (memory bounded whatever the trials and output.events_trials); write_run moves
            # them into the run directory. On any failure or interrupt they are removed.
            events = scratch_path(target, "events", ".parquet")
            summary = scratch_path(target, "summary", ".parquet")
            try:
                result = _run_with_progress(exp, quiet, jobs, dask, events, summary)
                path = write_run(result, target, argv=["gcsim", *sys.argv[1:]], force=force)
            finally:
                events.unlink(missing_ok=True)
                summary.unlink(missing_ok=True)
    except (cfg.ConfigError, OSError) as exc:
        remove_if_empty(created)
        _fail(_problem_lines(exc))
    except BaseException:  # an interrupt: the directories made for nothing go too
        remove_if_empty(created)
        raise
    data = form in ("csv", "json")  # stdout holds the numbers only; the rest goes to stderr
    if not quiet:
        print_run_tables(result, form)
        rate = result.timings["trials_per_second"]
        speed = f"{rate:.0f} trials/s"
        if exp.iterations > 1:
            speed = f"{exp.iterations} iterations each, {rate * exp.iterations:.0f} iterations/s"
        click.echo(
            f"{exp.trials} trials x {len(exp.schemes)} schemes in "
            f"{result.timings['simulate_seconds']:.1f} s ({speed}, "
            f"engine {result.engine}, {result.executor})",
            err=data,
        )
    click.echo(f"results: {path}", err=data)


def _repair(target: Path, quiet: bool) -> None:
    """Put back results an interrupted ``--force`` set aside, and remove the scratch of runs
    killed outright beside ``target`` (only this host's dead processes': never a live run's)."""
    from .scratch import recover_retired, sweep_stale

    for line in recover_retired(target):
        click.echo(line, err=True)
    removed, freed = sweep_stale(target.parent)
    if removed and not quiet:
        click.echo(
            f"removed {removed} temporary file(s) of killed runs from {target.parent} "
            f"({freed / 2**20:.1f} MiB)",
            err=True,
        )


def progress_bar(quiet: bool) -> Progress:
    """A transient progress bar with ETA on stderr, silent when quiet or not on a terminal."""
    console = Console(stderr=True)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn()]  # fmt: skip
    show = not quiet and console.is_terminal
    return Progress(*columns, console=console, disable=not show, transient=True)


def _run_with_progress(
    exp: cfg.Experiment,
    quiet: bool,
    jobs: int = 1,
    dask: str | None = None,
    events_to: Path | None = None,
    summary_to: Path | None = None,
) -> RunResult:
    with progress_bar(quiet) as bar:
        task = bar.add_task(f"{exp.name}: trials", total=exp.trials)
        advance = lambda n: bar.advance(task, n)  # noqa: E731
        return run(
            exp, progress=advance, jobs=jobs, dask=dask, events_to=events_to, summary_to=summary_to
        )


def _run_title(result: RunResult) -> str:
    return f"{result.config.name}: {result.config.trials} trials, seed {result.config.seed}"


def scheme_table(result: RunResult, width: int = 80) -> list:
    """The per-scheme terminal tables of a run, split to fit ``width`` columns (what
    ``print_run_tables`` draws on a terminal of that width)."""
    from .tables import run_layout, terminal_tables

    layout = run_layout(result.table(), _run_title(result), result.config.data.tolerance)
    return terminal_tables(layout, width)


def print_run_tables(result: RunResult, form: str = "table") -> None:
    """A run's per-scheme statistics in ``form`` (``RunResult.table()``, read from a streamed
    summary's file one column at a time) and, for a training run, its time to target.
    Shared by ``run`` and ``emulate``; with csv/json the text goes to stderr."""
    from .tables import emit, run_layout

    stats = result.table()
    layout = run_layout(stats, _run_title(result), result.config.data.tolerance)
    emit(layout, stats, form, Console())
    if result.training is not None:
        from .training.target import format_time_to_target

        target = result.config.training.target_loss
        click.echo(format_time_to_target(result.training, target), err=form in ("csv", "json"))


@cli.command("sweep")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--grid",
    "grids",
    multiple=True,
    metavar="KEY=V1,V2,...",
    required=True,
    help="A swept key and its values (YAML), e.g. --grid cluster.workers=12,20,40 "
    "(repeatable; the product of all grids is run).",
)
@click.option(
    "--zip",
    "zipped",
    is_flag=True,
    help="Pair the grids' values instead of taking "
    "their product (all grids must have the same length).",
)
@OVERRIDE
@click.option(
    "--jobs",
    "-j",
    cls=JobsOption,
    dask_from_env=True,
    type=click.IntRange(min=1),
    default=None,
    help="Parallel workers (default: all cores).",
)
@click.option(
    "--dask",
    metavar="ADDRESS|local",
    default=None,
    help="Run on a Dask cluster: a scheduler address, or 'local' for a LocalCluster "
    "(default: $DASK_SCHEDULER_ADDRESS if set, else a local process pool).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Sweep directory (default results/<name>/sweep-<fingerprint>).",
)
@click.option("--force", is_flag=True, help="Recompute every point, even finished ones.")
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Times a failing point is retried before it is reported as failed.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no table.")
@FORMAT
def sweep_command(config, grids, zipped, overrides, jobs, dask, out, force, retries, quiet, form):
    """Run a grid of experiments (resumable: a rerun skips finished points)."""
    from .sweep import run_sweep

    console = Console(stderr=True)
    try:
        with progress_bar(quiet) as bar:
            task = bar.add_task("points", total=None)

            def progress(point_id: str, status: str) -> None:
                bar.advance(task, 1)
                if status == "failed":
                    console.print(f"point {point_id} failed", highlight=False)

            from .sweep import plan_points

            _, planned = plan_points(Path(config), list(overrides), list(grids), zipped)
            bar.update(task, total=len(planned))
            report = run_sweep(
                Path(config),
                list(grids),
                list(overrides),
                zipped,
                jobs,
                dask,
                Path(out) if out else None,
                force,
                retries,
                progress,
            )
    except (cfg.ConfigError, OSError) as exc:
        _fail(_problem_lines(exc))
    data = form in ("csv", "json")  # stdout holds the numbers only; the rest goes to stderr
    if not quiet:
        from .tables import emit, sweep_layout, sweep_statistics

        frame, keys = sweep_statistics(report)
        emit(sweep_layout(frame, keys, f"sweep {report.root}"), frame, form, Console())
    if report.skipped:
        click.echo(
            f"{len(report.skipped)} points already done (skipped); --force recomputes them",
            err=data,
        )
    for point_id, why in report.recomputed.items():
        click.echo(f"point {point_id}: recomputed ({why})", err=data)
    click.echo(
        f"{len(report.ran)} points run on {report.executor} in {report.seconds:.1f} s", err=data
    )
    click.echo(f"results: {report.root}", err=data)
    if report.failed:
        for point_id, error in report.failed.items():
            click.echo(f"error: point {point_id} failed: {error}", err=True)
        sys.exit(1)


def sweep_table(report, width: int = 80) -> list:
    """The sweep's terminal tables: one row per (point, scheme), each point's statistics read
    from its own ``points/<id>/summary.parquet`` (``tables.sweep_statistics``)."""
    from .tables import sweep_layout, sweep_statistics, terminal_tables

    frame, keys = sweep_statistics(report)
    return terminal_tables(sweep_layout(frame, keys, f"sweep {report.root}"), width)


@cli.command("plot")
@click.argument("path", type=click.Path(file_okay=False))
@click.option(
    "--out", type=click.Path(file_okay=False), help="Figure directory (default PATH/figures)."
)
@click.option(
    "--trial",
    type=click.IntRange(min=0),
    default=None,
    help="The trial drawn as a timeline (a run directory only; default: the first traced).",
)
@click.option(
    "--timelines",
    metavar="SCHEME",
    multiple=True,
    help="Draw timelines for these schemes only (default: every scheme).",
)
def plot_command(path: str, out: str | None, trial: int | None, timelines: tuple[str, ...]) -> None:
    """Figures of a run or a sweep directory, as PNG and PDF."""
    from . import plots

    target = Path(path)
    try:
        if (target / "sweep.json").exists():
            if trial is not None or timelines:
                raise ValueError("--trial/--timelines: timelines are drawn from a run directory "
                                 f"(e.g. {target / 'points' / '<id>'}), not a sweep")  # fmt: skip
            files = plots.plot_sweep(target, Path(out) if out else target / "figures")
        elif (target / "summary.parquet").exists():
            files = plots.plot_run(
                target,
                Path(out) if out else target / "figures",
                trial=trial,
                timeline_schemes=list(timelines) or None,
            )
            if (target / "training.parquet").exists():
                from .training.plots import plot_training

                files += plot_training(target, Path(out) if out else target / "figures")
        else:
            raise FileNotFoundError(
                f"{target} is neither a run directory (summary.parquet) nor "
                "a sweep directory (sweep.json)"
            )
    except (FileNotFoundError, ValueError) as exc:
        _fail([str(exc)])
    except OSError as exc:
        _fail([environment_problem(exc)])
    for file in files:
        click.echo(str(file))


@cli.command("trace")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--trial", type=click.IntRange(min=0), required=True, help="The trial to export.")
@click.option("--scheme", default=None, help="One scheme's label (default: every scheme).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Output JSON (default RUN_DIR/trace_trial<K>.json).",
)
def trace_command(run_dir: str, trial: int, scheme: str | None, out: str | None) -> None:
    """Export one trial as Chrome/Perfetto Trace Event JSON (open in ui.perfetto.dev)."""
    from .perfetto import write_chrome_trace

    target = Path(out) if out else Path(run_dir) / f"trace_trial{trial}.json"
    if not (Path(run_dir) / "events.parquet").exists():
        _fail([f"{run_dir}: not a run directory (no events.parquet)"])
    try:
        path = write_chrome_trace(Path(run_dir), trial, scheme, target)
    except ValueError as exc:
        _fail([f"--trial/--scheme: {exc}"])
    except OSError as exc:
        _fail([environment_problem(exc)])
    click.echo(str(path))


@cli.command("ordering")
@click.option(
    "--workers", "-m", type=click.IntRange(min=1), required=True, help="Workers m (= chunks)."
)
@click.option("--load", type=click.IntRange(min=1), required=True, help="Chunks per worker.")
@click.option(
    "--assignment",
    type=click.Choice(GENERATED_ASSIGNMENTS),
    default="cyclic",
    show_default=True,
)
@click.option(
    "--ordering",
    type=click.Choice(ORDERINGS),
    default="natural",
    show_default=True,
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--ell",
    type=click.IntRange(min=1),
    default=None,
    help="Show only this ell; --ordering optimal optimizes for it (default: every ell = "
    "1..load, optimal for ell = 1).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON: order, q_max (indexed by ell - 1), lower_bound, assignment.",
)
def ordering_command(workers, load, assignment, ordering, seed, ell, as_json) -> None:
    """Q_max(ell) of an assignment's processing order, against the lower bound."""
    import json

    from .budget import available_memory, format_bytes, format_duration
    from .coding.ordering import REPORT_LIMIT_SECONDS, ordering_report, report_cost

    if load > workers:
        _fail([f"--load: must be at most --workers ({workers}), got {load}"])
    if ell is not None and ell > load:
        _fail([f"--ell: must be at most --load ({load}), got {ell}"])
    # Refuse up front what would not finish or fit (--workers 10000000 ran for ever).
    search = (ell or 1) if ordering == "optimal" else 1
    cost = report_cost(workers, load, table=not as_json, optimize_ell=search)
    memory = available_memory()
    sizes = f"{workers:,} workers x load {load:,}"
    if cost.bytes > memory:
        _fail(
            [
                f"--workers: {sizes} would need about {format_bytes(cost.bytes)} of memory, "
                f"more than the {format_bytes(memory)} this process may use; lower --workers "
                "or --load"
            ]
        )
    if cost.seconds + cost.table_seconds > REPORT_LIMIT_SECONDS:
        table = (
            f" (printing the table: {format_duration(cost.table_seconds)}; --json skips it)"
            if cost.table_seconds > REPORT_LIMIT_SECONDS / 2
            else ""
        )
        _fail(
            [
                f"--workers: {sizes} would take about "
                f"{format_duration(cost.seconds + cost.table_seconds)}{table}, more than the "
                f"{format_duration(REPORT_LIMIT_SECONDS)} this command may; lower --workers "
                "or --load"
            ]
        )
    try:
        report = ordering_report(workers, load, assignment, ordering, seed, ell=ell or 1)
    except ValueError as exc:
        _fail([f"--assignment {assignment}: {exc}"])
    ells = [ell] if ell else list(range(1, load + 1))
    if as_json:
        click.echo(json.dumps(report))
        return
    console = Console()
    orders = Table(
        title=f"{assignment} assignment, {ordering} order"
        + (f" for ell = {ell or 1}" if ordering == "optimal" else "")
        + f" (m = {workers}, load = "
        f"{load}, seed {seed})",
        title_justify="left",
    )
    orders.add_column("worker", justify="right")
    orders.add_column("holds (natural)")
    orders.add_column("processes in order")
    for worker, (held, order) in enumerate(zip(report["assignment"], report["order"], strict=True)):
        orders.add_row(str(worker), " ".join(map(str, held)), " ".join(map(str, order)))
    console.print(orders)
    bounds = Table(
        title="Q_max(ell): worst-case chunk computations before exact decoding",
        title_justify="left",
    )
    for header in ("ell", "Q_max", "lower bound", "gap"):
        bounds.add_column(header, justify="right")
    for e in ells:
        q, b = report["q_max"][e - 1], report["lower_bound"][e - 1]
        gap = "-" if q is None or b is None else str(q - b)
        bounds.add_row(str(e), "inf" if q is None else str(q), "inf" if b is None else str(b), gap)
    console.print(bounds)


@cli.command("reproduce")
@click.option("--quick", is_flag=True, help="A smaller budget: minutes on 2 cores.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Report directory (default results/reproduce or results/reproduce-quick).",
)
@click.option(
    "--jobs",
    "-j",
    cls=JobsOption,
    type=click.IntRange(min=1),
    default=None,
    help="Parallel workers (default: all cores).",
)
def reproduce_command(quick: bool, out: str | None, jobs: int | None) -> None:
    """Reproduce the paper's claims and validate against closed forms: writes REPORT.md."""
    from .reproduce.common import EXPERIMENTS
    from .reproduce.report import reproduce

    if not (EXPERIMENTS / "paper").is_dir():
        _fail(
            [
                f"experiments/ not found at {EXPERIMENTS}: run from a clone of the repository "
                "installed with pip install -e ."
            ]
        )
    target = Path(out) if out else Path("results") / ("reproduce-quick" if quick else "reproduce")
    report = reproduce(target, "quick" if quick else "full", jobs)
    claims = json.loads((target / "claims.json").read_text(encoding="utf-8"))
    for claim in claims["claims"]:
        mark = "holds" if claim["holds"] else "DOES NOT HOLD"
        click.echo(f"{claim['id']:>14}: {mark}: {claim['measured']}")
    click.echo(f"report: {report} ({claims['seconds']:.0f} s)")


@cli.command("bench")
@click.option("--quick", is_flag=True, help="Fewer trials (under a minute).")
@click.option(
    "--sizes",
    default="20:4,200:10,1000:10",
    show_default=True,
    metavar="M:LOAD,...",
    help="Cluster sizes to measure.",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Best of this many timings.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the JSON (default results/bench/<mode>.json).",
)
@click.option(
    "--numerics/--no-numerics",
    default=True,
    show_default=True,
    help="Also time every scheme with gradients on against a bare NumPy decode.",
)
@click.option("--numerics-only", is_flag=True, help="Only the numerics rows (gradients on).")
@click.option(
    "--training/--no-training",
    default=True,
    show_default=True,
    help="Also time training runs (m = 20 and 100) against bare NumPy gradient descent.",
)
def bench_command(
    quick: bool,
    sizes: str,
    repeats: int,
    json_path: str | None,
    numerics: bool,
    numerics_only: bool,
    training: bool,
) -> None:
    """Trials/s of the event and fast engines, against bare SimPy and bare NumPy baselines."""

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .bench import format_numerics_table, format_table, run_benchmark, run_numerics, write_json

    try:
        parsed = tuple(
            (int(m), int(load)) for m, _, load in (item.partition(":") for item in sizes.split(","))
        )
    except ValueError:
        _fail([f"--sizes: expected M:LOAD pairs like 20:4,200:10, got {sizes!r}"])
    if any(load < 1 or load > m for m, load in parsed):
        _fail([f"--sizes: every LOAD must be between 1 and its M, got {sizes!r}"])
    err = Console(stderr=True)

    def say(message: str) -> None:
        err.print(f"  {message}", highlight=False)

    if numerics_only:
        result = {"mode": "quick" if quick else "full"}
    else:
        result = run_benchmark(parsed, repeats=repeats, quick=quick, progress=say)
    if numerics or numerics_only:
        result["numerics"] = run_numerics(parsed, repeats=repeats, quick=quick, progress=say)
    if training and not numerics_only:
        from .training.bench import bench_training_runs

        say("training runs (m = 20, 100)")
        mode = "quick" if quick else "full"
        result["training"] = bench_training_runs((20, 100), mode=mode, repeats=repeats)
    name = result["mode"] + ("-numerics" if numerics_only else "")
    path = Path(json_path) if json_path else Path("results") / "bench" / f"{name}.json"
    write_json(result, path)
    if not numerics_only:
        Console(width=200).print(format_table(result))
    if "numerics" in result:
        Console(width=200).print(format_numerics_table(result["numerics"]))
    if "training" in result:
        from .training.bench import format_bench_training_runs

        click.echo(format_bench_training_runs(result["training"]))
    click.echo(f"json: {path}")


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
    """List every protocol with its parameters, defaults and what it models."""
    from .coding.registry import PROTOCOLS

    console = Console() if Console().is_terminal else Console(width=110)
    for name in PROTOCOLS:
        model = cfg.scheme_model(name)
        summary = " ".join((model.__doc__ or "").split())
        console.print(f"[bold]{name}[/]: {escape(summary)}")
        for field_name, field in model.model_fields.items():
            if field_name == "protocol":
                continue
            default = "required" if field.is_required() else f"default {field.default!r}"
            doc = " ".join((field.description or _field_doc(model, field_name)).split())
            line = f"    {field_name}: {_type_name(field.annotation)} ({default})"
            console.print(escape(line + (f"\n        {doc}" if doc else "")), highlight=False)


def _field_doc(model, name: str) -> str:
    """The docstring under a field in its class body (how config.py documents fields)."""
    import ast
    import inspect

    for cls in model.__mro__:
        try:
            tree = ast.parse(inspect.getsource(cls))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body else []
        for node, after in zip(body, body[1:], strict=False):
            target = getattr(node, "target", None)
            if getattr(target, "id", None) == name and isinstance(after, ast.Expr):
                value = getattr(after, "value", None)
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    return value.value
    return ""


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


@cli.command("fit")
@click.argument("times", type=click.Path())
@click.option("--column", default=None, help="The column of measured chunk times (CSV/parquet).")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Where fit.png and fits.csv go (default: RUN_DIR/fit for a run directory or its "
    "events.parquet, else results/fit/<file name>).",
)
@click.option(
    "--bootstrap", type=click.IntRange(min=0), default=50, show_default=True,
    help="Parametric bootstrap refits per law, for the standard errors (0: none).",
)  # fmt: skip
def fit_command(times: str, column: str | None, out: str | None, bootstrap: int) -> None:
    """Fit every compute-time law to measured chunk times (a run directory or its
    events.parquet, or a CSV/parquet column) and print the compute: block to paste; from a
    real run's trace, the network: block too (latency, time per float, PS overhead)."""
    from . import fit, network_fit

    try:
        values, censored, per = fit.measured_times(Path(times), column)
        what = "TIMES" if column is None else f"--column {column}"
        fits = fit.fit_all(values, what, bootstrap, censored=censored)
        frame = fit.read_table(Path(times)) if column is None else None
        network = None
        if frame is not None and fit.is_events(frame) and _has_messages(frame):
            network, quality = network_fit.fit_network(frame)
        target = Path(out) if out else fit.default_out(Path(times))
        fit.write_report(fits, values, target, censored)
    except (cfg.ConfigError, OSError) as exc:
        _fail(_problem_lines(exc))
    console = Console() if Console().is_terminal else Console(width=130)
    console.print(fit.fits_table(fits, values, censored))
    click.echo("\n# paste into the config's cluster: section")
    click.echo("  " + fits[0].block(per))
    mean = fits[0].model(per).mean()
    if mean is None or not math.isfinite(mean):
        click.echo(f"# note: this {fits[0].dist} has no finite mean (its tail is that heavy); "
                   "check the data for stalls, or take the next law down the ranking")  # fmt: skip
    if network is not None:
        click.echo("  " + network_fit.network_block(network))
        click.echo(
            f"# network: |error| of the predicted arrival instants, median {quality['queue']:.3g}"
            f", mean {quality['queue_mean']:.3g} (by the delays alone, without the PS's queue: "
            f"{quality['delays']:.3g}, {quality['delays_mean']:.3g}; the fit lowers the mean)"
        )
    click.echo(f"figure: {target / 'fit.png'}")


def _has_messages(events) -> bool:
    return bool(events["kind"].astype(str).str.endswith("_received").any())


@cli.command("emulate")
@click.argument("config", type=click.Path(dir_okay=False))
@OVERRIDE
@click.option(
    "--dask", metavar="ADDRESS|local", default="local", show_default=True,
    help="Where the worker processes run: a local Dask cluster, or a scheduler address with "
    "at least cluster.workers workers.",
)  # fmt: skip
@click.option(
    "--time-scale", type=float, default=1.0, show_default=True,
    help="Seconds of real time per simulated time unit (0: inject nothing).",
)  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False), help="Run directory.")
@click.option("--force", is_flag=True, help="Replace the results already in --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no table.")
def emulate_command(config, overrides, dask, time_scale, out, force, quiet) -> None:
    """Run the config's trials for real: one worker process per simulated worker (a Dask
    actor), this process as the parameter server; writes a run directory marked real."""
    from .emulate import EmulationError, emulate, emulation_problems, write_real_run
    from .results import check_writable, default_run_dir

    exp = _load(config, overrides)
    try:
        problems = emulation_problems(exp, time_scale)
        if problems:
            raise cfg.ConfigError(problems)
        target = Path(out) if out else default_run_dir(exp, Path("results") / "real")
        check_writable(target, force)
        if dask != "local":
            from .executors import check_dask_address

            check_dask_address(dask)
        with progress_bar(quiet) as bar:
            task = bar.add_task("emulating", total=exp.trials)
            result = emulate(exp, dask, time_scale, lambda n: bar.advance(task, n))
        path = write_real_run(result, target, ["gcsim", *sys.argv[1:]], force)
    except (cfg.ConfigError, OSError) as exc:
        _fail(_problem_lines(exc))
    except EmulationError as exc:  # the real cluster failed: its one line, nothing written
        _fail([f"emulation: {exc}; nothing was written"])
    if not quiet:
        print_run_tables(result)
        click.echo(f"{exp.trials} trials x {len(exp.schemes)} schemes, {result.executor}")
    click.echo(f"results: {path}")


@cli.command("compare")
@click.argument("sim_run", type=click.Path())
@click.argument("real_run", type=click.Path())
@click.option(
    "--out", type=click.Path(file_okay=False),
    help="Where the tables and figures go (default REAL_RUN/compare).",
)  # fmt: skip
def compare_command(sim_run: str, real_run: str, out: str | None) -> None:
    """Predicted (SIM_RUN) vs measured (REAL_RUN, from gcsim emulate) completion time and
    communication, trial by trial: relative errors per scheme, figures, message delays."""
    from .compare import compare, write_comparison

    try:
        result = compare(Path(sim_run), Path(real_run))
        target = Path(out) if out else Path(real_run) / "compare"
        replaced = (target / "table.csv").is_file()
        write_comparison(result, target)
    except (cfg.ConfigError, OSError) as exc:
        _fail(_problem_lines(exc))
    table = Table(title="measured vs predicted completion time, per scheme")
    heads = ["scheme", "trials", "median rel err", "p95 rel err", "decoded agree",
             "msgs equal", "up floats equal", "down floats equal", "ctrl equal"]  # fmt: skip
    for head in heads:
        table.add_column(head, justify="left" if head == "scheme" else "right")
    shares = ["decoded_agree", "messages_equal", "upload_floats_equal", "download_floats_equal",
              "control_messages_equal"]  # fmt: skip
    for row in result["table"].to_dict("records"):
        cells = [f"{row['median_rel_error']:.1%}", f"{row['p95_rel_error']:.1%}"]
        cells += [f"{row[name]:.0%}" for name in shares]
        table.add_row(row["scheme"], str(row["trials"]), *cells)
    console = Console() if Console().is_terminal else Console(width=150)
    console.print(table)
    scale = result["manifest"].get("time_scale") or 0
    for row in result["delays"].itertuples():
        real = f" ({row.median * scale * 1e3:.2f} ms)" if scale else ""
        click.echo(f"measured {row.kind} delay: median {row.median:.4g}{real}, p95 "
                   f"{row.p95:.4g} over {row.count} messages")  # fmt: skip
    click.echo(f"calibrate: gcsim fit {real_run}  (prints the network: block to simulate again)")
    again = " (replacing the previous comparison there)" if replaced else ""
    click.echo(f"figures: {target / 'scatter.png'}, {target / 'cdf.png'}{again}")


class Interrupted(BaseException):
    """SIGINT or SIGTERM, raised in the main thread wherever it is (``_on_interrupt``).

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` (a sweep's retry
    of a failing point) swallows it, and every ``finally`` and context manager on the way out
    runs: the pool's workers are stopped and the run's scratch files removed before ``main``
    exits. Not KeyboardInterrupt itself, which click would turn into "Aborted!" and status 1."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_interrupt(signum: int, frame: object) -> None:
    """Stop the command: raise ``Interrupted`` once. Signals that come while it unwinds are
    ignored, so that the cleanup they would cut short finishes (it is bounded: the pool's
    workers get ``executors.STOP_GRACE_SECONDS`` before they are killed)."""
    for each in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(each) != signal.SIG_IGN:
            signal.signal(each, _ignore_signal)
    raise Interrupted(signum)


def _ignore_signal(signum: int, frame: object) -> None:
    """A handler that does nothing (unlike SIG_IGN, not inherited by any process started
    later)."""


def main() -> None:
    """The console script: the CLI with SIGINT and SIGTERM turned into a prompt, clean stop
    (``Interrupted``): nothing half-written left, exit status 128 + the signal number (130,
    143), one line on stderr. Once the command is over, either way, they are ignored: the
    process is only exiting, and an exception raised now (in an exit hook) would print a
    traceback. A signal this process was started ignoring (a background job of a script,
    ``nohup``) stays ignored, as Python leaves it."""
    handled = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) != signal.SIG_IGN]
    for each in handled:
        signal.signal(each, _on_interrupt)
    try:
        try:
            cli(standalone_mode=True)
        finally:
            for each in handled:
                signal.signal(each, _ignore_signal)
    except cfg.ConfigError as exc:
        _fail(exc.lines())
    except Interrupted as exc:
        name = signal.Signals(exc.signum).name
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        err.print(
            f"[bold red]error:[/] interrupted by {name}: stopped, nothing unfinished was "
            "written (rerunning a sweep resumes it)",
            markup=True,
        )
        _exit_now(128 + exc.signum)


def _exit_now(status: int) -> None:
    """Exit an interrupted command at once. The cleanup is done (the pool's workers are gone,
    scratch files removed, every ``finally`` has run); what remains of a normal exit is
    the atexit hooks, run here, and the interpreter tearing down every module and object,
    which took 1-1.5 s of a 1.4 s stop on a loaded 2-core machine and is skipped: the user
    asked the command to stop."""
    import atexit

    try:
        atexit._run_exitfuncs()  # multiprocessing's, concurrent.futures', logging's
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)


if __name__ == "__main__":
    main()
