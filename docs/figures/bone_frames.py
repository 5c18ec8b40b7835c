"""Draws docs/figures/bone_frames.svg: the bundled CMU skeleton at rest and in
a walk frame, each joint with its bone frame, all computed by fastkin.

Run from the repository root: ``python docs/figures/bone_frames.py [OUT.svg]``
(needs matplotlib). tests/test_docs.py runs it into a temporary folder, so
the figure stays reproducible.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt
import numpy as np

import fastkin

# Frame axis colours: the bone direction (first column) and the completion.
AXIS_COLOURS = ("tab:red", "tab:green", "tab:blue")
FRAME = 24  # a walk frame with both legs apart


def draw(ax: plt.Axes, skeleton: fastkin.Skeleton, positions: np.ndarray, frames: np.ndarray, title: str) -> None:
    """Bones as grey lines and each joint's frame as three short axes,
    projected on the x-y plane (the BVH's front view)."""
    scale = 0.06 * np.ptp(positions[:, 1])
    for joint, parent in enumerate(skeleton.parents):
        if parent >= 0:
            ax.plot(*positions[[parent, joint], :2].T, color="0.6", lw=2, zorder=1)
    for joint in range(skeleton.num_joints):
        for axis, colour in enumerate(AXIS_COLOURS):
            tip = positions[joint] + scale * frames[joint, :, axis]
            ax.plot(*np.stack([positions[joint], tip])[:, :2].T, color=colour, lw=1, zorder=2)
    ax.scatter(*positions[:, :2].T, s=6, color="black", zorder=3)
    ax.set_title(title, fontsize=10)
    ax.set_aspect("equal")
    ax.axis("off")


def main(out: Path) -> None:
    walk = fastkin.data.default_motion()
    skeleton = walk.skeleton
    rest_frames = fastkin.bone_frames(skeleton)
    _, rest_positions = fastkin.fk_batch(skeleton, skeleton.rest_pose())
    posed = walk[FRAME]
    _, positions = fastkin.fk_batch(skeleton, posed.rotations[0], posed.root_translation[0])
    bone_rotations = fastkin.local_to_bone_world(skeleton, posed.rotations[0], frames=rest_frames)

    plt.rcParams["svg.hashsalt"] = "fastkin"  # stable element ids
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: a smaller file
    fig, (left, right) = plt.subplots(1, 2, figsize=(7, 4.2))
    draw(left, skeleton, rest_positions, rest_frames, "rest pose: bone_frames(skeleton)")
    draw(
        right, skeleton, positions - positions[0] + rest_positions[0], bone_rotations, "walk frame: local_to_bone_world"
    )
    handles = [plt.Line2D([], [], color=c, label=f"column {i + 1}") for i, c in enumerate(AXIS_COLOURS)]
    handles[0].set_label("column 1: the bone")
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(out, metadata={"Date": None})
    plt.close(fig)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_suffix(".svg"))
