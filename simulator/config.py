"""The experiment config: pydantic models of the YAML, loading, ``--set`` overrides, validation.

Every problem a user can make in a config is reported here, before anything runs or is written,
as one line per problem naming the dotted key path and what was expected (``ConfigError``).
Structural problems (types, unknown keys, missing values) come from pydantic; semantic ones (a
load larger than the cluster, a deadline missing in approximate mode) from ``_semantic_problems``.
"""

from __future__ import annotations

import collections
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from . import budget, yaml_loading
from . import workers as workers_model
from .coding.layout import layout_problems
from .coding.registry import PROTOCOLS
from .coding.scheme_config import AssignedScheme, SchemeConfig
from .compute.base import TAIL
from .compute.registry import DIST_NAMES as DIST_NAMES
from .compute.registry import Distribution
from .engine.choice import fast_problems
from .errors import ConfigError as ConfigError  # re-exported: callers import it from here too
from .models import (  # re-exported
    LABEL_CHARS as LABEL_CHARS,
)
from .models import (
    NAME_BYTES as NAME_BYTES,
)
from .models import (
    Label as Label,
)
from .models import (
    Name as Name,
)
from .models import (
    NonNegFloat as NonNegFloat,
)
from .models import (
    PositiveFloat as PositiveFloat,
)
from .models import (
    Strict as Strict,
)
from .training.config import Training
from .training.config import parameters as training_parameters
from .training.config import problems as training_problems

# --------------------------------------------------------------------------------------------
# Compute-time distributions: one module each in compute/; ``Distribution`` (the union of the
# models, by their ``dist`` key) and ``DIST_NAMES`` come from compute/registry.py.

# --------------------------------------------------------------------------------------------
# Cluster, data, output


class Failures(Strict):
    prob: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Each worker is down (fail-stop: never starts) independently with this probability."""
    workers: list[Annotated[int, Field(ge=0)]] = []
    """These worker ids are down in every trial."""
    crash_rate: NonNegFloat = 0.0
    """Rate of the exponential time at which a live worker crashes mid-trial (0: never)."""
    detect_timeout: NonNegFloat = 0.0
    """How long after a crash the PS notices it."""


class Network(Strict):
    latency: NonNegFloat = 0.0
    time_per_float: NonNegFloat = 0.0
    ps_ingress: Literal["parallel", "shared"] = "parallel"
    """parallel: every upload has its own link; shared: uploads to the PS queue for one link
    (first come, first served), each occupying it size * time_per_float, then latency."""
    ps_overhead: NonNegFloat = 0.0
    """Time the PS spends on each message it receives or sends, one message at a time (the PS
    is one process): a message to the PS is handled once it has arrived and the PS is free; a
    message from the PS leaves once the PS has spent this on it. 0: the PS handles any number
    of messages at once. Fitted from a real run by ``gcsim fit`` (docs/real-runs.md)."""

    def delay(self, size: int) -> float:
        """Time a message of ``size`` floats takes to arrive."""
        return self.latency + size * self.time_per_float


class Cluster(Strict):
    """The workers and how they differ (``workers.py`` says how each key is drawn)."""

    workers: Annotated[int, Field(ge=1)]
    compute: Distribution | None = None
    """The compute law of every worker not in a group (every worker without groups)."""
    groups: list[workers_model.Group] = []
    """Groups of workers with their own compute law (count, fraction, or the rest)."""
    slowdown: workers_model.Slowdown = []
    """Factors multiplying every compute time: a list (one per worker), a mapping
    {worker: factor}, or {fraction, factor, pick} (empty: all 1)."""
    racks: workers_model.Racks | None = None
    stragglers: workers_model.MarkovStragglers | None = None
    """Persistent stragglers: a two-state Markov chain per worker over the iterations."""
    delay: Distribution | None = None
    """A load-independent delay per worker and iteration, added before its first chunk."""
    failures: Failures = Failures()
    network: Network = Network()


class Data(Strict):
    chunks: Annotated[int, Field(ge=1)] | None = None
    """Number of data chunks N; defaults to the number of workers."""
    dim: Annotated[int, Field(ge=1)] = 1200
    gradients: Literal["gaussian", "none"] = "gaussian"
    """gaussian: materialize iid N(0, 1) chunk gradients and decode real numbers;
    none: skip numerics (faster; rel_error is NaN)."""
    tolerance: Annotated[float, Field(ge=0)] = 1e-6
    """A decode whose rel_error exceeds this is reported inaccurate (the summary's
    ``accurate`` column; far above round-off, 1e-30 for a stable exact decode)."""


class Output(Strict):
    events_trials: Annotated[int, Field(ge=0)] = 10
    """Event traces are kept for the first this-many trials only."""
    decode_cond: bool = True
    """Compute ``decode_cond``, the condition number of what each decode inverted. false
    writes NaN and skips the solves behind it: for original_gc that is a dense SVD of an
    (m - s) x m matrix per trial (about 0.1 s at m = 1000, most of such a run)."""


# --------------------------------------------------------------------------------------------
# Schemes: one model per protocol, defined in the protocol's module; ``protocol`` selects it.

Scheme = Annotated[
    Union[tuple(cls.config for cls in PROTOCOLS.values())],  # noqa: UP007 - built at run time
    Field(discriminator="protocol"),
]


def scheme_model(protocol: str) -> type[SchemeConfig]:
    """The config model of a protocol's scheme entry."""
    return PROTOCOLS[protocol].config


def protocol_names() -> list[str]:
    """Every protocol name a config may use."""
    return list(PROTOCOLS)


# --------------------------------------------------------------------------------------------
# The experiment


class Experiment(Strict):
    name: Name | None = None
    """Names the run's directory, results/<name>/ (default: the config file's stem)."""
    seed: Annotated[int, Field(ge=0)] = 0
    trials: Annotated[int, Field(ge=1)]
    iterations: Annotated[int, Field(ge=1)] = 1
    """Iterations per trial: a trial is a run of this many iterations, one summary row each,
    with worker states (``cluster.stragglers``) carried over them."""
    engine: Literal["des", "fast", "auto"] = "auto"
    """des: the SimPy event engine; fast: the vectorised engine (same results, only where it is
    exact: no crashes, no shared ingress, continuous compute times); auto: fast where exact."""
    cluster: Cluster
    data: Data = Data()
    output: Output = Output()
    training: Training | None = None
    """Turns each trial into a training run (``training/``): the model's gradients are what
    the schemes send, and each iteration steps with what the PS decoded."""
    schemes: Annotated[list[Scheme], Field(min_length=1)]

    # Where the config came from: relative data paths resolve against it. Not a YAML key.
    _source_dir: Path = PrivateAttr(default=Path("."))

    @model_validator(mode="after")
    def _fill_defaults(self) -> Experiment:
        if self.data.chunks is None:
            object.__setattr__(self.data, "chunks", self.cluster.workers)
        if self.training is not None and "dim" not in self.data.model_fields_set:
            # A gradient is the model's: as many floats as it has parameters.
            object.__setattr__(self.data, "dim", training_parameters(self.training))
        return self

    @property
    def source_dir(self) -> Path:
        return self._source_dir

    @property
    def chunks(self) -> int:
        assert self.data.chunks is not None
        return self.data.chunks

    def labels(self) -> list[str]:
        """Scheme labels: the given label, else the protocol name (suffixed #2, #3 if repeated).

        Linear in the schemes: a label once taken stays taken, so the suffix search for a base
        resumes where it stopped last time (3,000 unlabelled schemes took minutes when every
        search started again from #2 in a list)."""
        out: list[str] = []
        taken: set[str] = set()
        tried: dict[str, int] = {}  # base -> the last suffix tried for it
        for scheme in self.schemes:
            base = scheme.label or scheme.protocol
            label, n = base, tried.get(base, 1)
            if n > 1:
                label = f"{base}#{n}"
            while label in taken:
                n += 1
                label = f"{base}#{n}"
            tried[base] = n
            taken.add(label)
            out.append(label)
        return out

    def resolved(self) -> dict[str, Any]:
        """The config with every default filled in, as plain data (what ``config.yaml`` holds),
        less the keys a training run decides itself (``data.gradients``; ``training.synthetic``
        of a real dataset): written, they would be refused when the file is run again."""
        data = self.model_dump(mode="json")
        data["name"] = self.name
        if self.training is not None:
            data["data"].pop("gradients", None)
            if self.training.dataset != "synthetic":
                data["training"].pop("synthetic", None)
        for scheme, label in zip(data["schemes"], self.labels(), strict=True):
            scheme["label"] = label
        return data


# --------------------------------------------------------------------------------------------
# Semantic checks: things a type cannot say.


def _semantic_problems(exp: Experiment, layouts: bool = True) -> list[tuple[str, str]]:
    """What the types cannot say. ``layouts``: also build each scheme's assignment and check
    it (off when the run is too large to plan: building it is what would not fit)."""
    problems: list[tuple[str, str]] = []
    m, n = exp.cluster.workers, exp.chunks
    cluster = exp.cluster
    differ = workers_model.problems(cluster)
    problems += differ
    problems += _training_problems(exp)
    for i, w in enumerate(cluster.failures.workers):
        if w >= m:
            problems.append(
                (f"cluster.failures.workers.{i}", f"worker id {w} is out of range 0..{m - 1}")
            )
    if not differ:  # the laws below need groups that add up
        for key, law, _, _ in workers_model.laws(cluster):
            problems += _distribution_problems(law, key, nested=False)
        if cluster.delay is not None:
            problems += _distribution_problems(cluster.delay, "cluster.delay", nested=False)
        problems += _time_problems(exp)
    # upload_floats and download_floats are int64 columns: every worker sending every chunk it
    # computes at full dimension must still be countable (dim = 10**19 raised OverflowError).
    steps = max(s.most_steps(m, n) for s in exp.schemes)
    if m * steps * exp.data.dim >= 2**62:
        problems.append(
            (
                "data.dim",
                f"a trial could count {m:,} workers x {steps:,} chunks x {exp.data.dim:,} floats, "
                "more than the summary's 64-bit counts hold; lower data.dim",
            )
        )

    uses = collections.Counter(s.label for s in exp.schemes if s.label is not None)
    labels_all = exp.labels()
    for i, scheme in enumerate(exp.schemes):
        key = f"schemes.{i}"
        if scheme.label is not None and uses[scheme.label] > 1:
            problems.append((f"{key}.label", f"label {scheme.label!r} is used by several schemes"))
        scheme_problems = scheme.problems(key, m, n)
        problems += scheme_problems
        if layouts and not scheme_problems and isinstance(scheme, AssignedScheme):
            problems += _layout_problems(exp, scheme, key, labels_all[i])
    return problems


def _training_problems(exp: Experiment) -> list[tuple[str, str]]:
    """A training run's own checks, and the keys it decides itself."""
    if exp.training is None:
        return []
    problems = training_problems(exp)
    parameters = training_parameters(exp.training)
    if "dim" in exp.data.model_fields_set and exp.data.dim != parameters:
        problems.append(
            ("data.dim", f"a training run's gradients have the model's {parameters} parameters; "
             "remove data.dim")
        )  # fmt: skip
    if "gradients" in exp.data.model_fields_set:
        problems.append(
            ("data.gradients", "a training run's gradients are its model's; remove "
             "data.gradients")
        )  # fmt: skip
    return problems


def _layout_problems(exp: Experiment, scheme: AssignedScheme, key: str, label: str):
    """The scheme's assignment built and checked (files, shapes) before anything runs."""
    return layout_problems(
        scheme, key, exp.cluster.workers, exp.chunks, exp.seed, label, exp.source_dir
    )


def _distribution_problems(dist: Distribution, key: str, nested: bool) -> list[tuple[str, str]]:
    """What the compute distribution's types cannot say (each distribution knows its own)."""
    return dist.problems(key, nested)


#: Largest time (in the config's unit) a setting may reach: far beyond any meaningful one, and
#: far enough from float overflow (1.8e308) that no sum of times in a trial gets there.
MAX_TIME = 1e100


def _time_problems(exp: Experiment) -> list[tuple[str, str]]:
    """Times beyond ``MAX_TIME``. Finite settings can still make infinite times: an
    exponential rate of 1e-320 draws inf, a lognormal mu of 1e12 too, and the rows of such a
    run said decoded at time inf. Each chunk time (its tail, times the slowdown), message
    delay, detection timeout and deadline must stay below MAX_TIME."""
    cluster, problems = exp.cluster, []
    tails = [(key, law.tail_time()) for key, law, _, _ in workers_model.laws(cluster)]
    key, tail = max(tails, key=lambda pair: pair[1])
    slowest = workers_model.slowest(cluster)
    network = cluster.network
    floats = float(min(max(exp.data.dim, exp.cluster.workers), 10**300))  # a message, roughly
    limit = f"beyond {MAX_TIME:.0e} (times that large overflow to infinity when added up)"
    if tail > MAX_TIME:
        problems.append(
            (
                key,
                f"compute times reach {tail:.1e} (the {TAIL:.0e} upper tail), {limit}; "
                "choose parameters with a lighter tail or a smaller time unit",
            )
        )
    elif tail * slowest > MAX_TIME:
        problems.append(
            ("cluster.slowdown", f"a slowed-down chunk takes up to {tail * slowest:.1e}, {limit}")
        )
    if network.latency > MAX_TIME:
        problems.append(("cluster.network.latency", f"{network.latency:.1e} is {limit}"))
    if network.ps_overhead > MAX_TIME:
        problems.append(("cluster.network.ps_overhead", f"{network.ps_overhead:.1e} is {limit}"))
    if network.time_per_float * floats > MAX_TIME:
        problems.append(
            (
                "cluster.network.time_per_float",
                f"a message of {floats:,.0f} floats takes {network.time_per_float * floats:.1e}, "
                f"{limit}",
            )
        )
    if cluster.failures.detect_timeout > MAX_TIME:
        problems.append(
            ("cluster.failures.detect_timeout", f"{cluster.failures.detect_timeout:.1e} is {limit}")
        )
    for i, scheme in enumerate(exp.schemes):
        deadline = getattr(scheme, "deadline", None)
        if deadline is not None and deadline > MAX_TIME:
            problems.append((f"schemes.{i}.deadline", f"{deadline:.1e} is {limit}"))
    return problems


def _empirical_problems(dist: Distribution, key: str, source_dir: Path) -> list[tuple[str, str]]:
    """Problems with the files the compute distribution reads (an empirical one's data)."""
    return dist.data_problems(key, source_dir)


def _one_line(exc: BaseException) -> str:
    """A library's (often multi-line) message as one line."""
    return " ".join(str(exc).split())


# --------------------------------------------------------------------------------------------
# Pydantic errors as one line per problem with a dotted key


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated/Optional wrappers down to a model, a list or a discriminated union."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) == 1:
                annotation = args[0]
            else:
                return annotation
        else:
            return annotation


def _walk(loc: tuple[Any, ...]) -> tuple[list[str], Any, int | None]:
    """Follow a pydantic error location through the models: the displayed key parts (union tags
    dropped), the type found at its end, and where in ``loc`` the tag of a plain union's member
    was (None if nowhere)."""
    shown: list[str] = []
    current: Any = Experiment
    member_at = None
    for at, part in enumerate(loc):
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            shown.append(str(part))
            field = current.model_fields.get(str(part))
            current = field.annotation if field is not None else None
        elif origin is list:
            shown.append(str(part))
            current = typing.get_args(current)[0]
        elif origin in (Union, types.UnionType):
            members = [_unwrap(m) for m in typing.get_args(current)]
            if all(isinstance(m, type) and issubclass(m, BaseModel) for m in members):
                # A discriminated union: the location names the chosen tag, not a user key.
                current = next((m for m in members if part in _tags(m)), None)
                if current is None:
                    shown.append(str(part))
            else:
                # A plain union (ordering: a name or a list of lists): the location names the
                # member tried, as pydantic spells its type; not a user key either.
                current = next((m for m in members if _union_tag(m) == part), None)
                member_at = at
        else:
            shown.append(str(part))
            current = None
    return shown, current, member_at


def _tags(model: type[BaseModel]) -> list[Any]:
    """The discriminator values (``dist`` or ``protocol``) a model answers to."""
    return [
        typing.get_args(f.annotation)[0]
        for name, f in model.model_fields.items()
        if name in ("dist", "protocol")
    ]


def _union_tag(member: Any) -> str:
    """How pydantic names a plain union's member in an error location: list[list[int]],
    literal['natural','random','optimal']."""
    if typing.get_origin(member) is Literal:
        return "literal[" + ",".join(repr(a) for a in typing.get_args(member)) + "]"
    return str(member)


def _shown_input(value: Any) -> str:
    """A value as a message shows it: its repr, cut short (a 4,000-digit number, a 5,000
    character name); an integer too long for ``repr`` by its size."""
    if isinstance(value, str) and len(value) > 60:
        return f"{value[:50]!r}... ({len(value):,} characters)"
    try:
        text = repr(value)
    except ValueError:  # more digits than Python converts
        return f"an integer of {value.bit_length():,} bits"
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text):,} characters of text)"


def _pydantic_problems(errors: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """One (key, message) per problem. A plain union reports one error per member: if one
    member got further into the value (a list whose item is wrong), only its errors are kept;
    if none did, their messages become one ("... or a valid list")."""
    walked = [(error, _walk(tuple(error["loc"]))[2]) for error in errors]
    deeper = {
        tuple(error["loc"][:at])
        for error, at in walked
        if at is not None and len(error["loc"]) > at + 1
    }
    problems: list[tuple[str, str]] = []
    merged: dict[tuple[Any, ...], int] = {}  # union location -> index of its merged problem
    for error, at in walked:
        if at is None or len(error["loc"]) > at + 1:
            problems.append(_format_pydantic(error))
            continue
        where = tuple(error["loc"][:at])
        if where in deeper:
            continue
        key, message = _format_pydantic(error)
        if where not in merged:
            merged[where] = len(problems)
            problems.append((key, message))
            continue
        got = f" (got {_shown_input(error['input'])})" if "input" in error else ""
        first_key, first = problems[merged[where]]
        head = first.removesuffix(got) if got else first
        tail = (message.removesuffix(got) if got else message).removeprefix("Input should be ")
        problems[merged[where]] = (first_key, f"{head}, or {tail}{got}")
    return sorted(set(problems), key=problems.index)


def _format_pydantic(error: dict[str, Any]) -> tuple[str, str]:
    kind, loc = error["type"], tuple(error["loc"])
    if kind == "extra_forbidden":
        shown, _, _ = _walk(loc)
        _, parent, _ = _walk(loc[:-1])
        parent = _unwrap(parent)
        allowed = ""
        if isinstance(parent, type) and issubclass(parent, BaseModel):
            names = list(parent.model_fields)
            allowed = f"; allowed keys here: {', '.join(names)}"
        return ".".join(shown), f"unknown key{allowed}"
    shown, _, _ = _walk(loc)
    key = ".".join(shown)
    if kind == "missing":
        return key, "required key is missing"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag_key = "protocol" if shown and shown[0] == "schemes" else "dist"
        known = protocol_names() if tag_key == "protocol" else DIST_NAMES
        got = error.get("ctx", {}).get("tag")
        what = (
            f"unknown {tag_key} {_shown_input(got)}" if got is not None else f"missing '{tag_key}'"
        )
        return f"{key}.{tag_key}", f"{what}; known: {', '.join(known)}"
    message = error["msg"]
    if kind == "value_error":  # our own validators: their message, without pydantic's prefix
        message = str(error.get("ctx", {}).get("error", message))
    if "input" in error and not isinstance(error["input"], dict | list):
        message += f" (got {_shown_input(error['input'])})"
    return key, message


# --------------------------------------------------------------------------------------------
# Loading and overrides


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.0.c=value`` -> (['a', 'b', '0', 'c'], YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError(
            [("--set", f"expected KEY=VALUE (e.g. cluster.workers=40), got {text!r}")]
        )
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not key.strip() or any(not p for p in parts):
        raise ConfigError([("--set", f"bad key {key!r}: use dotted keys like schemes.1.ell")])
    return parts, parse_value(raw, key, "--set")


def parse_value(raw: str, key: str, option: str) -> Any:
    """A command-line value (``--set``, ``--grid``) read as YAML, within the same limits as a
    config file (``yaml_loading``): ConfigError naming the key otherwise."""
    try:
        return yaml_loading.load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        what = "is too large" if isinstance(exc, yaml_loading.LimitError) else "is not valid YAML"
        shown = _shown_input(raw)
        raise ConfigError([(key, f"{option} value {shown} {what} ({_one_line(exc)})")]) from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides in order to raw config data (a copy is returned).

    A list index may be ``*``: ``schemes.*.ell=2`` sets ell on every scheme whose protocol has
    an ``ell`` parameter, and leaves the others alone.
    """
    import copy

    data = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        _assign(data, parts, 0, value)
    return data


def _assign(node: Any, parts: list[str], depth: int, value: Any) -> None:
    part, last = parts[depth], depth == len(parts) - 1
    where = ".".join(parts[: depth + 1])
    if isinstance(node, list):
        if part == "*" and not last:
            matched = False
            for item in node:
                if _accepts(item, parts[depth + 1 :]):
                    _assign(item, parts, depth + 1, value)
                    matched = True
            if not matched:
                raise ConfigError(
                    [(where, f"--set: no item here has {'.'.join(parts[depth + 1 :])}")]
                )
            return
        # The index one past the end appends (e.g. --set schemes.4={protocol: frc, ...}).
        limit = len(node) if last else len(node) - 1
        if not part.isdigit() or int(part) > limit:
            raise ConfigError([(where, f"--set: list index must be 0..{limit}, got {part!r}")])
        index: Any = int(part)
        if index == len(node):
            node.append(None)
    elif isinstance(node, dict):
        index = part
    else:
        raise ConfigError(
            [(".".join(parts[:depth]), "--set: this value is not a mapping or a list")]
        )
    if last:
        node[index] = value
        return
    if isinstance(node, dict) and index not in node:
        node[index] = {}
    _assign(node[index], parts, depth + 1, value)


def _accepts(item: Any, rest: list[str]) -> bool:
    """Whether a wildcard target accepts the remaining key: a scheme only if its protocol has
    that parameter; anything else if it is a mapping."""
    if not isinstance(item, dict):
        return False
    protocol = item.get("protocol")
    if protocol is None or len(rest) != 1:
        return True
    for member in typing.get_args(_unwrap(Scheme)):
        if typing.get_args(member.model_fields["protocol"].annotation)[0] == protocol:
            return rest[0] in member.model_fields
    return False


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's raw data: UTF-8 YAML within ``yaml_loading``'s limits (size, values
    once aliases are expanded, nesting; no duplicate keys), a mapping at the top."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([("", f"config file not found: {path}")])
    try:
        data = yaml_loading.load(yaml_loading.read_text(path))
    except ValueError as exc:  # too large, not UTF-8
        raise ConfigError([("", f"{path} {exc}")]) from None
    except OSError as exc:
        raise ConfigError([("", f"cannot read {path}: {exc.strerror or exc}")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or _one_line(exc)
        limit = isinstance(exc, yaml_loading.LimitError)
        what = "is too large to be a config" if limit else "is not valid YAML"
        raise ConfigError([("", f"{path} {what}{where}: {problem}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("", f"{path}: expected a mapping of keys at the top level")])
    return data


def from_dict(
    data: dict[str, Any], source_dir: Path | str = ".", name: str | None = None
) -> Experiment:
    """Validate raw data into an Experiment, or raise ConfigError listing every problem.

    In order: the raw data's size (``_size_problems``), the types (pydantic), what the types
    cannot say (``_semantic_problems``), whether the run fits this machine
    (``budget.problems``: before any assignment is built, since building it is what would not
    fit), then files and engine."""
    if not isinstance(data, dict):
        raise ConfigError(
            [("", f"expected a mapping of keys at the top level, got {type(data).__name__}")]
        )
    data = dict(data)
    defaulted = name is not None and data.get("name") is None
    if defaulted:
        data["name"] = name
    problems = _size_problems(data)
    if problems:
        raise ConfigError(problems)
    try:
        exp = Experiment.model_validate(data)
    except ValidationError as exc:
        problems = _pydantic_problems(exc.errors())
        if defaulted:  # say where a name nobody wrote came from
            problems = [
                (key, f"{message} (the name defaults to the config file's stem {name!r}; set "
                 "name: in the config)" if key == "name" else message)
                for key, message in problems
            ]  # fmt: skip
        raise ConfigError(problems) from None
    exp._source_dir = Path(source_dir)
    size = budget.problems(exp)
    problems = _semantic_problems(exp, layouts=not size) + size
    if not workers_model.problems(exp.cluster):
        for key, law, _, _ in workers_model.laws(exp.cluster):
            problems += _empirical_problems(law, key, Path(source_dir))
    if exp.engine == "fast" and not problems:
        problems += [
            (key, f"{message} (engine: fast is not exact here; use engine: auto or des)")
            for key, message in fast_problems(exp)
        ]
    if problems:
        raise ConfigError(problems)
    return exp


def _size_problems(data: Any) -> list[tuple[str, str]]:
    """What no config can be, checked on the raw data before pydantic walks it (data built in
    Python does not pass the YAML limits): more values than ``yaml_loading.MAX_NODES`` with a
    shared part counted wherever it appears (a structure containing itself never ends),
    nesting deeper than ``yaml_loading.MAX_DEPTH``, an integer of more than 4,300 digits
    (beyond what Python prints, so no message could show it)."""
    count = 0
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        node, path = stack.pop()
        count += 1
        where = ".".join(map(str, path))
        if count > yaml_loading.MAX_NODES:
            return [("", f"the config holds more than {yaml_loading.MAX_NODES:,} values (a part "
                     "used in several places counts each time; one that contains itself never "
                     "ends)")]  # fmt: skip
        if len(path) >= yaml_loading.MAX_DEPTH:
            return [(where, f"nesting deeper than {yaml_loading.MAX_DEPTH} levels")]
        if isinstance(node, dict):
            stack.extend((value, (*path, key)) for key, value in node.items())
        elif isinstance(node, list | tuple):
            stack.extend((value, (*path, i)) for i, value in enumerate(node))
        elif isinstance(node, int) and node.bit_length() > _MAX_INT_BITS:
            return [(where, "an integer of more than 4,300 digits")]
    return []


#: Bits of the largest integer Python converts to text by default (4,300 digits).
_MAX_INT_BITS = 14_280


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Experiment:
    """Load, override and validate a YAML experiment (the name defaults to the file's stem)."""
    path = Path(path)
    data = apply_overrides(read_yaml(path), list(overrides))
    return from_dict(data, source_dir=path.parent, name=path.stem)
