"""The PoseToRotation section of ``fastkin bench``: the shipped any-skeleton
model on the bundled Fox (a quadruped it never saw), against analytic IK
given the same reference pair, with and without the reference, and its
speed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from .. import data as bundled
from .report import _checklist, _frames_per_second, _grouped_bars

__all__ = ["p2r_section"]

ASSET = "Fox.glb"  # bundled; left out of the shipped p2r-any model's training
METHODS = {
    "learned": "PoseToRotation, reference pair (the clip's first frame)",
    "estimate": "the same model untrained: the geometric estimate alone (`swing_estimate`), same reference",
    "learned_no_reference": "PoseToRotation, rest pose as reference (ablation)",
    "analytic": "`ik.analytic`, the same reference for twist",
    "analytic_no_reference": "`ik.analytic` from the rest pose",
}


def p2r_section(out: Any, *, model: Any = None, speed_batch: int = 4096, plots: bool = True,
                progress: bool = True) -> tuple[list[str], dict]:
    """Evaluates ``model`` (default: the shipped ``p2r-any``) on every
    animation of the bundled Fox and times it. Returns the report's lines
    and the measurements; with ``plots``, writes ``out/p2r_fox.png``.

    Example (an untrained model, to show the call):
        >>> import tempfile
        >>> from fastkin.learned import PoseToRotation
        >>> from fastkin.learned.p2r_report import p2r_section
        >>> lines, result = p2r_section(tempfile.mkdtemp(), model=PoseToRotation(width=16, layers=2),
        ...                             speed_batch=8, plots=False, progress=False)
        >>> sorted(result), [c["clip"] for c in result["clips"]]
        (['clips', 'mean', 'speed'], ['Fox:Survey', 'Fox:Walk', 'Fox:Run'])
    """
    from .p2r_data import load_clips
    from .p2r_train import evaluate_p2r
    from .pose_to_rotation import PoseToRotation
    from .pretrained import load_pretrained

    model = model or load_pretrained("p2r-any")
    if progress:
        print(f"fastkin bench: PoseToRotation on {ASSET}", file=sys.stderr, flush=True)
    clips = load_clips([bundled.path(ASSET)])
    untrained = PoseToRotation(**model.config)  # what the training adds is measured against this
    scores = []
    for clip in clips:
        alone = evaluate_p2r(untrained, clip)
        scores.append({"clip": clip.name, **evaluate_p2r(model, clip), "estimate": alone["learned"],
                       "estimate/non_leaf": alone["learned/non_leaf"]})
    frames = np.array([s["frames"] for s in scores], float)
    keys = [m + part for m in METHODS for part in ("", "/non_leaf")]
    mean = {k: float(np.average([s[k] for s in scores], weights=frames)) for k in keys}
    first = clips[0]  # predict with the reference pair
    speed = {"joints": first.skeleton.num_joints, **_frames_per_second(
        lambda p: model.predict(first.skeleton, p, reference=first.rotations[0]), first.positions, speed_batch)}
    result = {"clips": scores, "mean": mean, "speed": speed}
    if plots:
        _plot(Path(out), scores)
    return _lines(model, clips, result), result


def _lines(model: Any, clips: list, result: dict) -> list[str]:
    mean, speed = result["mean"], result["speed"]
    lines = [
        "",
        "## Any skeleton: PoseToRotation on an asset it never saw",
        "",
        f"Model: `p2r-any`, {model.num_parameters():,} parameters ({model.config}); trained without the Fox "
        "(see docs/pose_to_rotation.md). Asset: the bundled Fox, a quadruped with "
        f"{clips[0].skeleton.num_joints} joints, all {len(clips)} of its animations at 30 fps. The reference pair "
        "is each clip's first frame. Error: mean geodesic angle (°) to the true local rotations over frames and "
        "joints, all joints / joints with children (a leaf's rotation moves no joint, so positions cannot show it).",
        "",
        "| clip | frames | " + " | ".join(METHODS) + " |",
        "|---|---|" + "---|" * len(METHODS),
    ]
    def cells(row: dict) -> str:
        return " | ".join(f"{row[m]:.2f} / {row[m + '/non_leaf']:.2f}" for m in METHODS)

    for s in result["clips"]:
        lines.append(f"| {s['clip']} | {s['frames']} | {cells(s)} |")
    lines.append(f"| all (frame-weighted) | | {cells(mean)} |")
    lines += ["", "Columns: " + "; ".join(f"{k}: {v}" for k, v in METHODS.items()) + ".", ""]
    ratio = mean["learned"] / mean["analytic"]
    ratio_non_leaf = mean["learned/non_leaf"] / mean["analytic/non_leaf"]
    checks = [
        (f"learned: {mean['learned']:.2f}° (target <= 10°)", mean["learned"] <= 10.0),
        (f"learned / analytic with the same reference, all joints: {ratio:.2f} (target <= 0.6)", ratio <= 0.6),
        (f"the same over joints with children: {ratio_non_leaf:.2f} (target <= 0.6)", ratio_non_leaf <= 0.6),
        (f"batch 1, one thread, {speed['joints']} joints: {speed['batch1_fps']:,.0f} frames/s (target >= 1,000)",
         speed["batch1_fps"] >= 1000),
    ]
    lines += _checklist("Targets (issue 7):", checks)
    lines += ["", f"The reference pair changes the error by {mean['learned'] - mean['learned_no_reference']:+.2f}° "
              f"(against the rest pose as reference). Batch {speed['batch']:,} on two threads: "
              f"{speed['batch_fps']:,.0f} frames/s."]
    return lines


def _plot(out: Path, scores: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(7, 4))
    _grouped_bars(axes, [s["clip"] for s in scores], {m: [s[m] for s in scores] for m in METHODS})
    axes.set_ylabel("mean geodesic error (°)")
    axes.set_title("Fox (never trained on): local rotation error")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "p2r_fox.png", dpi=120)
    plt.close(figure)
