"""The data a training run learns from, split into the experiment's chunks.

Real datasets are scikit-learn's bundled copies (no download: the files ship inside the
package, extra ``datasets``); the synthetic one is generated for any size. Every dataset is
standardized (each feature to mean 0, standard deviation 1 over the whole set; a constant
feature, such as the always-blank corner pixels of digits, stays 0) and gets an intercept
column of ones as its LAST feature. Samples are shuffled with the experiment's seed (stream
``("training", "shuffle")``) and split into ``chunks`` contiguous chunks as evenly as possible
(the first ``samples % chunks`` chunks hold one sample more), so chunk j is the same data for
every scheme and trial: what a gradient-coding cluster stores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import streams
from .config import INSTALL_HINT, Training


@dataclass(frozen=True)
class Dataset:
    """Features ``X`` (samples, features + 1: the intercept last), target ``y`` (float64: the
    value, or the 0/1 label), and ``chunk_of`` (samples,): the chunk of each sample."""

    X: np.ndarray
    y: np.ndarray
    chunk_of: np.ndarray
    chunks: int
    description: str

    @property
    def samples(self) -> int:
        return self.X.shape[0]

    @property
    def features(self) -> int:
        return self.X.shape[1]

    def chunk_sizes(self) -> np.ndarray:
        return np.bincount(self.chunk_of, minlength=self.chunks)

    def chunk_data(self, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        """(X, y) of ``chunk``'s samples alone (views): what a worker holding that chunk stores,
        and all it needs to compute the chunk's gradient (``emulate``'s workers)."""
        sizes = self.chunk_sizes()
        start = int(sizes[:chunk].sum())
        rows = slice(start, start + int(sizes[chunk]))
        return self.X[rows], self.y[rows]

    def chunk_gradients(self, residual: np.ndarray) -> np.ndarray:
        """(chunks, features) each chunk's gradient sum_{i in chunk} residual_i x_i, for one
        parameter vector's per-sample residual (samples,) or (samples, 1).

        One batched matrix-vector product over the chunks (X is kept split into zero-padded
        (chunks, longest, features) blocks; the residual is laid out the same way), not the
        (samples, features) product and segment sums it equals: about 5x faster at 2,000
        samples, which is what a training run's every (scheme, round) pays."""
        blocks, index = self._blocks()
        r = np.asarray(residual, dtype=np.float64).reshape(-1)
        laid = r.reshape(index.shape) if index.size == r.size else np.append(r, 0.0)[index]
        return np.matmul(laid[:, None, :], blocks)[:, 0, :]

    def _blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """X as zero-padded per-chunk blocks and each block row's sample (``samples``: a
        padding row, reading an appended 0); built on first use, kept with the dataset."""
        cached = self.__dict__.get("_chunk_blocks")
        if cached is None:
            sizes = self.chunk_sizes()
            longest = int(sizes.max())
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            offsets = np.arange(longest)
            index = np.where(offsets < sizes[:, None], starts[:, None] + offsets, self.samples)
            padded = np.vstack([self.X, np.zeros((1, self.features))])
            cached = (np.ascontiguousarray(padded[index]), index)
            object.__setattr__(self, "_chunk_blocks", cached)
        return cached


def load(training: Training, chunks: int, seed: int) -> Dataset:
    """The training data for ``chunks`` chunks under ``seed`` (same arguments, same bytes)."""
    if training.dataset == "synthetic":
        features, target, description = _synthetic(training, seed)
    else:
        features, target, description = _real(training)
    n = features.shape[0]
    if n < chunks:
        raise ValueError(f"{description} has {n} samples, fewer than the {chunks} chunks")
    order = streams.generator(seed, "training", "shuffle").permutation(n)
    X = np.ascontiguousarray(np.column_stack([_standardized(features[order]), np.ones(n)]))
    return Dataset(
        X, target[order].astype(np.float64), chunk_assignment(n, chunks), chunks, description
    )


def chunk_assignment(samples: int, chunks: int) -> np.ndarray:
    """The chunk of each of ``samples`` consecutive samples: contiguous runs, sizes differing by
    at most one, the larger first (``numpy.array_split``'s split)."""
    base, extra = divmod(samples, chunks)
    sizes = np.full(chunks, base, dtype=np.int64)
    sizes[:extra] += 1
    return np.repeat(np.arange(chunks, dtype=np.int64), sizes)


def _standardized(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    std[std == 0] = 1.0  # a constant feature: centred to 0, left there
    return (features - mean) / std


def _real(training: Training) -> tuple[np.ndarray, np.ndarray, str]:
    """scikit-learn's bundled copy; the target by model (see ``Training.dataset``)."""
    try:
        from sklearn import datasets as sk
    except ImportError:  # config.problems names this before a run; a direct call lands here
        raise ImportError(
            f"training.dataset: {training.dataset} needs scikit-learn: {INSTALL_HINT}"
        ) from None
    if training.dataset == "digits":
        bunch = sk.load_digits()
        if training.model == "logistic":
            return bunch.data, (bunch.target >= 5).astype(np.float64), "digits (label: digit >= 5)"
        return bunch.data, bunch.target.astype(np.float64), "digits (target: the digit, 0-9)"
    bunch = sk.load_breast_cancer()
    return bunch.data, bunch.target.astype(np.float64), "breast_cancer (label: 1 = benign)"


def _synthetic(training: Training, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Gaussian features, coefficients of norm 3 (see ``config.Synthetic``)."""
    spec = training.synthetic
    rng = streams.generator(seed, "training", "synthetic")
    features = rng.standard_normal((spec.samples, spec.features))
    beta = rng.standard_normal(spec.features)
    beta *= 3.0 / max(np.linalg.norm(beta), 1e-300)
    z = features @ beta
    if training.model == "logistic":
        target = (rng.random(spec.samples) < 1.0 / (1.0 + np.exp(-z))).astype(np.float64)
        what = "labels ~ Bernoulli(sigmoid(X beta))"
    else:
        target = z + spec.noise * rng.standard_normal(spec.samples)
        what = f"y = X beta + {spec.noise:g} N(0, 1)"
    return features, target, f"synthetic {spec.samples} x {spec.features} ({what})"
