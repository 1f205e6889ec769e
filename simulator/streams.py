"""Named random streams derived from one seed.

Every random quantity in a run comes from a generator keyed by (seed, name, index...), built with
``numpy.random.SeedSequence``. Keys are stable strings and integers, never call order, so adding a
stream (a new scheme, a new kind of failure) does not shift the numbers any other stream produces,
and any executor that evaluates the same keys gets the same bytes.
"""

from __future__ import annotations

import zlib

import numpy as np

#: Trials are drawn in blocks of this many; a block is the unit any executor may split a run on.
TRIAL_BLOCK = 256


def block_trials(iterations: int) -> int:
    """Trials per realization block when each has ``iterations`` rounds: about
    ``TRIAL_BLOCK`` rounds a block whatever the iterations (a block is drawn whole), and
    ``TRIAL_BLOCK`` trials when a trial is one round, as always."""
    return max(1, TRIAL_BLOCK // iterations)


def _key_part(part: str | int) -> int:
    if isinstance(part, str):
        return zlib.crc32(part.encode("utf-8"))
    if part < 0:
        raise ValueError(f"stream index must be non-negative, got {part}")
    return int(part)


def seed_sequence(seed: int, *key: str | int) -> np.random.SeedSequence:
    """The SeedSequence of the stream named by ``key`` under ``seed``."""
    return np.random.SeedSequence(entropy=seed, spawn_key=tuple(_key_part(p) for p in key))


def generator(seed: int, *key: str | int) -> np.random.Generator:
    """A fresh generator for the stream ``key``; same arguments, same numbers, in any process."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, *key)))
