"""The main job, ``fastkin bench``: learned IK beside analytic and iterative
IK on held-out real motion, with accuracy under input noise and speed."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import data as bundled
from .. import ik
from ..motion import Motion
from ..rotations import axis_angle_to_quat
from .augment import height
from .evaluate import leaves, rotation_errors, twist_errors
from .checkpoint import write_atomically

__all__ = ["run_benchmark", "NOISE_LEVELS"]

NOISE_LEVELS = (0.0, 0.005, 0.01, 0.02)  # standard deviation of position noise, fraction of the height
MOTIONS = ("cmu_01_01", "cmu_12_01_walk")  # bundled; held out of the pretrained model's training
MM_PER_CMU_UNIT = 56.444
Method = Callable[[np.ndarray], tuple]


def run_benchmark(out: Any = "bench/results/learned", *, model: Any = None, p2r_model: Any = None,
                  motions: tuple = MOTIONS, step: int = 4, speed_batch: int = 4096, plots: bool = True,
                  progress: bool = True) -> dict:
    """Compares learned IK (alone and refined), analytic IK and iterative IK
    (from the rest pose and from a random pose) on bundled CMU motions that
    the pretrained model never saw, at every ``step``-th frame; then the
    any-skeleton :class:`PoseToRotation` (``p2r_model``, default the shipped
    ``p2r-any``) on the bundled Fox, which it never saw
    (:func:`fastkin.learned.p2r_report.p2r_section`).

    Writes ``out/report.md`` (and, with ``plots``, PNG figures: error per
    joint, error against input noise, speed); with ``progress``, shows
    progress and prints the report. Returns the measurements. Lengths are
    CMU units, shown in mm (x 56.444).

    Example (an untrained model, few frames, to show the call):
        >>> import tempfile, fastkin
        >>> from fastkin.learned import IKGAT, run_benchmark
        >>> from fastkin.learned import PoseToRotation
        >>> model = IKGAT(fastkin.data.default_motion("cmu_01_01").skeleton, width=8, layers=1)
        >>> result = run_benchmark(tempfile.mkdtemp(), model=model, p2r_model=PoseToRotation(width=8, layers=2),
        ...                        step=128, speed_batch=16, plots=False, progress=False)
        >>> sorted(result), sorted(result["summary"][0])
        (['accuracy', 'p2r', 'speed', 'summary'], ['all', 'method', 'mpjpe_mm', 'noise', 'non_leaf', 'twist'])
    """
    from .p2r_report import p2r_section  # it builds on this module's helpers
    from .pretrained import load_pretrained

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model or load_pretrained("ikgat-cmu")
    rng = np.random.default_rng(0)
    clips = [(name, bundled.default_motion(name)[::step]) for name in motions]
    accuracy = []
    per_joint: dict[str, list] = {}
    for name, motion in clips:
        skeleton = motion.skeleton
        clean = motion.positions()
        scale = height(skeleton)
        methods = _methods(model, skeleton, rng, len(clean))
        for noise in NOISE_LEVELS:
            noisy = clean + rng.normal(0.0, noise * scale, clean.shape)
            for method, solve in methods.items():
                if progress:
                    print(f"\rfastkin bench: {name}, noise {noise:.1%}, {method:<18}", end="", file=sys.stderr,
                          flush=True)
                rotations, root = solve(noisy)
                errors = rotation_errors(rotations, motion.rotations)
                twist = twist_errors(skeleton, rotations, motion.rotations)
                posed = _posed(skeleton, rotations, root)
                accuracy.append({"motion": name, "noise": noise, "method": method, "frames": len(clean),
                                 "all": errors.mean(), "non_leaf": errors[:, ~leaves(skeleton)].mean(),
                                 "twist": np.nanmean(twist),
                                 "mpjpe_mm": np.linalg.norm(posed - clean, axis=-1).mean() * MM_PER_CMU_UNIT})
                if noise == 0.0 and method != "solve (random)":  # ~120 degrees everywhere: it would flatten the plot
                    per_joint.setdefault(method, []).append(errors)
    if progress:
        print("\rfastkin bench: timing" + " " * 40, file=sys.stderr)
    speed = _speed(model, clips[-1][1], rng, speed_batch)
    summary = _summary(accuracy)
    p2r_lines, p2r = p2r_section(out, model=p2r_model, speed_batch=speed_batch, plots=plots, progress=progress)
    text = _report(summary, accuracy, speed, model, clips) + "\n".join(p2r_lines) + "\n"
    if progress:
        print(text)
    write_atomically(out / "report.md", lambda f: f.write(text.encode()))
    if plots:
        _plots(out, per_joint, summary, speed, clips[0][1].skeleton)
    return {"summary": summary, "accuracy": accuracy, "speed": speed, "p2r": p2r}


def _methods(model: Any, skeleton: Any, rng: np.random.Generator, frames: int) -> dict[str, Method]:
    random_start = axis_angle_to_quat(_uniform_axis_angles(rng, (frames, skeleton.num_joints)))
    return {
        "learned": lambda p: model.predict(p, skeleton=skeleton),
        "learned + refine": lambda p: model.predict(p, skeleton=skeleton, refine=True),
        "analytic": lambda p: ik.analytic(skeleton, p),
        "solve (rest)": lambda p: ik.solve(skeleton, p)[:2],
        "solve (random)": lambda p: ik.solve(skeleton, p, init=random_start[: len(p)])[:2],
    }


def _uniform_axis_angles(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Rotations uniform on SO(3), as axis-angle vectors."""
    q = rng.normal(size=shape + (4,))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    q *= np.sign(q[..., 3:])
    angle = 2 * np.arccos(np.clip(q[..., 3:], -1, 1))
    axis = q[..., :3] / np.maximum(np.linalg.norm(q[..., :3], axis=-1, keepdims=True), 1e-12)
    return axis * angle


def _posed(skeleton, rotations, root):
    from ..kinematics import fk_batch

    return fk_batch(skeleton, np.asarray(rotations, np.float64), np.asarray(root, np.float64))[1]


def _speed(model: Any, motion: Motion, rng: np.random.Generator, size: int) -> list[dict]:
    """Frames per second of each method (see :func:`_frames_per_second`)."""
    methods = _methods(model, motion.skeleton, rng, size)
    del methods["solve (random)"]
    return [{"method": name, **_frames_per_second(solve, motion.positions(), size)} for name, solve in methods.items()]


def _frames_per_second(solve: Callable[[np.ndarray], Any], positions: np.ndarray, size: int) -> dict:
    """``solve``'s frames per second on single frames of ``positions`` on
    one thread, and on ``size`` frames at once (the positions repeated) on
    two; fastkin's and torch's thread counts are restored after."""
    import torch

    from .. import get_num_threads, set_num_threads

    big = np.concatenate([positions] * (size // len(positions) + 1))[:size]
    calls = min(64, len(positions))
    threads, torch_threads = get_num_threads(), torch.get_num_threads()
    try:
        set_num_threads(1)
        torch.set_num_threads(1)
        single = _best_time(lambda: [solve(positions[i : i + 1]) for i in range(calls)], repeats=7) / calls
        set_num_threads(2)
        torch.set_num_threads(2)
        batch = _best_time(lambda: solve(big), repeats=2) / len(big)
    finally:
        set_num_threads(threads)
        torch.set_num_threads(torch_threads)
    return {"batch1_fps": 1.0 / single, "batch_fps": 1.0 / batch, "batch": len(big)}


def _grouped_bars(axes: Any, labels: list, series: dict) -> None:
    """One group of bars per label, one bar per series (name -> values)."""
    x = np.arange(len(labels))
    width = 0.8 / len(series)
    for k, (name, values) in enumerate(series.items()):
        axes.bar(x + k * width, values, width, label=name)
    axes.set_xticks(x + 0.4 - width / 2, labels)


def _checklist(title: str, checks: list[tuple[str, bool]]) -> list[str]:
    """Report lines ticking each (text, met) target."""
    return [title, ""] + [f"- [{'x' if ok else ' '}] {text}" for text, ok in checks]


def _best_time(work: Callable[[], Any], repeats: int = 3) -> float:
    work()  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def _summary(accuracy: list[dict]) -> list[dict]:
    """Frame-weighted means over the motions, per method and noise level."""
    rows = []
    for key in dict.fromkeys((a["method"], a["noise"]) for a in accuracy):
        group = [a for a in accuracy if (a["method"], a["noise"]) == key]
        weights = np.array([a["frames"] for a in group], float)
        rows.append({"method": key[0], "noise": key[1], **{
            m: float(np.average([a[m] for a in group], weights=weights)) for m in ("all", "non_leaf", "twist", "mpjpe_mm")}})
    return rows


def _report(summary: list[dict], accuracy: list[dict], speed: list[dict], model: Any, clips: list) -> str:
    import platform

    from .. import build_info

    def row(method, noise):
        return next(r for r in summary if r["method"] == method and r["noise"] == noise)

    frames = ", ".join(f"{name} ({len(motion)} frames)" for name, motion in clips)
    lines = [
        "# Learned IK beside analytic and iterative IK",
        "",
        "Command: `python -m fastkin bench` (`fastkin.learned.run_benchmark`).",
        f"Model: `ikgat-cmu`, {model.num_parameters():,} parameters ({model.config}).",
        f"Motions, never trained on: {frames}; every 4th frame of the 120 fps files.",
        f"Machine: {platform.processor() or platform.machine()}, fastkin kernels {build_info()['isa']}.",
        "",
        "Errors are means over frames and joints: geodesic angle to the true local rotation (all joints; joints with "
        "children), its twist part about the bone alone, and the mean joint distance after FK of the answer "
        "(MPJPE, against the clean positions; 1 CMU unit = 56.444 mm). Noise: Gaussian, standard deviation as a "
        "share of the skeleton's height, added to every joint of the input.",
        "",
        "| noise | method | geodesic all (°) | non-leaf (°) | twist (°) | MPJPE (mm) |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary:
        lines.append(f"| {r['noise']:.1%} | {r['method']} | {r['all']:.2f} | {r['non_leaf']:.2f} | {r['twist']:.2f} | "
                     f"{r['mpjpe_mm']:.3g} |")
    lines += ["", "Per motion, without noise:", "", "| motion | method | geodesic all (°) | non-leaf (°) | twist (°) | MPJPE (mm) |",
              "|---|---|---|---|---|---|"]
    for a in accuracy:
        if a["noise"] == 0.0:
            lines.append(f"| {a['motion']} | {a['method']} | {a['all']:.2f} | {a['non_leaf']:.2f} | {a['twist']:.2f} | "
                         f"{a['mpjpe_mm']:.3g} |")
    size = f"{speed[0]['batch']:,}"
    lines += ["", f"Speed (frames per second; batch 1: one frame per call on one thread; batch {size}: two threads):", "",
              f"| method | batch 1 | batch {size} |", "|---|---|---|"]
    for s in speed:
        lines.append(f"| {s['method']} | {s['batch1_fps']:,.0f} | {s['batch_fps']:,.0f} |")
    learned, analytic, rest = row("learned", 0.0), row("analytic", 0.0), row("solve (rest)", 0.0)
    refined = row("learned + refine", 0.0)
    degrade = {m: row(m, 0.02)["all"] - row(m, 0.0)["all"] for m in ("learned", "solve (rest)")}
    fast = next(s for s in speed if s["method"] == "learned")
    checks = [
        (f"learned / analytic geodesic: {learned['all'] / analytic['all']:.2f}", learned["all"] <= 0.5 * analytic["all"]),
        (f"learned / solve (rest) geodesic: {learned['all'] / rest['all']:.2f}", learned["all"] <= 0.5 * rest["all"]),
        (f"learned non-leaf geodesic: {learned['non_leaf']:.2f}°", learned["non_leaf"] <= 8.0),
        (f"refine changes the rotation error by {refined['all'] - learned['all']:+.2f}°",
         abs(refined["all"] - learned["all"]) <= 1.0),
        (f"refined MPJPE: {refined['mpjpe_mm']:.3g} mm", refined["mpjpe_mm"] < 1.0),
        (f"error added by 2% noise: learned {degrade['learned']:+.2f}°, solve (rest) {degrade['solve (rest)']:+.2f}°",
         degrade["learned"] < degrade["solve (rest)"]),
        (f"learned batch 1: {fast['batch1_fps']:,.0f} frames/s", fast["batch1_fps"] >= 3000),
        (f"learned batch {size}, 2 threads: {fast['batch_fps']:,.0f} frames/s", fast["batch_fps"] >= 100_000),
    ]
    lines += [""] + _checklist("Targets (issue 6):", checks)
    return "\n".join(lines) + "\n"


def _plots(out: Path, per_joint: dict, summary: list[dict], speed: list[dict], skeleton) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(12, 4))
    _grouped_bars(axes, skeleton.names, {m: np.concatenate(errors).mean(axis=0) for m, errors in per_joint.items()})
    axes.tick_params(axis="x", labelrotation=90, labelsize=7)
    axes.set_ylabel("mean geodesic error (°)")
    axes.set_title("Error per joint (held-out CMU motion, no noise; solve from random poses: ~120° everywhere)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "error_per_joint.png", dpi=120)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(6, 4))
    for method in dict.fromkeys(r["method"] for r in summary):
        rows = [r for r in summary if r["method"] == method]
        axes.plot([100 * r["noise"] for r in rows], [r["all"] for r in rows], marker="o", label=method)
    axes.set_xlabel("input noise (% of height)")
    axes.set_ylabel("mean geodesic error (°)")
    axes.set_title("Error against input noise")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "error_vs_noise.png", dpi=120)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(7, 4))
    names = [s["method"] for s in speed]
    y = np.arange(len(names))
    axes.barh(y - 0.2, [s["batch1_fps"] for s in speed], 0.4, label="batch 1, 1 thread")
    axes.barh(y + 0.2, [s["batch_fps"] for s in speed], 0.4, label=f"batch {speed[0]['batch']:,}, 2 threads")
    axes.set_yticks(y, names)
    axes.set_xscale("log")
    axes.set_xlabel("frames per second")
    axes.set_title("Speed")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "speed.png", dpi=120)
    plt.close(figure)
