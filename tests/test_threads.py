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
