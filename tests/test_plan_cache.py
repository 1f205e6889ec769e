"""The plan cache (simulator.plan_cache): hits and misses, checksums, concurrent writers, the
size bound, and results byte-identical with the cache on or off; best_tandon_code's cheaper
scoring makes the same choice as scoring everything."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from simulator import config as cfg
from simulator import plan_cache
from simulator.coding import numerics
from simulator.coding.registry import build
from simulator.runner import run_trials
from simulator.streams import generator

from .conftest import REPO


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache directory of this test's own, a fresh memo and fresh counters."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("GCSIM_CACHE_DIR", str(directory))
    monkeypatch.delenv("GCSIM_CACHE", raising=False)
    monkeypatch.delenv("GCSIM_CACHE_MAX_MB", raising=False)
    monkeypatch.setattr(plan_cache, "MIN_STORE_SECONDS", 0.0)  # store even instant plans
    plan_cache.clear_memo()
    plan_cache.stats.clear()
    yield directory
    plan_cache.clear_memo()


class Counting:
    """A plan computation that counts its calls."""

    def __init__(self, array: np.ndarray):
        self.array, self.calls = array, 0

    def __call__(self) -> np.ndarray:
        self.calls += 1
        return self.array.copy()


def files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*" + plan_cache.SUFFIX) if not p.name.startswith("."))


def test_miss_then_memo_hit_then_disk_hit(cache: Path):
    value = np.random.default_rng(1).standard_normal((7, 5))
    compute = Counting(value)
    first = plan_cache.cached_array("demo", "1", {"n": 7}, compute)
    assert compute.calls == 1 and plan_cache.stats["misses"] == 1
    assert first.tobytes() == value.tobytes() and first.dtype == value.dtype
    assert not first.flags.writeable  # shared by every caller: nobody may change it
    again = plan_cache.cached_array("demo", "1", {"n": 7}, compute)
    assert again is first and plan_cache.stats["memo_hits"] == 1
    plan_cache.clear_memo()  # what another process sees
    from_disk = plan_cache.cached_array("demo", "1", {"n": 7}, compute)
    assert compute.calls == 1 and plan_cache.stats["disk_hits"] == 1
    assert from_disk.tobytes() == value.tobytes() and from_disk.shape == value.shape
    # Another input, version or computing function is another plan.
    plan_cache.cached_array("demo", "1", {"n": 8}, compute)
    plan_cache.cached_array("demo", "2", {"n": 7}, compute)
    plan_cache.cached_array("demo", "1", {"n": 7}, compute, functions=(numerics.cond,))
    assert compute.calls == 4
    assert len(files(cache)) == 4


def test_keys_are_canonical_and_exact():
    key = plan_cache.plan_key
    assert key("k", "1", {"a": 1, "b": [2, 3]}) == key("k", "1", {"b": (2, 3), "a": 1})
    assert key("k", "1", {"x": 0.1}) != key("k", "1", {"x": 0.1 + 2**-56})
    assert key("k", "1", {"x": np.arange(3)}) != key("k", "1", {"x": np.arange(3.0)})
    rng = generator(3, "code", "a")
    assert key("k", "1", {"r": rng.bit_generator.state}) != key(
        "k", "1", {"r": generator(3, "code", "b").bit_generator.state}
    )
    with pytest.raises(TypeError, match="cannot key"):
        key("k", "1", {"x": object()})


@pytest.mark.parametrize("damage", ["flip a payload byte", "truncate", "garbage", "bad header"])
def test_a_damaged_file_is_detected_recomputed_and_rewritten(cache: Path, damage: str):
    value = np.arange(40.0).reshape(8, 5)
    compute = Counting(value)
    plan_cache.cached_array("demo", "1", {}, compute)
    (path,) = files(cache)
    data = bytearray(path.read_bytes())
    if damage == "flip a payload byte":
        data[-3] ^= 0x01
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"\x00" * len(data))
    else:
        data[: len(plan_cache.MAGIC)] = b"x" * len(plan_cache.MAGIC)
    path.write_bytes(bytes(data))
    plan_cache.clear_memo()
    again = plan_cache.cached_array("demo", "1", {}, compute)
    assert compute.calls == 2 and plan_cache.stats["corrupt"] == 1
    assert again.tobytes() == value.tobytes()
    assert plan_cache._decode(path.read_bytes()).tobytes() == value.tobytes()  # rewritten
    plan_cache.clear_memo()
    plan_cache.cached_array("demo", "1", {}, compute)
    assert compute.calls == 2 and plan_cache.stats["corrupt"] == 1


def test_a_valid_checksum_over_a_pickled_payload_is_refused(cache: Path):
    """np.load never unpickles: an object array under a correct checksum is still refused."""
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    payload = buffer.getvalue()
    import hashlib

    data = plan_cache.MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    assert plan_cache._decode(data) is None


def test_cache_off_writes_nothing_and_an_unusable_directory_is_not_an_error(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    compute = Counting(np.ones(3))
    monkeypatch.setenv("GCSIM_CACHE", "off")
    plan_cache.cached_array("demo", "1", {}, compute)
    assert not cache.exists()
    plan_cache.clear_memo()
    plan_cache.cached_array("demo", "1", {}, compute)
    assert compute.calls == 2
    monkeypatch.delenv("GCSIM_CACHE")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("GCSIM_CACHE_DIR", str(blocker / "cache"))
    plan_cache.clear_memo()
    out = plan_cache.cached_array("demo", "1", {}, compute)
    assert out.tobytes() == np.ones(3).tobytes() and plan_cache.stats["errors"] >= 1


def test_the_directory_is_pruned_to_its_bound_least_recently_used_first(
    cache: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("GCSIM_CACHE_MAX_MB", str(100_000 / 2**20))  # 100,000 bytes
    arrays = {i: np.full(2_000, float(i)) for i in range(12)}  # about 16 kB per file
    for i in range(5):
        plan_cache.cached_array("demo", "1", {"i": i}, Counting(arrays[i]))
    paths = files(cache)
    assert len(paths) == 5
    for age, path in enumerate(paths):  # make the order of use explicit
        os.utime(path, (1_000_000 + age, 1_000_000 + age))
    plan_cache.clear_memo()
    oldest, next_oldest = paths[0], paths[1]
    index_of = {p: int(plan_cache._decode(p.read_bytes())[0]) for p in paths}
    plan_cache.cached_array("demo", "1", {"i": index_of[oldest]}, Counting(arrays[0]))
    assert plan_cache.stats["disk_hits"] == 1  # a hit refreshes the file's time
    for i in range(5, 9):
        plan_cache.cached_array("demo", "1", {"i": i}, Counting(arrays[i]))
        total = sum(p.stat().st_size for p in files(cache))
        assert total <= 100_000
    left = files(cache)
    assert oldest in left  # read again, so kept
    assert next_oldest not in left  # the least recently used is the first removed
    assert plan_cache.stats["pruned"] >= 3
    newest = plan_cache.plan_key("demo", "1", {"i": 8})
    assert any(newest in p.name for p in left)


def test_stale_temporary_files_are_removed(cache: Path):
    cache.mkdir(parents=True)
    stale = cache / (".tmp-crashed" + plan_cache.SUFFIX)
    stale.write_bytes(b"partial")
    os.utime(stale, (1, 1))
    fresh = cache / (".tmp-writing" + plan_cache.SUFFIX)
    fresh.write_bytes(b"partial")
    plan_cache.prune(cache)
    assert not stale.exists() and fresh.exists()


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from simulator import plan_cache

    plan_cache.MIN_STORE_SECONDS = 0.0
    rounds, tag = int(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(tag)
    for r in range(rounds):
        i = int(rng.integers(6))  # at random: a cycle would defeat any LRU bound
        plan_cache.clear_memo()
        value = np.full((64, 64), float(i))
        got = plan_cache.cached_array("race", "1", {"i": i}, lambda: value.copy())
        assert got.tobytes() == value.tobytes(), (r, i)
    print(plan_cache.stats["corrupt"], plan_cache.stats["disk_hits"], plan_cache.stats["misses"])
    """
)


def test_concurrent_writers_in_two_processes_never_read_a_partial_file(cache: Path):
    """Two processes read and write the same six plans (and prune, with a bound that keeps four
    or five) at once: neither ever sees a partial or damaged file."""
    env = dict(os.environ, GCSIM_CACHE_DIR=str(cache), GCSIM_CACHE_MAX_MB=str(0.15))
    env["PYTHONPATH"] = str(REPO)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, "300", str(tag)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        corrupt, hits, misses = (int(x) for x in out.split())
        assert corrupt == 0
        assert hits + misses == 300
    assert sum(int(out.split()[1]) for out, _ in outputs) > 0  # they did share files
    for path in files(cache):
        assert plan_cache._decode(path.read_bytes()) is not None


# --------------------------------------------------------------------------------------------
# original_gc's random code through the cache


def _experiment(workers: int = 12, load: int = 3, trials: int = 40) -> cfg.Experiment:
    return cfg.from_dict(
        {
            "name": "plan-cache",
            "seed": 7,
            "trials": trials,
            "cluster": {
                "workers": workers,
                "compute": {"dist": "shifted_exponential", "shift": 1.0, "rate": 1.0},
                "failures": {"prob": 0.0},
            },
            "data": {"dim": 16, "gradients": "gaussian"},
            "output": {"events_trials": 2},
            "schemes": [
                {"protocol": "original_gc", "load": load, "ell": 1},
                {"protocol": "original_gc", "load": load, "ell": 1, "label": "again"},
            ],
        }
    )


def _frames_bytes(exp: cfg.Experiment) -> tuple[bytes, bytes]:
    summary, events = run_trials(exp, 0, exp.trials)
    out = []
    for frame in (summary, events):
        buffer = io.BytesIO()
        frame.to_parquet(buffer)
        out.append(buffer.getvalue())
    return out[0], out[1]


def test_results_are_byte_identical_with_the_cache_off_cold_and_warm(
    cache: Path, monkeypatch: pytest.MonkeyPatch
):
    exp = _experiment()
    monkeypatch.setenv("GCSIM_CACHE", "off")
    off = _frames_bytes(exp)
    code_off = build(exp)[0].code.copy()
    assert not cache.exists()
    monkeypatch.delenv("GCSIM_CACHE")
    plan_cache.clear_memo()
    plan_cache.stats.clear()
    cold = _frames_bytes(exp)
    assert plan_cache.stats["misses"] == 2  # two labels, two codes
    plan_cache.clear_memo()
    plan_cache.stats.clear()
    warm = _frames_bytes(exp)
    assert plan_cache.stats["disk_hits"] == 2 and plan_cache.stats["misses"] == 0
    assert off == cold == warm
    code = build(exp)[0].code
    assert code.tobytes() == code_off.tobytes()
    assert plan_cache.stats["memo_hits"] >= 1  # planned once per process


def _reference_choice(workers: int, stragglers: int, seed: int, candidates: int) -> np.ndarray:
    """The choice as it was made before the early rejection: every candidate on every probe."""
    rng = np.random.default_rng(seed)
    codes = [numerics.tandon_cyclic_code(workers, stragglers, rng) for _ in range(candidates)]
    if stragglers == 0 or candidates == 1:
        return codes[0]
    subsets = np.sort(np.argsort(rng.random((256, workers)), axis=1)[:, : workers - stragglers])
    return codes[int(np.argmin(numerics.tandon_scores(codes, subsets)))]


@pytest.mark.parametrize(
    "workers, stragglers, candidates",
    [(4, 1, 16), (6, 3, 16), (8, 2, 16), (12, 3, 16), (20, 3, 16), (30, 5, 8), (9, 4, 3)],
)
def test_cheaper_scoring_makes_the_same_choice(workers: int, stragglers: int, candidates: int):
    for seed in range(6):
        expected = _reference_choice(workers, stragglers, seed, candidates)
        rng = np.random.default_rng(seed)
        chosen = numerics.best_tandon_code(workers, stragglers, rng, candidates)
        assert chosen.tobytes() == expected.tobytes(), (workers, stragglers, seed)


def test_scoring_agrees_with_the_reference_on_ties():
    """Identical candidates tie on every probe: the first of them is kept, as argmin keeps it."""
    rng = np.random.default_rng(5)
    code = numerics.tandon_cyclic_code(10, 2, rng)
    state = rng.bit_generator.state

    class Same:
        calls = 0

    def same(workers, stragglers, rng):
        Same.calls += 1
        return code * (1.0 if Same.calls % 2 else 1.0 + 2**-40)  # near-identical pairs

    original = numerics.tandon_cyclic_code
    try:
        numerics.tandon_cyclic_code = same  # type: ignore[assignment]
        rng_a = np.random.default_rng(1)
        rng_a.bit_generator.state = state
        chosen = numerics.best_tandon_code(10, 2, rng_a, 6)
        Same.calls = 0
        rng_b = np.random.default_rng(1)
        rng_b.bit_generator.state = state
        codes = [same(10, 2, rng_b) for _ in range(6)]
        subsets = np.sort(np.argsort(rng_b.random((256, 10)), axis=1)[:, :8], axis=1)
        expected = codes[int(np.argmin(numerics.tandon_scores(codes, subsets)))]
    finally:
        numerics.tandon_cyclic_code = original  # type: ignore[assignment]
    assert chosen.tobytes() == expected.tobytes()


def test_a_second_sweep_point_with_the_same_code_parameters_plans_nothing(cache: Path):
    """Points of a sweep that change anything but the code's parameters (here the compute rate)
    reuse the code: from the memo in the same process, from disk in another."""
    first = _experiment()
    second = _experiment()
    second.cluster.compute.rate = 3.0
    build(first)
    assert plan_cache.stats["misses"] == 2
    build(second)
    assert plan_cache.stats["misses"] == 2 and plan_cache.stats["memo_hits"] == 2
    plan_cache.clear_memo()
    build(second)
    assert plan_cache.stats["misses"] == 2 and plan_cache.stats["disk_hits"] == 2
    other = _experiment(workers=12, load=4)  # other code parameters: another code
    build(other)
    assert plan_cache.stats["misses"] == 4


def test_plans_cheaper_than_storing_are_only_memoized(cache: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(plan_cache, "MIN_STORE_SECONDS", 3600.0)
    compute = Counting(np.ones(4))
    plan_cache.cached_array("demo", "1", {}, compute)
    plan_cache.cached_array("demo", "1", {}, compute)
    assert compute.calls == 1 and plan_cache.stats["memo_hits"] == 1
    assert not cache.exists() or not files(cache)
