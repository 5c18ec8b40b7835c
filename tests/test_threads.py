"""fk, skinning and IK from several Python threads at once (the GIL is
released in the kernels), with the pool being resized meanwhile: results
equal serial ones."""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np

import fastkin
from conftest import SMPL_PARENTS
from reference import random_quaternions, random_rigid_transforms


def run_while_resizing(worker: Callable[[int], None], num_workers: int = 4) -> None:
    """Runs ``worker(seed)`` in ``num_workers`` threads while one more thread
    keeps resizing the pool until they are done; fails if any thread hangs."""
    done = threading.Event()

    def resizer() -> None:
        while not done.is_set():
            for n in (1, 3, 2, 4):
                fastkin.set_num_threads(n)

    before = fastkin.get_num_threads()
    workers = [threading.Thread(target=worker, args=(s,)) for s in range(num_workers)]
    resizing = threading.Thread(target=resizer)
    try:
        resizing.start()
        for t in workers:
            t.start()
        for t in workers:
            t.join(timeout=120)
    finally:
        done.set()
        resizing.join(timeout=120)
        fastkin.set_num_threads(before)
    assert not any(t.is_alive() for t in workers + [resizing]), "a thread hung"


def test_concurrent_fk_and_resizing_match_serial(rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    inputs = [random_quaternions(rng, (n, 24)).astype(np.float32) for n in (1, 7, 3000, 20000)]
    expected = [fastkin.fk_batch(skeleton, q) for q in inputs]
    failures: list[str] = []

    def worker(seed: int) -> None:
        order = np.random.default_rng(seed).permutation(len(inputs) * 5) % len(inputs)
        for i in order:
            world_r, world_p = fastkin.fk_batch(skeleton, inputs[i])
            # Chunking differs with the thread count, and a pose may then take the
            # single-pose path instead of a SIMD block: equal to rounding.
            if not (
                np.allclose(world_r, expected[i][0], rtol=0, atol=1e-6)
                and np.allclose(world_p, expected[i][1], rtol=0, atol=1e-5)
            ):
                failures.append(f"input {i} differs in thread {seed}")

    run_while_resizing(worker)
    assert not failures, failures[:3]


def test_concurrent_skinning_and_ik_with_resizing_match_serial(rng):
    """fk_batch, lbs, dqs and ik.solve at once from several threads (each
    call has its own per-thread scratch) while the pool is resized: every
    call gives what it gives serially."""
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)) * 0.1)
    transforms = random_rigid_transforms(rng, (8, 24))
    vertices = rng.normal(size=(20000, 3))
    joints = rng.integers(0, 24, size=(20000, 4)).astype(np.int32)
    weights = rng.random((20000, 4)) + 0.1
    weights /= weights.sum(axis=1, keepdims=True)
    poses = random_quaternions(rng, (4096, 24)).astype(np.float32)
    targets = fastkin.fk_batch(skeleton, random_quaternions(rng, (64, 24)))[1]
    jobs = {
        "fk": lambda: fastkin.fk_batch(skeleton, poses)[1],
        "lbs": lambda: fastkin.lbs(transforms, vertices, joints, weights),
        "dqs": lambda: fastkin.dqs(transforms, vertices, joints, weights),
        "ik": lambda: fastkin.ik.solve(skeleton, targets).rotations,
    }
    expected = {name: job() for name, job in jobs.items()}
    failures: list[str] = []

    def worker(seed: int) -> None:
        for name in np.random.default_rng(seed).permutation(list(jobs) * 3):
            # As above: other chunking may round differently, by ~1 ulp.
            if not np.allclose(jobs[name](), expected[name], rtol=0, atol=1e-5):
                failures.append(f"{name} differs in thread {seed}")

    run_while_resizing(worker)
    assert not failures, failures[:3]
