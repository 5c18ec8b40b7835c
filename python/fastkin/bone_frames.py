"""Rest-pose bone frames: bone-aligned world rotations (the output space of
learned IK) and the exact map back to local rotations.

numpy in -> numpy out; torch in -> torch out, differentiable. The math is in
docs/bone_frames.md; the per-joint products run in the compiled kernels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from . import _core
from ._backend import is_torch
from .kinematics import _float_array, fk_batch
from .skeleton import Skeleton

__all__ = ["bone_frames", "bone_world_to_local", "local_to_bone_world"]

# A bone shorter than this fraction of the skeleton's longest bone has no
# usable direction (it is treated like a missing one).
ZERO_LENGTH = 1e-9

# Largest |AᵀA - I| accepted in user-supplied frames.
FRAME_TOLERANCE = 1e-6


def bone_frames(skeleton: Skeleton, primary_child: Any | None = None, leaf_axis: Any | None = None) -> np.ndarray:
    """Rest bone frames ``A_j``: for each joint an orthonormal, right-handed
    world frame whose first column is the joint's rest bone direction.

    The bone of joint j points from j to its *primary child*: by default the
    child with the longest rest offset (ties: the lowest index; children
    whose offset is shorter than 1e-9 of the skeleton's longest bone are
    skipped). A joint without one (a leaf) uses the direction from its parent
    to it; a root without a child, or a leaf whose own offset is zero, uses
    its rest world x axis. The frame is completed deterministically: the
    second column is the world axis least aligned with the bone (ties: x
    before y before z) made orthogonal to it (Gram-Schmidt), the third is the
    cross product of the first two.

    Args:
        skeleton: the :class:`fastkin.Skeleton`.
        primary_child: optional override of the primary-child choice: a
            length-J sequence, or a mapping for some joints, from joint
            (index or name) to one of its direct children (index or name),
            or -1 to treat the joint as a leaf.
        leaf_axis: optional ``(3,)`` or ``(J, 3)`` direction, in each joint's
            rest (local) frame, used as the bone of every joint without a
            primary child instead of the rule above; rows of joints with a
            primary child are ignored.

    Returns:
        ``(J, 3, 3)`` float64 rotation matrices ``A_j`` (columns: bone
        direction, second axis, third axis), in world coordinates.

    Example:
        >>> import fastkin
        >>> arm = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [0, 1, 0], [0, 1, 0]])
        >>> fastkin.bone_frames(arm)[0]  # the bone points along +y
        array([[ 0.,  1.,  0.],
               [ 1.,  0.,  0.],
               [ 0.,  0., -1.]])
    """
    _check_skeleton(skeleton)
    directions = _rest_bone_directions(skeleton, primary_child, leaf_axis)
    return _complete_frames(directions)


def local_to_bone_world(skeleton: Skeleton, rotations: Any, *, frames: Any | None = None) -> Any:
    """Bone-aligned world rotations ``Q_j = W_j W0_jᵀ A_j`` of a batch of
    poses: ``W_j`` is the posed world rotation of joint j (as from
    :func:`fastkin.fk_batch`), ``W0_j`` its rest world rotation and ``A_j``
    its rest bone frame. The first column of ``Q_j`` is the bone's direction
    in the pose (for a joint with a primary child: the unit vector from the
    joint to that child; for a leaf: its rest direction turned by its own
    rotation); the other two columns give the twist about it. At the rest
    pose ``Q_j = A_j``.

    Args:
        skeleton: the :class:`fastkin.Skeleton`.
        rotations: local rotations as :func:`fastkin.fk_batch` takes them,
            ``(..., J, 4)`` xyzw quaternions or ``(..., J, 3, 3)`` matrices,
            float32 or float64.
        frames: optional ``(J, 3, 3)`` rotation matrices replacing
            ``bone_frames(skeleton)`` (e.g. made with overrides); constants,
            never differentiated.

    Returns:
        ``(..., J, 3, 3)`` rotation matrices in the dtype of ``rotations``.
        numpy gives numpy; torch gives torch, differentiable with respect to
        ``rotations``.

    Example:
        >>> import numpy as np, fastkin
        >>> arm = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [0, 1, 0], [0, 1, 0]])
        >>> bend = fastkin.rotations.axis_angle_to_quat(np.array([[0, 0, 0], [0, 0, np.pi / 2], [0, 0, 0]]))
        >>> q = fastkin.local_to_bone_world(arm, bend)
        >>> q[1, :, 0].round(6)  # the forearm now points along -x
        array([-1.,  0.,  0.])
    """
    _check_skeleton(skeleton)
    if type(rotations) is not np.ndarray and is_torch(rotations):
        from ._torch_bone_frames import local_to_bone_world_torch

        return local_to_bone_world_torch(skeleton, rotations, frames)
    world_rotations, _ = fk_batch(skeleton, rotations)
    constants = frame_constants(skeleton, frames, world_rotations.dtype)
    # In place: fk_batch's output is ours, so Q needs no second buffer.
    if not _core.bone_right_multiply(world_rotations, constants, False, world_rotations):
        raise ValueError("local_to_bone_world overflowed: rotations are too large for the dtype")
    return world_rotations


def bone_world_to_local(skeleton: Skeleton, bone_rotations: Any, *, frames: Any | None = None) -> Any:
    """Local rotation matrices from bone-aligned world rotations, the exact
    inverse of :func:`local_to_bone_world`: ``W_j = Q_j A_jᵀ W0_j``, then
    ``L_j = W_parent(j)ᵀ W_j`` (roots: ``L_j = W_j``).

    Args:
        skeleton: the :class:`fastkin.Skeleton`.
        bone_rotations: ``(..., J, 3, 3)`` bone-aligned world rotations
            ``Q``, float32 or float64 (e.g. a network's output through
            :func:`fastkin.rotations.rot6d_to_matrix`). The map is linear in
            ``Q`` and does not project: rotations in give rotations out.
        frames: optional ``(J, 3, 3)`` rest bone frames; must be those used
            to make ``bone_rotations``.

    Returns:
        ``(..., J, 3, 3)`` local rotation matrices in the dtype of
        ``bone_rotations``, ready for :func:`fastkin.fk_batch`. numpy gives
        numpy; torch gives torch, differentiable with respect to
        ``bone_rotations``.

    Example:
        >>> import numpy as np, fastkin
        >>> arm = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [0, 1, 0], [0, 1, 0]])
        >>> pose = fastkin.rotations.axis_angle_to_matrix(np.random.default_rng(0).normal(size=(5, 3, 3)))
        >>> back = fastkin.bone_world_to_local(arm, fastkin.local_to_bone_world(arm, pose))
        >>> bool(np.abs(back - pose).max() < 1e-12)
        True
    """
    _check_skeleton(skeleton)
    if type(bone_rotations) is not np.ndarray and is_torch(bone_rotations):
        from ._torch_bone_frames import bone_world_to_local_torch

        return bone_world_to_local_torch(skeleton, bone_rotations, frames)
    bone_rotations = _float_array(bone_rotations, "bone_rotations", None)
    num_joints = skeleton.num_joints
    shape = bone_rotations.shape
    if len(shape) < 3 or shape[-3:] != (num_joints, 3, 3):
        raise ValueError(f"bone_rotations must have shape (..., {num_joints}, 3, 3), got {shape}")
    constants = frame_constants(skeleton, frames, bone_rotations.dtype)
    local_rotations = np.empty_like(bone_rotations)
    if not _core.bone_world_to_local(skeleton.parents, bone_rotations, constants, local_rotations):
        raise_nonfinite(bone_rotations)
    return local_rotations


# -- helpers shared with the torch front door ----------------------------------------------------


def frame_constants(skeleton: Skeleton, frames: Any | None, dtype: Any) -> np.ndarray:
    """``C_j = W0_jᵀ A_j`` as a C-contiguous ``(J, 3, 3)`` array of ``dtype``
    (cached for the default frames): ``Q_j = W_j C_j`` and ``W_j = Q_j C_jᵀ``."""
    dtype = np.dtype(dtype)
    if frames is not None:
        constants = _rest_world_rotations(skeleton).transpose(0, 2, 1) @ _checked_frames(frames, skeleton.num_joints)
        return np.ascontiguousarray(constants, dtype=dtype)
    # The skeleton's per-dtype cache (it also holds its torch tensors).
    key = ("bone_frame_constants", dtype.name)  # a plain-string key: torch.compile guards on this dict
    constants = skeleton._torch_cache.get(key)
    if constants is None:
        constants = frame_constants(skeleton, bone_frames(skeleton), dtype)
        constants.setflags(write=False)
        skeleton._torch_cache[key] = constants
    return constants


def raise_nonfinite(bone_rotations: Any) -> None:
    """The ValueError for a non-finite bone_world_to_local result (numpy or torch)."""
    if not bool((abs(bone_rotations) < float("inf")).all()):  # False for NaN too
        raise ValueError("bone_rotations must be finite (it holds NaN or infinity)")
    raise ValueError("bone_world_to_local overflowed: bone_rotations are too large for the dtype")


def _check_skeleton(skeleton: Any) -> None:
    if not isinstance(skeleton, Skeleton):
        raise TypeError(f"skeleton must be a fastkin.Skeleton, got {type(skeleton).__name__}")


def _rest_world_rotations(skeleton: Skeleton) -> np.ndarray:
    """``(J, 3, 3)`` float64 world rotations ``W0`` of the rest pose (cached)."""
    key = ("rest_world_rotations",)
    rest = skeleton._torch_cache.get(key)
    if rest is None:
        rest = fk_batch(skeleton, skeleton.rest_rotations)[0]
        rest.setflags(write=False)
        skeleton._torch_cache[key] = rest
    return rest


def _rest_bone_directions(skeleton: Skeleton, primary_child: Any, leaf_axis: Any) -> np.ndarray:
    """``(J, 3)`` unit world directions of the rest bones (the rule of bone_frames)."""
    parents, offsets = skeleton.parents, skeleton.offsets
    rest = _rest_world_rotations(skeleton)
    lengths = np.linalg.norm(offsets, axis=1)
    bones = lengths[parents >= 0]
    short = lengths <= ZERO_LENGTH * (bones.max() if bones.size else 0.0)
    children = _primary_children(skeleton, primary_child, lengths, short)
    has_child = children >= 0
    # Joint to its primary child, in world: W0_j o_c.
    to_child = np.einsum("jab,jb->ja", rest, offsets[np.maximum(children, 0)])
    if leaf_axis is None:
        # Parent to joint (W0_p o_j) where there is a usable one, else the joint's rest x axis.
        from_parent = np.einsum("jab,jb->ja", rest[np.maximum(parents, 0)], offsets)
        usable = ((parents >= 0) & ~short)[:, None]
        fallback = np.where(usable, from_parent, rest[:, :, 0])
    else:
        axes = _checked_leaf_axis(leaf_axis, skeleton.num_joints, ~has_child)
        fallback = np.einsum("jab,jb->ja", rest, axes)
    directions = np.where(has_child[:, None], to_child, fallback)
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


def _primary_children(skeleton: Skeleton, primary_child: Any, lengths: np.ndarray, short: np.ndarray) -> np.ndarray:
    """``(J,)`` primary child of each joint, -1 for none."""
    parents = skeleton.parents
    chosen = np.full(skeleton.num_joints, -1)
    for c, p in enumerate(parents):  # ascending, and only a longer child replaces: ties keep the lowest index
        if p >= 0 and not short[c] and (chosen[p] < 0 or lengths[c] > lengths[chosen[p]]):
            chosen[p] = c
    if primary_child is None:
        return chosen
    items: Iterable[tuple[Any, Any]]
    if isinstance(primary_child, Mapping):
        items = primary_child.items()
    elif isinstance(primary_child, (Sequence, np.ndarray)) and not isinstance(primary_child, (str, bytes)):
        if len(primary_child) != skeleton.num_joints:
            raise ValueError(
                f"primary_child must have one entry per joint ({skeleton.num_joints}), got {len(primary_child)}"
            )
        items = enumerate(primary_child)
    else:
        raise TypeError(f"primary_child must be a mapping or a sequence, got {type(primary_child).__name__}")
    for joint, child in items:
        j = skeleton._joint_index(joint, "primary_child")
        if isinstance(child, (int, np.integer)) and not isinstance(child, bool) and child == -1:
            chosen[j] = -1
            continue
        c = skeleton._joint_index(child, "primary_child")
        if parents[c] != j:
            raise ValueError(
                f"primary_child: joint {c} ({skeleton.names[c]}) is not a child of joint {j} "
                f"({skeleton.names[j]}), whose children are {skeleton.children(j)}"
            )
        if short[c]:
            raise ValueError(f"primary_child: the bone from joint {j} to joint {c} has zero length")
        chosen[j] = c
    return chosen


def _checked_leaf_axis(leaf_axis: Any, num_joints: int, used: np.ndarray) -> np.ndarray:
    """leaf_axis as ``(J, 3)`` float64; the rows in ``used`` must be nonzero."""
    axes = np.asarray(leaf_axis)
    if axes.dtype.kind not in "iuf":
        raise TypeError(f"leaf_axis must be a real numeric array, got dtype {axes.dtype}")
    axes = axes.astype(np.float64)
    if axes.shape == (3,):
        axes = np.broadcast_to(axes, (num_joints, 3))
    elif axes.shape != (num_joints, 3):
        raise ValueError(f"leaf_axis must have shape (3,) or ({num_joints}, 3), got {axes.shape}")
    if not np.all(np.isfinite(axes)):
        raise ValueError("leaf_axis must be finite")
    zero = used & (np.linalg.norm(axes, axis=1) == 0.0)
    if zero.any():
        raise ValueError(f"leaf_axis is a zero vector for joint {int(np.flatnonzero(zero)[0])}, which needs it")
    return axes


def _complete_frames(directions: np.ndarray) -> np.ndarray:
    """Right-handed orthonormal frames with the given unit first columns."""
    least_aligned = np.argmin(np.abs(directions), axis=1)  # first index on ties
    helper = np.eye(3)[least_aligned]
    second = helper - np.sum(helper * directions, axis=1, keepdims=True) * directions
    second /= np.linalg.norm(second, axis=1, keepdims=True)  # >= sqrt(2/3) before
    third = np.cross(directions, second)
    return np.stack([directions, second, third], axis=-1)


def _checked_frames(frames: Any, num_joints: int) -> np.ndarray:
    """User frames as ``(J, 3, 3)`` float64 rotation matrices."""
    if is_torch(frames):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.dtype.kind not in "iuf":
        raise TypeError(f"frames must be a real numeric array, got dtype {frames.dtype}")
    frames = frames.astype(np.float64)
    if frames.shape != (num_joints, 3, 3):
        raise ValueError(f"frames must have shape ({num_joints}, 3, 3), got {frames.shape}")
    if not np.all(np.isfinite(frames)):
        raise ValueError("frames must be finite")
    error = np.abs(frames.transpose(0, 2, 1) @ frames - np.eye(3)).max(axis=(1, 2))
    bad = np.flatnonzero((error > FRAME_TOLERANCE) | (np.linalg.det(frames) < 0))
    if bad.size:
        raise ValueError(f"frames[{int(bad[0])}] is not a rotation matrix (orthonormal, determinant +1)")
    return frames
