"""The building blocks of every config model: strictness, and the field types they share.

A leaf below ``config`` so that the models that live with what they configure (a protocol's
scheme entry in its module, a distribution in ``compute/``) can be written without importing
the experiment model that collects them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, no silent coercion (``true`` is not
    a worker count, ``"3"`` is not a number), values are checked on assignment.

    Every float is finite (``allow_inf_nan=False``, so YAML's ``.nan`` and ``.inf`` and a
    ``1.0e+999`` that overflows are refused): a NaN compute time made rows that said decoded
    with a NaN completion time, and an infinite shift, latency or slowdown ones that said
    decoded at time inf. No key gives infinity a meaning ("never" is spelled otherwise: a
    ``crash_rate`` of 0, ``mode: exact`` instead of an infinite deadline); a key that ever
    should must say so in its docstring and opt out with ``Field(allow_inf_nan=True)``.
    """

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False
    )


#: A name becomes a directory under results/ (and a sweep's) and stays within one file-name
#: component; a label becomes part of figure file names (slugged) and of one-line messages.
NAME_BYTES, LABEL_CHARS = 200, 200


def _printable_problem(text: str) -> str | None:
    if not text:
        return "must not be empty"
    bad = next((c for c in text if not c.isprintable()), None)
    if bad is not None:
        return f"must not hold control or invisible characters (found {bad!r})"
    return None


def _checked_name(text: str) -> str:
    """A run name as a single safe directory name (ValueError says what a name may hold)."""
    rule = (
        "a name is a directory under results/: letters, digits, spaces and punctuation, no / "
        "or \\, not starting with '.'"
    )
    problem = _printable_problem(text)
    if problem is None:
        if "/" in text or "\\" in text:
            problem = "must not hold a path separator"
        elif text.startswith("."):
            problem = "must not start with '.' (hidden, or a path like '..')"
        elif len(text.encode("utf-8")) > NAME_BYTES:
            problem = f"must be at most {NAME_BYTES} bytes in UTF-8"
    if problem is not None:
        raise ValueError(f"{problem}; {rule}")
    return text


def _checked_label(text: str) -> str:
    """A scheme label: printable, one line, of a length figure file names can hold."""
    problem = _printable_problem(text)
    if problem is None and len(text) > LABEL_CHARS:
        problem = f"must be at most {LABEL_CHARS} characters"
    if problem is not None:
        raise ValueError(
            f"a label {problem} (it names the scheme in tables, messages and figure files)"
        )
    return text


Name = Annotated[str, AfterValidator(_checked_name)]
Label = Annotated[str, AfterValidator(_checked_label)]


PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
