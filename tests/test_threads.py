"""fk from several Python threads at once (the GIL is released in the
kernels), with the pool being resized meanwhile: results equal serial ones."""

from __future__ import annotations

import threading

import numpy as np

import fastkin
from conftest import SMPL_PARENTS
from reference import random_quaternions


def test_concurrent_fk_and_resizing_match_serial(rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    inputs = [random_quaternions(rng, (n, 24)).astype(np.float32) for n in (1, 7, 3000, 20000)]
    expected = [fastkin.fk_batch(skeleton, q) for q in inputs]
    before = fastkin.get_num_threads()
    failures: list[str] = []

    def worker(seed: int) -> None:
        order = np.random.default_rng(seed).permutation(len(inputs) * 5) % len(inputs)
        for i in order:
            world_r, world_p = fastkin.fk_batch(skeleton, inputs[i])
            # Chunking differs with the thread count, and a pose may then take the
            # single-pose path instead of a SIMD block: equal to rounding.
            if not (np.allclose(world_r, expected[i][0], rtol=0, atol=1e-6)
                    and np.allclose(world_p, expected[i][1], rtol=0, atol=1e-5)):
                failures.append(f"input {i} differs in thread {seed}")

    def resizer() -> None:
        for n in (1, 3, 2, 4, 1, 2) * 3:
            fastkin.set_num_threads(n)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)] + [threading.Thread(target=resizer)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        fastkin.set_num_threads(before)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not failures, failures[:3]


def test_concurrent_skinning_and_ik_match_serial(rng):
    """lbs, dqs and ik.solve from several threads (each call has its own
    per-thread scratch) give what they give serially."""
    from reference import random_rigid_transforms

    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)) * 0.1)
    transforms = random_rigid_transforms(rng, (3, 24))
    vertices = rng.normal(size=(5000, 3))
    joints = rng.integers(0, 24, size=(5000, 4)).astype(np.int32)
    weights = rng.random((5000, 4)) + 0.1
    weights /= weights.sum(axis=1, keepdims=True)
    targets = fastkin.fk_batch(skeleton, random_quaternions(rng, (40, 24)))[1]
    jobs = {
        "lbs": lambda: fastkin.lbs(transforms, vertices, joints, weights),
        "dqs": lambda: fastkin.dqs(transforms, vertices, joints, weights),
        "ik": lambda: fastkin.ik.solve(skeleton, targets).rotations,
    }
    expected = {name: job() for name, job in jobs.items()}
    failures: list[str] = []

    def worker(seed: int) -> None:
        for name in np.random.default_rng(seed).permutation(list(jobs) * 3):
            if not np.array_equal(jobs[name](), expected[name]):
                failures.append(f"{name} differs in thread {seed}")

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not failures, failures[:3]
