"""The ``training:`` section of an experiment: which model learns which data, and how.

With ``training:`` set, every trial is a training run of ``iterations`` (the experiment's key)
gradient steps. Each
step's duration is the simulated completion time of that iteration under the scheme, and the
parameter server (PS) updates with the gradient the scheme actually decoded (see
``simulator.training.trainer``). This module holds the model of the section and ``problems``,
what the types cannot say (checked with the rest of the config before anything runs).
"""

from __future__ import annotations

import importlib.util
from typing import Annotated, Any, Literal

from pydantic import Field

from ..models import NonNegFloat, PositiveFloat, Strict

#: Every dataset name ``training.dataset`` accepts; the real ones need scikit-learn.
DATASETS: tuple[str, ...] = ("digits", "breast_cancer", "synthetic")
REAL_DATASETS: tuple[str, ...] = ("digits", "breast_cancer")
#: What to run to get scikit-learn (the optional extra that bundles the real datasets).
INSTALL_HINT = "pip install -e '.[datasets]'"


class Synthetic(Strict):
    """A generated problem of any size (``dataset: synthetic``); drawn from the experiment's
    seed, so the same config gives the same data.

    Features are iid N(0, 1); the true coefficients are N(0, 1) scaled to norm 3 (so a logistic
    model's labels are neither trivially separable nor coin flips). least_squares:
    y = X beta + noise * N(0, 1). logistic: y ~ Bernoulli(sigmoid(X beta)); ``noise`` is not used
    (the label draw is the noise).
    """

    samples: Annotated[int, Field(ge=1, le=10_000_000)] = 2000
    features: Annotated[int, Field(ge=1, le=100_000)] = 20
    noise: NonNegFloat = 0.1


class Training(Strict):
    """Turns each trial into a training run of ``iterations`` (the experiment's top-level key)
    gradient steps.

    The loss is the MEAN over samples (plus ``l2 / 2 * ||w||^2`` on the weights, intercept
    excluded); a chunk's gradient is the SUM over its samples, so the full-data gradient is the
    sum of the chunk gradients (what uncoded decodes with all weights 1) and the PS steps
    ``theta -= learning_rate * (decoded / samples + l2 * w)``. The l2 term is the PS's own and
    never goes through the scheme; the reported ``loss`` (and ``target_loss``) is the data's
    mean loss alone, without it.

    An iteration that does not give the PS a gradient: with ``timeout`` set, an iteration not
    decoded within ``timeout`` (inclusive) is abandoned, the PS keeps its parameters, the
    iteration costs ``timeout`` of wall-clock time, and the next iteration is a retry with new
    draws (it still counts toward ``iterations``; its row says ``skipped``). With ``timeout:
    null`` (the default) the PS waits forever: an iteration that can never decode stalls the
    run, its time and every later one is inf and the parameters stay where they were.
    """

    model: Literal["least_squares", "logistic"] = "logistic"
    """least_squares: mean squared error / 2 on a real-valued target; logistic: mean
    cross-entropy of a binary label (accuracy is reported only for this one)."""
    dataset: Literal["digits", "breast_cancer", "synthetic"] = "breast_cancer"
    """digits (1,797 8x8 images; logistic: is the digit >= 5; least_squares: the digit's value)
    and breast_cancer (569 samples, 30 features; the label is 1 for benign) are scikit-learn's
    bundled copies (extra ``datasets``); synthetic is generated (see ``synthetic``). Features
    are standardized and an intercept column is added."""
    synthetic: Synthetic = Synthetic()
    """Size and noise of ``dataset: synthetic`` (an error with any other dataset)."""
    learning_rate: float = 0.5
    """Step size on the mean loss (must be > 0; a too large one diverges, as in practice)."""
    l2: NonNegFloat = 0.0
    """Ridge penalty on the weights (not the intercept), applied by the PS."""
    target_loss: PositiveFloat | None = None
    """The loss whose first crossing is the time to target per scheme (null: none reported)."""
    timeout: PositiveFloat | None = None
    """Abandon an iteration not decoded by this time (see the class docstring); null: wait."""


def problems(exp: Any) -> list[tuple[str, str]]:
    """What the types of ``training:`` cannot say, as (dotted key, message) pairs; [] when the
    experiment has no training section.

    Reads ``exp.training``, ``exp.chunks`` only, so any object with those (an Experiment)
    serves."""
    training: Training | None = getattr(exp, "training", None)
    if training is None:
        return []
    out: list[tuple[str, str]] = []
    chunks = int(exp.chunks)
    if training.learning_rate <= 0:
        out.append(
            (
                "training.learning_rate",
                f"must be > 0 (got {training.learning_rate!r}); a typical value on the "
                "standardized data is 0.1 to 1",
            )
        )
    if training.dataset in REAL_DATASETS:
        if "synthetic" in training.model_fields_set:
            out.append(
                (
                    "training.synthetic",
                    f"only applies to dataset: synthetic (dataset is {training.dataset}); "
                    "remove it or set training.dataset: synthetic",
                )
            )
        if importlib.util.find_spec("sklearn") is None:
            out.append(
                (
                    "training.dataset",
                    f"{training.dataset} needs scikit-learn: {INSTALL_HINT} (or use "
                    "dataset: synthetic)",
                )
            )
    samples = dataset_samples(training)
    if samples is not None and samples < chunks:
        out.append(
            (
                "training.dataset",
                f"{training.dataset} has {samples:,} samples, fewer than the {chunks:,} chunks "
                "(every chunk needs at least one); use fewer chunks (data.chunks, by default "
                "cluster.workers) or a larger dataset"
                + (" (training.synthetic.samples)" if training.dataset == "synthetic" else ""),
            )
        )
    return out


#: Samples in scikit-learn's bundled copies (fixed by the files it ships).
_REAL_SAMPLES = {"digits": 1797, "breast_cancer": 569}


def dataset_samples(training: Training) -> int | None:
    """How many samples the dataset has, known without loading it."""
    if training.dataset == "synthetic":
        return training.synthetic.samples
    return _REAL_SAMPLES.get(training.dataset)


#: Features of scikit-learn's bundled copies, before the intercept column.
_REAL_FEATURES = {"digits": 64, "breast_cancer": 30}


def parameters(training: Training) -> int:
    """How many parameters the model has (features plus the intercept), known without loading
    the data: the length of every gradient the schemes send (``data.dim``)."""
    if training.dataset == "synthetic":
        return training.synthetic.features + 1
    return _REAL_FEATURES[training.dataset] + 1
