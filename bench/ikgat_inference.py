"""IKGAT forward pass: fastkin.learned.CompiledIKGAT (C++) against torch
eager (torch.inference_mode), on the real model size, measured in one run.

    python bench/ikgat_inference.py             # ~1 minute
    python bench/ikgat_inference.py --seconds 1  # shorter

Model: IKGAT(cmu_01_01 skeleton (38 joints), width=64, layers=4, heads=4,
hops=3, expansion=2) with random weights (speed does not depend on them).
Input: frames of the cmu_01_01 take, float32. Cases: batch 1 on one thread
(the Python call included), batch 4096 on 1 and 2 threads (fastkin's pool
and torch's intra-op threads set alike). Prints frames/s (best of
interleaved repeats), each case's compute rate from the model's FLOP count,
compiled / torch ratios, and the compiled path's CPU time per frame.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import fastkin
from fastkin.learned import IKGAT, CompiledIKGAT

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Case, cpu_model, time_round_robin  # noqa: E402


def cpu_time_per_frame(run, batch: int, seconds: float) -> float:
    """Process CPU seconds (all threads) per frame over about `seconds` of
    calls: what the work costs, whatever share of the cores other processes
    take meanwhile (wall-clock rates fall with that share)."""
    calls, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds or calls == 0:
        run()
        calls += 1
    return (time.process_time() - cpu) / (calls * batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per case")
    args = parser.parse_args()

    motion = fastkin.data.default_motion("cmu_01_01")
    torch.manual_seed(0)
    model = IKGAT(motion.skeleton, width=64, layers=4, heads=4, hops=3, expansion=2).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    compiled = CompiledIKGAT(model)
    flops = compiled.flops_per_frame
    frames = motion.positions().astype(np.float32)
    inputs = {b: np.ascontiguousarray(np.resize(frames, (b,) + frames.shape[1:])) for b in (1, 4096)}

    with torch.inference_mode():
        error = np.abs(compiled.bone_rotations(inputs[4096]) - model(torch.from_numpy(inputs[4096])).numpy()).max()

    def torch_case(batch: int) -> Case:
        x = torch.from_numpy(inputs[batch])

        def run():
            with torch.inference_mode():
                return model(x)

        return Case(run, lambda: None)

    def compiled_case(batch: int) -> Case:
        return Case(lambda: compiled.bone_rotations(inputs[batch]), lambda: None)

    print(f"CPU: {cpu_model()}, ISA {fastkin.build_info()['isa']}, torch {torch.__version__}")
    print(f"IKGAT width 64, 4 layers, 4 heads, hops 3, expansion 2, 38 joints: {flops / 1e6:.2f} MFLOP per frame "
          f"({int((~model.blocked).sum())} attended joint pairs); compiled vs torch max |difference| {error:.1e}")
    print(f"{'case':<22} {'compiled frames/s':>18} {'torch frames/s':>15} {'ratio':>7} {'compiled':>10} "
          f"{'us/frame':>9} {'cpu-us/frame':>13}")
    before_fk, before_torch = fastkin.get_num_threads(), torch.get_num_threads()
    try:
        for threads, batches in ((1, (1, 4096)), (2, (4096,))):
            fastkin.set_num_threads(threads)
            torch.set_num_threads(threads)
            cases = {}
            for b in batches:
                cases[("compiled", b)] = compiled_case(b)
                cases[("torch", b)] = torch_case(b)
            timing = time_round_robin(cases, args.seconds, repeats=5)
            for b in batches:
                ours, theirs = timing[("compiled", b)].seconds, timing[("torch", b)].seconds
                print(f"{f'batch {b}, {threads} thread(s)':<22} {b / ours:>18,.0f} {b / theirs:>15,.0f} "
                      f"{theirs / ours:>6.1f}x {b * flops / ours / 1e9:>6.1f} GF/s {ours / b * 1e6:>9.2f} "
                      f"{cpu_time_per_frame(cases[('compiled', b)].run, b, args.seconds) * 1e6:>13.2f}")
    finally:
        fastkin.set_num_threads(before_fk)
        torch.set_num_threads(before_torch)


if __name__ == "__main__":
    main()
