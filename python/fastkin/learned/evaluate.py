"""Rotation and position errors of IK results against real motion."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kinematics import fk_batch
from ..rotations import geodesic_angle, quat_to_matrix
from ..skeleton import Skeleton

__all__ = ["rotation_errors", "twist_errors", "leaves", "mpjpe"]


def leaves(skeleton: Skeleton) -> np.ndarray:
    """``(J,)`` True for joints without children (their rotation moves no
    joint, so positions say nothing about it).

    Example:
        >>> import fastkin
        >>> from fastkin.learned import leaves
        >>> int(leaves(fastkin.data.default_motion().skeleton).sum())
        7
    """
    has_child = np.zeros(skeleton.num_joints, bool)
    has_child[skeleton.parents[skeleton.parents >= 0]] = True
    return ~has_child


def rotation_errors(predicted: Any, truth: Any) -> np.ndarray:
    """``(..., J)`` geodesic angle in degrees between predicted and true
    local rotations (xyzw quaternions or matrices).

    Example:
        >>> import numpy as np
        >>> from fastkin.learned import rotation_errors
        >>> quarter = np.array([[0, 0, np.sin(np.pi / 8), np.cos(np.pi / 8)]])
        >>> rotation_errors(quarter, np.array([[0.0, 0, 0, 1]])).round(6)
        array([45.])
    """
    return np.degrees(geodesic_angle(_matrices(predicted), _matrices(truth)))


def twist_errors(skeleton: Skeleton, predicted: Any, truth: Any) -> np.ndarray:
    """``(..., J)`` the twist part of the error, in degrees: the angle about
    each joint's posed bone (its longest child, as in
    :func:`fastkin.bone_frames`) of the rotation from the true to the
    predicted world frame, after the bone directions are aligned. Leaves and
    joints without a usable bone give NaN.

    Example:
        >>> import numpy as np, fastkin
        >>> from fastkin.learned import twist_errors
        >>> arm = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [1, 0, 0], [1, 0, 0]])
        >>> twist = fastkin.rotations.axis_angle_to_quat(np.array([[0, 0, 0], [0.5, 0, 0], [0, 0, 0]]))
        >>> rest = arm.rest_rotations
        >>> twist_errors(arm, twist, rest).round(4)  # 0.5 rad about the forearm
        array([ 0.    , 28.6479,     nan])
    """
    from ..bone_frames import local_to_bone_world

    q_pred = local_to_bone_world(skeleton, _matrices(predicted))
    q_true = local_to_bone_world(skeleton, _matrices(truth))
    # Swing the predicted frame so its bone (column 0) meets the true one; what remains is twist about it.
    a, b = q_pred[..., :, 0], q_true[..., :, 0]
    second = _rotate_onto(a, b, q_pred[..., :, 1])
    cos = np.sum(second * q_true[..., :, 1], axis=-1)
    sin = np.sum(np.cross(q_true[..., :, 1], second) * b, axis=-1)
    angle = np.abs(np.degrees(np.arctan2(sin, cos)))
    usable = ~leaves(skeleton) & (np.linalg.norm(_children_offsets(skeleton), axis=1) > 0)
    return np.where(usable, angle, np.nan)


def mpjpe(skeleton: Skeleton, rotations: Any, root_translation: Any, positions: Any) -> float:
    """Mean distance between the joints of FK of ``rotations`` and ``positions``.

    Example:
        >>> import fastkin
        >>> from fastkin.learned import mpjpe
        >>> walk = fastkin.data.default_motion()[:3]
        >>> mpjpe(walk.skeleton, walk.rotations, walk.root_translation, walk.positions()) < 1e-12
        True
    """
    posed = fk_batch(skeleton, np.asarray(rotations, np.float64), np.asarray(root_translation, np.float64))[1]
    return float(np.linalg.norm(posed - positions, axis=-1).mean())


def _children_offsets(skeleton: Skeleton) -> np.ndarray:
    longest = np.zeros((skeleton.num_joints, 3))
    for j, p in enumerate(skeleton.parents):
        if p >= 0 and np.linalg.norm(skeleton.offsets[j]) > np.linalg.norm(longest[p]):
            longest[p] = skeleton.offsets[j]
    return longest


def _rotate_onto(a: np.ndarray, b: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``v`` turned by the smallest rotation taking unit ``a`` to unit ``b``."""
    axis = np.cross(a, b)
    cos = np.sum(a * b, axis=-1, keepdims=True)
    # Rodrigues with sin folded into |axis|: v' = v cos + axis x v + axis (axis . v) / (1 + cos).
    return v * cos + np.cross(axis, v) + axis * np.sum(axis * v, axis=-1, keepdims=True) / np.maximum(1 + cos, 1e-12)


def _matrices(rotations: Any) -> np.ndarray:
    r = np.asarray(rotations, dtype=np.float64)
    return quat_to_matrix(r) if r.shape[-1] == 4 else r
