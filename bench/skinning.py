"""Skinning benchmark: fastkin.lbs / fastkin.dqs against smplx-style torch
skinning (dense ``W @ A``, then a per-vertex 4x4 transform, as smplx.lbs
does it), the same in numpy, a numpy gather over the K influences, and
scipy.sparse, on an SMPL-sized mesh.

    python bench/skinning.py            # ~2 minutes; writes bench/results/skinning.md
    python bench/skinning.py --quick    # smoke test; prints the report only
    python -m fastkin bench skinning    # the same, through the fastkin CLI

Mesh: 6,890 vertices, 24 joints, K = 4 influences per vertex (random but
fixed), float32, one thread everywhere (torch, BLAS and fastkin), batch
B = 1, 16, 256 poses. All implementations are checked against fastkin's
output before timing and timed round-robin in one process (best repeat
kept). Times are never asserted; the report marks the targets met or not.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy is imported

import argparse
import datetime
import sys
from pathlib import Path
from typing import Optional

import numpy as np

import fastkin

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py, also when run through runpy
from common import (  # noqa: E402
    Case,
    command_line,
    cpu_flags,
    cpu_model,
    extension_identity,
    optional_import,
    package_version,
    time_round_robin,
)

torch, TORCH_ERROR = optional_import("torch")
sparse, SCIPY_ERROR = optional_import("scipy.sparse")
smplx, SMPLX_ERROR = optional_import("smplx")

NUM_VERTICES, NUM_JOINTS, K = 6890, 24, 4
SIZES = (1, 16, 256)
SEED = 20241129
TOLERANCE = 1e-4  # float32 outputs agree to this (mesh of unit scale)


class Rig:
    """One problem: B poses of skinning transforms and the shared mesh."""

    def __init__(self, batch: int):
        rng = np.random.default_rng(SEED)
        self.batch = batch
        self.vertices = rng.normal(size=(NUM_VERTICES, 3)).astype(np.float32)
        self.joints = np.stack([rng.choice(NUM_JOINTS, K, replace=False) for _ in range(NUM_VERTICES)]).astype(np.int32)
        weights = rng.random((NUM_VERTICES, K)) ** 2 + 1e-3
        self.weights = (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
        self.dense = np.zeros((NUM_VERTICES, NUM_JOINTS), np.float32)
        np.put_along_axis(self.dense, self.joints, self.weights, axis=1)
        quats = rng.normal(size=(batch, NUM_JOINTS, 4))
        rotations = fastkin.rotations.quat_to_matrix(quats / np.linalg.norm(quats, axis=-1, keepdims=True))
        translations = rng.normal(size=(batch, NUM_JOINTS, 3, 1))
        self.transforms = np.concatenate([rotations, translations], axis=-1).astype(np.float32)


def fastkin_cases(rig: Rig) -> dict[str, Case]:
    cases = {
        "fastkin.lbs (numpy)": lambda: fastkin.lbs(rig.transforms, rig.vertices, rig.joints, rig.weights),
        "fastkin.dqs (numpy)": lambda: fastkin.dqs(rig.transforms, rig.vertices, rig.joints, rig.weights),
    }
    out = {name: Case(run, run) for name, run in cases.items()}
    if torch is not None:
        t, v = torch.from_numpy(rig.transforms), torch.from_numpy(rig.vertices)
        j, w = torch.from_numpy(rig.joints), torch.from_numpy(rig.weights)
        run = lambda: fastkin.lbs(t, v, j, w)  # noqa: E731
        out["fastkin.lbs (torch)"] = Case(run, lambda: run().numpy())
    return out


def peer_cases(rig: Rig) -> dict[str, Case]:
    out: dict[str, Case] = {}
    B = rig.batch
    homogeneous = np.concatenate([rig.vertices, np.ones((NUM_VERTICES, 1), np.float32)], axis=1)
    transforms16 = np.zeros((B, NUM_JOINTS, 4, 4), np.float32)
    transforms16[:, :, :3] = rig.transforms
    transforms16[:, :, 3, 3] = 1

    if torch is not None:
        W, A = torch.from_numpy(rig.dense), torch.from_numpy(transforms16)
        v_h = torch.from_numpy(homogeneous)[None, :, :, None]

        def smplx_style():
            # smplx.lbs: T = W @ A (dense over all J joints), then T @ [v; 1].
            T = torch.matmul(W, A.view(B, NUM_JOINTS, 16)).view(B, NUM_VERTICES, 4, 4)
            return torch.matmul(T, v_h)[:, :, :3, 0]

        out["smplx-style torch (W @ A)"] = Case(smplx_style, lambda: smplx_style().numpy())

    def numpy_dense():
        T = (rig.dense @ rig.transforms.reshape(B, NUM_JOINTS, 12)).reshape(B, NUM_VERTICES, 3, 4)
        return np.einsum("bvij,vj->bvi", T, homogeneous)

    out["numpy dense (W @ A)"] = Case(numpy_dense, numpy_dense)

    def numpy_gather():
        T = np.einsum("bvkij,vk->bvij", rig.transforms[:, rig.joints], rig.weights)
        return np.einsum("bvij,vj->bvi", T, homogeneous)

    out["numpy gather over K"] = Case(numpy_gather, numpy_gather)

    if sparse is not None:
        W_sparse = sparse.csr_matrix(rig.dense)
        flat = np.ascontiguousarray(rig.transforms.reshape(B, NUM_JOINTS, 12).transpose(1, 0, 2).reshape(NUM_JOINTS, B * 12))

        def scipy_sparse():
            T = (W_sparse @ flat).reshape(NUM_VERTICES, B, 3, 4)
            return np.einsum("vbij,vj->bvi", T, homogeneous)

        out["scipy.sparse (W @ A)"] = Case(scipy_sparse, scipy_sparse)
    return out


def check(cases: dict[str, Case], reference: np.ndarray) -> dict[str, float]:
    """Max abs difference of each case's output from fastkin.lbs; a case that
    disagrees (DQS is a different method, so it is not compared) is dropped."""
    errors = {}
    for name in list(cases):
        if "dqs" in name:
            continue
        errors[name] = float(np.abs(np.asarray(cases[name].positions()) - reference).max())
        if errors[name] > TOLERANCE:
            print(f"{name} disagrees with fastkin.lbs by {errors[name]:.2e}: not timed", file=sys.stderr)
            del cases[name]
    return errors


def run(sizes, time_per_case: float, repeats: int):
    fastkin.set_num_threads(1)
    if torch is not None:
        torch.set_num_threads(1)
    table = {}
    errors = {}
    for batch in sizes:
        rig = Rig(batch)
        cases = {**fastkin_cases(rig), **peer_cases(rig)}
        errors[batch] = check(cases, fastkin.lbs(rig.transforms, rig.vertices, rig.joints, rig.weights))
        table[batch] = time_round_robin(cases, time_per_case, repeats)
        print(f"B={batch}: " + ", ".join(f"{k} {m.seconds * 1e6:.0f} us" for k, m in table[batch].items()), file=sys.stderr)
    return table, errors


def report(table, errors, quick: bool, load_before, load_after) -> str:
    names = list(dict.fromkeys(name for batch in table for name in table[batch]))
    lines = [
        "# Skinning benchmark",
        "",
        f"Command: `{command_line()}`  ",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC  ",
        f"CPU: {cpu_model()} ({cpu_flags()}); fastkin kernels: {fastkin.build_info()['isa']}; one thread everywhere  ",
        f"fastkin {fastkin.__version__} ({extension_identity()}), numpy {np.__version__}, "
        f"torch {package_version('torch', torch)}, scipy {package_version('scipy', sparse)}  ",
        f"Load average before / after: {load_before:.2f} / {load_after:.2f} (2 cores)",
        "",
        f"Mesh: {NUM_VERTICES:,} vertices, {NUM_JOINTS} joints, K = {K} influences per vertex, float32. "
        "Cells: million vertices per second (B × V / time; higher is better), time per call in brackets. "
        "Every output was checked against fastkin.lbs first (max abs difference below the table).",
        "",
        "| implementation | " + " | ".join(f"B = {b}" for b in table) + " |",
        "|---|" + "---:|" * len(table),
    ]
    for name in names:
        cells = []
        for batch in table:
            m = table[batch].get(name)
            cells.append("—" if m is None else f"{batch * NUM_VERTICES / m.seconds / 1e6:,.0f} ({_time(m.seconds)})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Max abs difference from fastkin.lbs: " + ", ".join(
        f"{name} {max(errors[b].get(name, 0.0) for b in errors):.1e}" for name in names if "dqs" not in name and "fastkin.lbs (numpy)" != name
    ), ""]
    lines += ["## Targets", ""] + targets(table) + [""]
    if quick:
        lines += ["Quick run (short timings): a smoke test, not a measurement.", ""]
    return "\n".join(lines)


def targets(table) -> list[str]:
    out = []

    def rate(batch, name) -> Optional[float]:
        m = table.get(batch, {}).get(name)
        return None if m is None else batch * NUM_VERTICES / m.seconds / 1e6

    lbs16 = rate(16, "fastkin.lbs (numpy)")
    if lbs16 is not None:
        peers = {n: rate(16, n) for n in table[16] if not n.startswith("fastkin")}
        best = max(peers, key=lambda n: peers[n]) if peers else None
        against = f"; best peer {best}: {peers[best]:,.0f} M/s, {lbs16 / peers[best]:.1f}x" if best else ""
        out.append(f"- LBS at B = 16, one thread: **{lbs16:,.0f} M vertices/s** (target >= 250: {_met(lbs16 >= 250)}){against}.")
    if 1 in table and "fastkin.lbs (numpy)" in table[1]:
        single = table[1]["fastkin.lbs (numpy)"].seconds * 1e6
        out.append(f"- One frame from Python (numpy, B = 1): **{single:.0f} µs** (target <= 40 µs: {_met(single <= 40)}).")
    for batch in table:
        lbs, dqs = rate(batch, "fastkin.lbs (numpy)"), rate(batch, "fastkin.dqs (numpy)")
        if lbs and dqs:
            out.append(f"- DQS / LBS time at B = {batch}: **{lbs / dqs:.2f}x** (target <= 1.5x: {_met(lbs / dqs <= 1.5)}).")
    return out


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _time(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.1f} ms"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short timings; print the report, write nothing")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "skinning.md")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    table, errors = run(SIZES, 0.3 if args.quick else 6.0, 3 if args.quick else 7)
    text = report(table, errors, args.quick, load_before, os.getloadavg()[0])
    print(text)
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        temporary = args.out.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
