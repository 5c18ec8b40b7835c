"""How well can any positions-to-rotations model do on the Fox's leaves?

A leaf joint's rotation moves no joint, so positions say nothing about it:
a model can only guess it from a prior. This script scores simple priors for
the six leaves of the bundled Fox against the true local rotations, with the
clip's first frame as the reference pair (as in ``fastkin bench``), and
prints the floor the best of them puts under the all-joint error, as a
ratio to ``ik.analytic`` given the same reference.

Run from the repository root::

    python bench/p2r_leaf_priors.py     # ~10 s; prints a markdown table

Priors (R: local rotation of the leaf, P: world rotation of its parent, both
true; 0: the reference frame, t: the current one):

- reference: R_t = R_0 (the leaf keeps its reference pose relative to its
  parent; what PoseToRotation's estimate does);
- world: the leaf keeps its reference world rotation, R_t = P_t^T P_0 R_0
  (what ``ik.analytic`` given the reference does);
- halfway: the rotation halfway between those two;
- parent's turn: the leaf turns as its parent turned from the reference,
  R_t = R_0 Q_0^T Q_t (Q: the parent's local rotation);
- rest: the leaf's rest rotation.
"""

from __future__ import annotations

import numpy as np

import fastkin
from fastkin import data as bundled
from fastkin.learned import PoseToRotation
from fastkin.learned.p2r_data import load_clips
from fastkin.learned.p2r_train import evaluate_p2r


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geodesic angles (degrees) between stacks of rotation matrices."""
    return np.degrees(fastkin.rotations.geodesic_angle(a, b))


def _halfway(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation halfway along the geodesic from a to b."""
    step = fastkin.rotations.matrix_to_axis_angle(np.swapaxes(a, -1, -2) @ b)
    return a @ fastkin.rotations.axis_angle_to_matrix(step / 2)


def leaf_errors(clip) -> dict[str, np.ndarray]:
    """Per prior, the (T, leaves) geodesic errors of one clip."""
    parents = np.asarray(clip.skeleton.parents)
    leaves = [j for j in range(len(parents)) if not (parents == j).any()]
    local = fastkin.rotations.quat_to_matrix(clip.rotations.astype(np.float64))
    world = clip.frames.astype(np.float64)
    rest = fastkin.rotations.quat_to_matrix(np.asarray(clip.skeleton.rest_rotations, np.float64))
    priors = {}
    for j in leaves:
        p = parents[j]
        keep_local = np.broadcast_to(local[0, j], local[:, j].shape)
        keep_world = np.swapaxes(world[:, p], -1, -2) @ world[0, p] @ local[0, j]
        candidates = {
            "reference": keep_local,
            "world": keep_world,
            "halfway": _halfway(keep_local, keep_world),
            "parent's turn": local[0, j] @ np.swapaxes(local[0, p], -1, -2) @ local[:, p],
            "rest": np.broadcast_to(rest[j], local[:, j].shape),
        }
        for name, guess in candidates.items():
            priors.setdefault(name, []).append(_angles(guess, local[:, j]))
    return {name: np.stack(e, axis=1) for name, e in priors.items()}


def main() -> None:
    clips = load_clips([bundled.path("Fox.glb")])
    joints = clips[0].skeleton.num_joints
    errors = [leaf_errors(clip) for clip in clips]
    frames = np.array([len(c.rotations) for c in clips], float)
    leaves = next(iter(errors[0].values())).shape[1]
    print(
        f"Fox: {joints} joints, {leaves} leaves, {len(clips)} clips, {int(frames.sum())} frames; "
        "mean geodesic error of the leaves' local rotations (degrees), frame-weighted.\n"
    )
    names = list(errors[0])
    print("| prior | " + " | ".join(c.name for c in clips) + " | all |")
    print("|---|" + "---|" * (len(clips) + 1))
    best = None
    for name in names:
        per_clip = [float(e[name].mean()) for e in errors]
        overall = float(np.average(per_clip, weights=frames))
        best = overall if best is None else min(best, overall)
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in per_clip) + f" | {overall:.2f} |")
    # With every non-leaf joint exact, the all-joint mean is the leaves' share.
    floor = best * leaves / joints
    analytic = float(np.average([evaluate_p2r(PoseToRotation(), c)["analytic"] for c in clips], weights=frames))
    print(
        f"\nBest prior: {best:.2f} deg over the leaves, so even exact non-leaf joints give "
        f"{floor:.2f} deg over all {joints} joints: {floor / analytic:.2f}x `ik.analytic` given the same "
        f"reference ({analytic:.2f} deg)."
    )


if __name__ == "__main__":
    main()
