"""Putting a motion onto a target skeleton's joint layout.

Learned models are trained for one skeleton (its joint order, rest frames and
joint layout); the data comes from files that name, order and place the same
joints differently (CMU's ASF/AMC originals, their BVH conversions with
MotionBuilder names). :func:`conform` maps a motion onto the target's layout
joint for joint and keeps the source's bone lengths, so one model sees many
body sizes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..motion import Motion
from ..skeleton import Skeleton

__all__ = ["Conformed", "conform", "CMU_ASF_TO_BVH"]

# CMU's ASF bone names -> the names of the common 31-joint BVH conversion
# (fastkin places joints at bone starts, so these are joints too).
CMU_ASF_TO_BVH = dict(
    root="Hips", lhipjoint="LHipJoint", lfemur="LeftUpLeg", ltibia="LeftLeg", lfoot="LeftFoot", ltoes="LeftToeBase",
    rhipjoint="RHipJoint", rfemur="RightUpLeg", rtibia="RightLeg", rfoot="RightFoot", rtoes="RightToeBase",
    lowerback="LowerBack", upperback="Spine", thorax="Spine1", lowerneck="Neck", upperneck="Neck1", head="Head",
    lclavicle="LeftShoulder", lhumerus="LeftArm", lradius="LeftForeArm", lwrist="LeftHand", lhand="LeftFingerBase",
    lfingers="LFingers", lthumb="LThumb", rclavicle="RightShoulder", rhumerus="RightArm", rradius="RightForeArm",
    rwrist="RightHand", rhand="RightFingerBase", rfingers="RFingers", rthumb="RThumb",
)  # fmt: skip
CMU_ASF_TO_BVH.update({f"{asf}_end": f"{bvh}_End" for asf, bvh in list(CMU_ASF_TO_BVH.items())})

# Largest angle (degrees) between a source bone and the target's at rest: a
# larger one means the rest poses differ and local rotations do not carry over.
REST_DIRECTION_TOLERANCE = 25.0


class Conformed(NamedTuple):
    """A motion on a target skeleton's layout (see :func:`conform`).

    Example:
        >>> import fastkin
        >>> from fastkin.learned import conform
        >>> walk = fastkin.data.default_motion()
        >>> conform(walk, walk.skeleton)._fields
        ('skeleton', 'rotations', 'root_translation')
    """

    skeleton: Skeleton  # the target's parents, names and rest rotations; the source's bone lengths
    rotations: np.ndarray  # (T, J, 4) xyzw local rotations
    root_translation: np.ndarray  # (T, 3)


def conform(motion: Motion, target: Skeleton) -> Conformed:
    """Maps ``motion`` onto ``target``'s joints.

    Joints are matched by name (directly, or through CMU's ASF -> BVH names),
    or, when names do not match, by position in the hierarchy if both
    skeletons have the same parents. Both skeletons must have identity rest
    rotations and rest bones pointing the same way (within 25 degrees), so
    that local rotations mean the same thing. The conformed skeleton keeps
    the source's bone lengths along its own bones, except that a joint the
    target places on its parent (a zero offset, as CMU's BVH conversions do
    at the neck and hands) is placed there too.

    Args:
        motion: a :class:`fastkin.Motion`.
        target: the :class:`fastkin.Skeleton` whose layout to use.

    Returns:
        A :class:`Conformed` (skeleton, rotations, root_translation).

    Raises:
        ValueError: naming the joints or bones that do not correspond.

    Example:
        >>> import fastkin
        >>> from fastkin.learned import conform
        >>> walk = fastkin.data.default_motion()
        >>> same = conform(walk, walk.skeleton)
        >>> same.rotations.shape, bool((same.skeleton.offsets == walk.skeleton.offsets).all())
        ((524, 38, 4), True)
    """
    source = motion.skeleton
    order = _matching_joints(source, target)
    expected_parents = np.array([-1 if p < 0 else order[p] for p in target.parents])
    actual_parents = source.parents[order]
    wrong = np.flatnonzero(expected_parents != actual_parents)
    if wrong.size:
        j = int(wrong[0])
        raise ValueError(f"joint {target.names[j]!r}: its parent in the motion's skeleton is not the target's")
    identity = np.array([0.0, 0.0, 0.0, 1.0])
    for skeleton, what in ((source, "the motion's skeleton"), (target, "target")):
        if np.abs(np.abs(skeleton.rest_rotations @ identity) - 1).max() > 1e-9:
            raise ValueError(f"{what} has non-identity rest rotations; conform needs identity rest rotations")
    offsets = source.offsets[order].copy()
    target_length = np.linalg.norm(target.offsets, axis=1)
    placed_on_parent = (target_length == 0) & (target.parents >= 0)
    offsets[placed_on_parent] = 0.0
    _check_rest_directions(offsets, target)
    skeleton = Skeleton(target.parents, offsets, names=target.names)
    root_translation = motion.root_translation + (source.offsets[order[0]] - offsets[0])
    return Conformed(skeleton, np.ascontiguousarray(motion.rotations[:, order]), root_translation)


def _matching_joints(source: Skeleton, target: Skeleton) -> np.ndarray:
    """For each target joint, the index of the same joint in ``source``."""
    names = {CMU_ASF_TO_BVH.get(n, n): j for j, n in enumerate(source.names)}
    missing = [n for n in target.names if n not in names]
    if not missing:
        return np.array([names[n] for n in target.names])
    if source.num_joints == target.num_joints and np.array_equal(source.parents, target.parents):
        return np.arange(target.num_joints)
    raise ValueError(
        f"the motion's skeleton ({source.num_joints} joints) has no joint named {missing[0]!r} "
        f"and a different hierarchy from the target's ({target.num_joints} joints)"
    )


def _check_rest_directions(offsets: np.ndarray, target: Skeleton) -> None:
    a, b = offsets, np.asarray(target.offsets)
    length_a, length_b = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both = (length_a > 0) & (length_b > 0) & (target.parents >= 0)
    cosine = np.sum(a[both] * b[both], axis=1) / (length_a[both] * length_b[both])
    angles = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    if angles.size and angles.max() > REST_DIRECTION_TOLERANCE:
        j = int(np.flatnonzero(both)[np.argmax(angles)])
        raise ValueError(
            f"joint {target.names[j]!r}: its rest bone is {angles.max():.0f} degrees from the target's; "
            "the rest poses differ, so local rotations do not carry over"
        )
