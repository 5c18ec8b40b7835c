"""Helpers shared by the benchmarks in bench/: optional peers, round-robin
timing, and the facts about the machine and build that every report states."""

from __future__ import annotations

import datetime
import importlib
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

import fastkin

# The SMPL-like skeleton every benchmark uses, and its random problems.
PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
NUM_JOINTS = len(PARENTS)
SEED = 20240601


def make_offsets(seed: int = SEED) -> np.ndarray:
    """(J, 3) float64 random local offsets, bone lengths of about 0.1-0.2 m."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 0.1, size=(NUM_JOINTS, 3))


def make_axis_angles(batch: int, seed: int = SEED + 1) -> np.ndarray:
    """(B, J, 3) float64 axis-angle rotations: random unit axes, angles in [0, 1] rad."""
    rng = np.random.default_rng(seed + batch)
    axes = rng.normal(size=(batch, NUM_JOINTS, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    return axes * rng.uniform(0.0, 1.0, size=(batch, NUM_JOINTS, 1))


# Timing: a call slower than SLOW_CALL s gets no separate warm-up; one
# slower than SINGLE_CALL s is timed once (the slowest peers at large batches).
SLOW_CALL = 0.3
SINGLE_CALL = 2.0


def optional_import(module: str):
    """(module, "") when importable, else (None, the ImportError's text)."""
    try:
        return importlib.import_module(module), ""
    except ImportError as error:  # depends on the environment
        return None, str(error)


@dataclass
class Case:
    run: Callable[[], object]  # one timed call
    positions: Callable[[], np.ndarray]  # the result to check against fastkin's (or its first n samples)
    scale: float = 1.0  # measured time * scale = time for the whole batch
    note: str = ""


@dataclass
class Measurement:
    seconds: float  # best per-call time for the whole batch
    inner: int  # calls per repeat
    repeats: int
    scale: float = 1.0
    note: str = ""


def time_round_robin(cases: dict[str, Case], time_per_case: float, repeats: int) -> dict[str, Measurement]:
    """Best-of-`repeats` per-call time of each case. Each repeat runs enough
    calls to last about time_per_case / repeats; the repeats of all cases
    are interleaved (round-robin) so load spikes spread over all of them.
    A case slower than one repeat's share gets one call per repeat and as
    many repeats as fit in 2 * time_per_case; a call slower than
    SINGLE_CALL seconds is measured by that one call (to bound the run)."""
    target = time_per_case / repeats
    plan = {}
    best = {}
    for key, case in cases.items():
        start = time.perf_counter()
        case.run()  # warm-up (first-call allocation, dispatch caches)
        once = time.perf_counter() - start
        if once < SLOW_CALL:  # time a warm call; a slow one counts as its own first repeat
            start = time.perf_counter()
            case.run()
            once = time.perf_counter() - start
        best[key] = once
        inner = max(1, int(target / max(once, 1e-7)))
        if once >= SINGLE_CALL:
            reps = 0  # the calibration call is the measurement
        elif once * repeats <= 2 * time_per_case:
            reps = repeats
        else:
            reps = max(1, int(2 * time_per_case / once))
        plan[key] = (inner, reps)
    for round_index in range(max(reps for _, reps in plan.values())):
        for key, case in cases.items():
            inner, reps = plan[key]
            if round_index >= reps:
                continue
            run = case.run
            start = time.perf_counter()
            for _ in range(inner):
                run()
            best[key] = min(best[key], (time.perf_counter() - start) / inner)
    return {
        key: Measurement(
            best[key] * cases[key].scale, plan[key][0], max(1, plan[key][1]), cases[key].scale, cases[key].note
        )
        for key in cases
    }


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Shortest of `repeats` timed calls of fn, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def copy_bandwidth(megabytes: int = 64, repeats: int = 5) -> float:
    """GB/s of a numpy copy between two preallocated arrays far larger than
    the caches (bytes read plus bytes written, best of `repeats`). On a shared
    VM the memory bandwidth left by the neighbours moves with their load, and
    large-batch kernels move with it: reported beside the figures to read
    them by."""
    source = np.ones(megabytes * (1 << 20) // 4, dtype=np.float32)
    target = np.empty_like(source)
    seconds = best_time(lambda: np.copyto(target, source), repeats)
    return 2 * source.nbytes / seconds / 1e9


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return ", ".join(f for f in ("avx2", "fma", "avx512f") if f in flags)
    except OSError:
        pass
    return "unknown"


def extension_identity() -> str:
    """Path and modification time of the compiled extension that was measured."""
    try:
        core = Path(fastkin._core.__file__)
        stamp = datetime.datetime.fromtimestamp(core.stat().st_mtime).astimezone()
        return f"{core.name}, built {stamp.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    except (AttributeError, OSError, TypeError):
        return "unknown"


def package_version(distribution: str, module) -> str:
    if module is None:
        return "not installed"
    try:
        from importlib.metadata import version

        return version(distribution)
    except Exception:  # noqa: BLE001
        return getattr(module, "__version__", "unknown")


def command_line() -> str:
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return " ".join(["python", shlex.quote(str(script))] + [shlex.quote(a) for a in sys.argv[1:]])
