"""Inverse-kinematics benchmark: fastkin.ik.solve (and fastkin.ik.analytic,
when present) against Pinocchio's Levenberg-Marquardt with its analytic
joint Jacobians (a Python loop per frame, the usual way to use it) and a
torch L-BFGS optimisation over axis-angle, on the SMPL-like 24-joint skeleton.

    python bench/ik.py            # ~2-3 minutes; writes bench/results/ik.md
    python bench/ik.py --quick    # smoke test; prints the report only
    python -m fastkin bench ik    # the same, through the fastkin CLI

Problem: random poses (axis-angle, random axes, angles up to 1 rad) and root
translations, targets = fk_batch positions of all 24 joints, start = the
rest pose, float64, one thread everywhere. Every method's answer is posed
through fastkin.fk_batch and its largest joint error (relative to the
skeleton's height) and its geodesic rotation error to the true local
rotations are reported beside its speed, measured in the same run.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy is imported

import argparse
import datetime
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

import fastkin

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py, also when run through runpy
from common import (  # noqa: E402
    NUM_JOINTS,
    best_time,
    PARENTS,
    command_line,
    cpu_flags,
    cpu_model,
    extension_identity,
    make_axis_angles,
    make_offsets,
    optional_import,
    package_version,
)

torch, TORCH_ERROR = optional_import("torch")
pin, PIN_ERROR = optional_import("pinocchio")

SKELETON = fastkin.Skeleton(PARENTS, make_offsets())
REST = fastkin.fk_batch(SKELETON, SKELETON.rest_rotations)[1]
HEIGHT = float(np.ptp(REST, axis=0).max())
TOL = 1e-9 * HEIGHT  # every iterative method stops within this of the targets (or at its iteration limit)


def make_problem(frames: int, seed: int):
    rng = np.random.default_rng(seed)
    truth = fastkin.rotations.axis_angle_to_quat(make_axis_angles(frames, seed))
    root = rng.normal(0.0, 0.5, size=(frames, 3))
    targets = fastkin.fk_batch(SKELETON, truth, root)[1]
    return truth, root, targets


def accuracy(rotations_quat, root, targets, truth) -> dict:
    """Largest joint error / height, and mean geodesic error (degrees) to the
    true local rotations over all joints and over joints with children."""
    posed = fastkin.fk_batch(SKELETON, rotations_quat, root)[1]
    error = np.linalg.norm(posed - targets, axis=-1).max(axis=-1) / HEIGHT
    matrices = fastkin.rotations.quat_to_matrix
    angle = np.degrees(fastkin.rotations.geodesic_angle(matrices(rotations_quat), matrices(truth)))
    inner = [j for j in range(NUM_JOINTS) if j in PARENTS]
    return {
        "max_error": float(error.max()),
        "within": float((error < 1e-6).mean()),
        "geodesic_all": float(angle.mean()),
        "geodesic_inner": float(angle[..., inner].mean()),
    }



# -- methods ---------------------------------------------------------------------------------------


def fastkin_solve(frames: int, single: int, repeats: int) -> dict:
    truth, root, targets = make_problem(frames, 1)
    result = fastkin.ik.solve(SKELETON, targets)
    out = accuracy(result.rotations, result.root_translation, targets, truth)
    out["iterations"] = float(np.median(result.iterations))
    out["converged"] = float(result.converged.mean())
    out["batch_us"] = best_time(lambda: fastkin.ik.solve(SKELETON, targets), repeats) / frames * 1e6
    latencies = []
    for frame in targets[:single]:
        start = time.perf_counter()
        fastkin.ik.solve(SKELETON, frame)
        latencies.append(time.perf_counter() - start)
    out["single_us"] = float(np.median(latencies) * 1e6)
    return out


def fastkin_analytic(frames: int, repeats: int) -> dict:
    truth, root, targets = make_problem(frames, 1)
    out = accuracy(*_analytic_pose(SKELETON, targets), targets, truth)
    out["batch_us"] = best_time(lambda: fastkin.ik.analytic(SKELETON, targets), repeats) / frames * 1e6
    start = time.perf_counter()
    fastkin.ik.analytic(SKELETON, targets[0])
    out["single_us"] = (time.perf_counter() - start) * 1e6
    return out


def _analytic_pose(skeleton, targets):
    """fastkin.ik.analytic's answer as (quaternions, root translation)."""
    rotations, root = fastkin.ik.analytic(skeleton, targets)
    return fastkin.rotations.matrix_to_quat(rotations), root


def pinocchio_lm(frames: int, max_iters: int = 100) -> Optional[dict]:
    """Levenberg-Marquardt on Pinocchio's model (a translation joint, then 24
    spherical joints) with its analytic joint Jacobians, one frame at a time."""
    if pin is None:
        return None
    model = pin.Model()
    translation = model.addJoint(0, pin.JointModelTranslation(), pin.SE3.Identity(), "root_translation")
    ids = []
    for joint, parent in enumerate(PARENTS):
        placement = pin.SE3(np.eye(3), SKELETON.offsets[joint].copy())
        parent_id = translation if parent < 0 else ids[parent]
        ids.append(model.addJoint(parent_id, pin.JointModelSpherical(), placement, f"joint_{joint}"))
    data = model.createData()
    truth, root, targets = make_problem(frames, 1)
    rotations = np.empty((frames, NUM_JOINTS, 4))
    roots = np.empty((frames, 3))
    iterations = []
    start = time.perf_counter()
    for f in range(frames):
        q = pin.neutral(model)
        damping = 1e-6
        for it in range(max_iters):
            pin.forwardKinematics(model, data, q)
            residual = np.concatenate([data.oMi[i].translation for i in ids]) - targets[f].ravel()
            if np.abs(residual.reshape(-1, 3)).max() < TOL:
                break
            pin.computeJointJacobians(model, data, q)
            jacobian = np.concatenate(
                [pin.getJointJacobian(model, data, i, pin.LOCAL_WORLD_ALIGNED)[:3] for i in ids]
            )  # the velocity of each joint's origin
            # Spherical joints' origin velocity ignores their own rotation, as wanted.
            h = jacobian.T @ jacobian
            g = jacobian.T @ residual
            step = np.linalg.solve(h + damping * np.eye(model.nv), -g)
            candidate = pin.integrate(model, q, step)
            pin.forwardKinematics(model, data, candidate)
            new_residual = np.concatenate([data.oMi[i].translation for i in ids]) - targets[f].ravel()
            if new_residual @ new_residual < residual @ residual:
                q, damping = candidate, damping / 3
            else:
                damping *= 4
        iterations.append(it)
        roots[f] = q[:3]
        rotations[f] = q[3:].reshape(NUM_JOINTS, 4)  # xyzw, as pinocchio stores spherical joints
    seconds = time.perf_counter() - start
    out = accuracy(rotations, roots, targets, truth)
    out["iterations"] = float(np.median(iterations))
    out["single_us"] = seconds / frames * 1e6
    return out


def torch_lbfgs(frames: int, steps: int = 100) -> Optional[dict]:
    """torch.optim.LBFGS over axis-angle and root translation for a batch,
    with forward kinematics in plain torch (fastkin's torch-native path, the
    code a user would write) and autograd."""
    if torch is None:
        return None
    from fastkin._torch_ops import fk_torch_native

    truth, root, targets = make_problem(frames, 1)
    target = torch.tensor(targets)
    offsets = torch.tensor(SKELETON.offsets)
    axis_angle = torch.full((frames, NUM_JOINTS, 3), 1e-6, dtype=torch.float64, requires_grad=True)
    translation = torch.zeros(frames, 3, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([axis_angle, translation], lr=1, max_iter=steps, tolerance_grad=1e-14,
                                  tolerance_change=1e-16, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        rotations = fastkin.rotations.axis_angle_to_matrix(axis_angle)
        positions = fk_torch_native(PARENTS, rotations, translation, offsets)[1]
        loss = (positions - target).square().sum()
        loss.backward()
        return loss

    start = time.perf_counter()
    optimiser.step(closure)
    seconds = time.perf_counter() - start
    quats = fastkin.rotations.axis_angle_to_quat(axis_angle.detach().numpy())
    out = accuracy(quats, translation.detach().numpy(), targets, truth)
    out["batch_us"] = seconds / frames * 1e6
    out["iterations"] = float(steps)
    return out


# -- real motion and noise (acceptance figures) ----------------------------------------------------

SHARED = Path(os.environ.get("FASTKIN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
REAL_MOTIONS = ("train/cmu-bvh/01_01.bvh", "test/bvh/pybvh_cmu_12_01_walk.bvh")


def motion_methods(robust_scale: float) -> dict:
    """name -> (skeleton, targets) -> (quaternions, root translation)."""
    return {  # each gives (rotations, root translation, median iterations or None)
        "analytic": lambda sk, t: (*_analytic_pose(sk, t), None),
        "solve": lambda sk, t: _pose_of(fastkin.ik.solve(sk, t)),
        "solve + Huber": lambda sk, t: _pose_of(fastkin.ik.solve(sk, t, robust=robust_scale * _height(sk))),
    }


def _pose_of(result):
    return result.rotations, result.root_translation, float(np.median(result.iterations))


def _height(skeleton) -> float:
    rest = fastkin.fk_batch(skeleton, skeleton.rest_rotations)[1]
    return float(np.ptp(rest, axis=0).max())


def real_motion_rows(noise_levels=(0.0, 0.005, 0.02)) -> list[str]:
    """Every 10th frame of two real motions: position error (of every joint,
    relative to the height) and geodesic error to the true local rotations,
    for clean targets and Gaussian noise of 0.5% and 2% of the height."""
    rows = []
    for name in REAL_MOTIONS:
        path = SHARED / name
        if not path.is_file():
            rows.append(f"| {name} | not found (set FASTKIN_SHARED_DATA) | | | | | |")
            continue
        motion = fastkin.io.load_bvh(path)[::10]
        skeleton, truth = motion.skeleton, motion.rotations
        clean = motion.positions()
        height = _height(skeleton)
        inner = [j for j in range(skeleton.num_joints) if len(skeleton.children(j))]
        rng = np.random.default_rng(7)
        for noise in noise_levels:
            targets = clean + rng.normal(scale=noise * height, size=clean.shape)
            for method, run in motion_methods(0.01).items():
                start = time.perf_counter()
                rotations, root, iterations = run(skeleton, targets)
                seconds = time.perf_counter() - start
                posed = fastkin.fk_batch(skeleton, rotations, root)[1]
                error = np.linalg.norm(posed - clean, axis=-1) / height  # against the clean positions
                angle = np.degrees(fastkin.rotations.geodesic_angle(fastkin.rotations.quat_to_matrix(rotations),
                                                                     fastkin.rotations.quat_to_matrix(truth)))
                finite = bool(np.isfinite(rotations).all() and np.isfinite(root).all())
                rows.append(
                    f"| {path.name} ({len(motion)} frames) | {noise:.1%} | {method} | {error.max():.1e} / {np.median(error):.1e} | "
                    f"{(error.max(axis=-1) < 1e-6).mean():.1%} | {angle.mean():.2f} / {angle[..., inner].mean():.2f} | "
                    f"{'—' if iterations is None else f'{iterations:.0f}'} | "
                    f"{'yes' if finite else '**no**'}, {seconds / len(motion) * 1e6:.0f} µs/frame |"
                )
    return rows


# -- report ----------------------------------------------------------------------------------------


def report(rows: dict, quick: bool, sizes: dict, load, real_rows: list[str]) -> str:
    def cell(value, fmt):
        return "—" if value is None else format(value, fmt)

    lines = [
        "# Inverse-kinematics benchmark",
        "",
        f"Command: `{command_line()}`  ",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC  ",
        f"CPU: {cpu_model()} ({cpu_flags()}); fastkin kernels: {fastkin.build_info()['isa']}; one thread everywhere  ",
        f"fastkin {fastkin.__version__} ({extension_identity()}), numpy {np.__version__}, "
        f"pinocchio {package_version('pin', pin)}, torch {package_version('torch', torch)}  ",
        f"Load average before / after: {load[0]:.2f} / {load[1]:.2f} (2 cores)",
        "",
        f"SMPL-like skeleton (24 joints, height {HEIGHT:.3f}); random poses up to 1 rad per joint, random root "
        "translation; targets: all 24 joint positions; start: the rest pose; float64. "
        f"Iterative methods stop within {TOL / HEIGHT:.0e} of the height. Single frame: median time of one call "
        f"from Python over {sizes['single']} frames. Batch: time per frame of one call on {sizes['batch']} frames "
        f"(torch L-BFGS: {sizes['torch']} frames at once). Errors: largest joint distance over all frames / height; "
        "share of frames within 1e-6 of the height; mean geodesic angle to the true local rotations (all joints, "
        "and joints with children — a leaf's rotation moves no joint and cannot be recovered).",
        "",
        "| method | single frame (µs) | batch (µs / frame) | frames / s | max error / height | within 1e-6 | median iterations | geodesic all / inner (°) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        if r is None:
            lines.append(f"| {name} | not available | | | | | | |")
            continue
        batch = r.get("batch_us")
        lines.append(
            f"| {name} | {cell(r.get('single_us'), '.1f')} | {cell(batch, '.2f')} | "
            f"{cell(None if batch is None else 1e6 / batch, ',.0f')} | {r['max_error']:.1e} | {r['within']:.1%} | "
            f"{cell(r.get('iterations'), '.0f')} | {r['geodesic_all']:.2f} / {r['geodesic_inner']:.2f} |"
        )
    lines += [
        "",
        "pytorch_kinematics is not in the table: its IK (`PseudoInverseIK`) solves one serial chain for one "
        "end-effector pose, so this problem (a tree with a position target on every joint) cannot be posed to it.",
    ]
    lines += ["", "## Targets", ""]
    solve, pinocchio, analytic = rows.get("fastkin.ik.solve"), rows.get("Pinocchio LM (Python loop)"), rows.get("fastkin.ik.analytic")
    if solve:
        lines.append(f"- solve, one frame from Python: **{solve['single_us']:.0f} µs** median (target <= 50: {_met(solve['single_us'] <= 50)}).")
        if pinocchio:
            ratio = pinocchio["single_us"] / solve["single_us"]
            lines.append(f"- solve vs Pinocchio LM per frame: **{ratio:.0f}x** faster (target >= 20x: {_met(ratio >= 20)}).")
        fps = 1e6 / solve["batch_us"]
        lines.append(f"- solve on a batch of {sizes['batch']}: **{fps:,.0f} frames/s** (target >= 20,000: {_met(fps >= 20000)}).")
        lines.append(f"- solve accuracy: {solve['within']:.1%} of frames within 1e-6 of the height (target >= 99%: {_met(solve['within'] >= 0.99)}).")
    if analytic:
        fps = 1e6 / analytic["batch_us"]
        lines.append(f"- analytic on a batch of {sizes['batch']}: **{fps:,.0f} frames/s** (target >= 1,000,000: {_met(fps >= 1e6)}).")
    lines += [
        "",
        "## Real motion and noisy targets",
        "",
        "Every 10th frame of two CMU motions (BVH skeletons with end sites), targets = fk_batch positions of every "
        "joint, plus Gaussian noise of the given fraction of the height; start: the rest pose. Position error: "
        "distance of each posed joint from its clean position / height (max / median over joints and frames); "
        "within 1e-6: share of frames whose every joint is; geodesic: mean angle (degrees) to the true local "
        "rotations over all joints / joints with children (a single child leaves the twist about the bone free, and "
        "a leaf's rotation moves nothing: the rest pose is kept there). Huber threshold: 1% of the height.",
        "",
        "| motion | noise | method | position error max / median | within 1e-6 | geodesic all / inner (°) | median iterations | finite, time |",
        "|---|---:|---|---:|---:|---:|---:|---|",
        *real_rows,
    ]
    if quick:
        lines += ["", "Quick run (few frames): a smoke test, not a measurement."]
    return "\n".join(lines) + "\n"


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few frames; print the report, write nothing")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "ik.md")
    args = parser.parse_args(argv)
    fastkin.set_num_threads(1)
    if torch is not None:
        torch.set_num_threads(1)
    sizes = {"batch": 256 if args.quick else 4096, "single": 50 if args.quick else 400, "pinocchio": 5 if args.quick else 50,
             "torch": 32 if args.quick else 256}
    load_before = os.getloadavg()[0]
    rows = {}
    rows["fastkin.ik.solve"] = fastkin_solve(sizes["batch"], sizes["single"], 2 if args.quick else 5)
    print("solve done", file=sys.stderr)
    rows["fastkin.ik.analytic"] = fastkin_analytic(sizes["batch"], 2 if args.quick else 7)
    rows["Pinocchio LM (Python loop)"] = pinocchio_lm(sizes["pinocchio"])
    print("pinocchio done", file=sys.stderr)
    rows["torch L-BFGS (axis-angle)"] = torch_lbfgs(sizes["torch"])
    real_rows = real_motion_rows() if not args.quick else real_motion_rows((0.0,))
    text = report(rows, args.quick, sizes, (load_before, os.getloadavg()[0]), real_rows)
    print(text)
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        temporary = args.out.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
