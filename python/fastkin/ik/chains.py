"""Positional IK for limbs and chains: analytic two-bone IK
(:func:`two_bone`, and :func:`two_bone_skeleton` on a posed skeleton) and
FABRIK on chains and multi-end-effector trees (:func:`fabrik`).

numpy in -> numpy out. torch in -> torch out, of the input's dtype and on its
device, computed by the same compiled kernels on CPU copies: the results are
**not differentiable** (they carry no autograd graph). The rules are in
docs/ik.md, "Two-bone and FABRIK".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import _core
from .._backend import is_torch
from ..kinematics import fk_batch
from ..skeleton import Skeleton, _validated_parents

__all__ = ["two_bone", "two_bone_skeleton", "fabrik"]

# fabrik's default tolerance, as a fraction of each frame's reach (the summed
# length of the bones that lead to a target).
DEFAULT_RELATIVE_TOL = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-5}


def two_bone(
    root: Any,
    mid: Any,
    end: Any,
    target: Any,
    pole: Any | None = None,
    *,
    return_rotations: bool = False,
) -> tuple[Any, ...]:
    """Analytic two-bone (limb) IK on joint positions: where the mid joint
    (knee, elbow) and the end joint (ankle, wrist) go so that the end reaches
    ``target`` while the root (hip, shoulder) stays and both bone lengths are
    kept exactly.

    With ``l1 = |mid - root|``, ``l2 = |end - mid|`` and
    ``d = |target - root|``: when ``|l1 - l2| <= d <= l1 + l2`` the end is
    put on the target. Otherwise no pose reaches it and the closest one is
    returned: the end on the ray from the root towards the target at
    distance ``l1 + l2`` (fully stretched) or ``|l1 - l2|`` (fully folded).

    The limb bends in a plane through the root and the target. With a
    ``pole`` (a point, e.g. in front of the knee) the mid joint goes to the
    pole's side of the root-target line, in the plane that contains the
    pole. Without one, the current bend plane is kept: the new plane is the
    one through the root-target line closest to the current plane (its
    normal is the current normal, ``(mid - root) x (end - root)``, made
    perpendicular to the line), and the mid stays on its current side.
    Degenerate cases have deterministic answers and never give NaN: a pole
    on the root-target line is ignored; a straight limb without a pole bends
    towards the current mid's side of the line, else the current end's
    side, else the world axis least aligned with the line; a target on the
    root is approached along the current root-to-end direction.

    Args:
        root, mid, end: current joint positions ``(..., 3)``.
        target: ``(..., 3)`` where the end should go.
        pole: optional ``(..., 3)`` point the mid joint should bend towards.
        return_rotations: also return the two world rotation deltas.

    All arrays are float32 or float64 (one dtype; lists are converted) and
    their batch shapes broadcast together.

    Returns:
        ``(new_mid, new_end)``, each ``(..., 3)``; with ``return_rotations``
        also ``(upper_rotation, lower_rotation)``, each ``(..., 3, 3)``:
        world rotations that take the old upper bone ``mid - root`` to the new
        one and the old lower bone ``end - mid`` to the new one, and both
        take the old bend-plane normal to the new one (for a straight old limb
        the new normal stands in for the old). Left-multiply the world
        rotations of the root and mid joints by them to pose a skeleton
        (:func:`two_bone_skeleton` does this); the knee's local change
        ``upper_rotationᵀ @ lower_rotation`` is then a rotation about the old
        bend normal, a hinge. torch tensors in give tensors out, not
        differentiable.

    Example:
        >>> import fastkin
        >>> hip, knee, ankle = [0.0, 0, 0], [0.0, -1, 0], [0.0, -2, 0]
        >>> new_knee, new_ankle = fastkin.ik.two_bone(hip, knee, ankle, [0.0, -1.2, 0], pole=[0.0, -1, 1])
        >>> new_knee.round(6), new_ankle.round(6)
        (array([ 0. , -0.6,  0.8]), array([ 0. , -1.2,  0. ]))
    """
    named = {"root": root, "mid": mid, "end": end, "target": target, "pole": pole}
    arrays, like = _float_inputs(named)
    for name, array in arrays.items():
        if array is not None and (array.ndim < 1 or array.shape[-1] != 3):
            raise ValueError(f"{name} must have shape (..., 3), got {array.shape}")
    given = {name: a for name, a in arrays.items() if a is not None}
    batch = _broadcast_batch({name: a.shape[:-1] for name, a in given.items()})
    frames = math.prod(batch)
    flat = {name: _per_frame(a, batch, frames, 1) for name, a in given.items()}
    dtype = given["root"].dtype
    new_mid = np.empty(batch + (3,), dtype)
    new_end = np.empty(batch + (3,), dtype)
    upper = lower = None
    if return_rotations:
        upper = np.empty(batch + (3, 3), dtype)
        lower = np.empty(batch + (3, 3), dtype)
    finite = _core.two_bone_ik(
        flat["root"],
        flat["mid"],
        flat["end"],
        flat["target"],
        flat.get("pole"),
        new_mid.reshape(frames, 3),
        new_end.reshape(frames, 3),
        None if upper is None else upper.reshape(frames, 3, 3),
        None if lower is None else lower.reshape(frames, 3, 3),
    )
    if not finite:
        _raise_nonfinite(given, "two_bone overflowed: the positions are too large for the dtype")
    outputs = (new_mid, new_end) if upper is None or lower is None else (new_mid, new_end, upper, lower)
    return _like(outputs, like)


def two_bone_skeleton(
    skeleton: Skeleton,
    rotations: Any,
    joints: tuple[Any, Any, Any],
    target: Any,
    pole: Any | None = None,
    *,
    root_translation: Any | None = None,
) -> Any:
    """Two-bone IK on a posed skeleton: new local rotations of the limb's
    root and mid joints so that its end joint reaches ``target``
    (:func:`two_bone` on the fk positions, then its rotation deltas applied).

    The root joint's world rotation is left-multiplied by the upper rotation
    delta and the mid joint's by the lower one; every other local rotation is
    unchanged, so the end joint (and everything below it) turns with the
    lower bone, and joints between root and mid, or mid and end (twist
    bones), keep their local rotations.

    Args:
        skeleton: the :class:`fastkin.Skeleton`.
        rotations: local rotations as :func:`fastkin.fk_batch` takes them,
            ``(..., J, 4)`` xyzw quaternions or ``(..., J, 3, 3)`` matrices.
        joints: ``(root, mid, end)`` joint indices or names, e.g.
            ``("hip", "knee", "ankle")``; each an ancestor of the next.
        target, pole: ``(..., 3)`` as in :func:`two_bone` (world frame).
        root_translation: optional ``(..., 3)`` as in :func:`fastkin.fk_batch`.

    Returns:
        New local rotations in the form of ``rotations`` (quaternions or
        matrices), with the batch shape of the inputs broadcast together.
        torch tensors in give tensors out, not differentiable.

    Example:
        >>> import numpy as np, fastkin
        >>> leg = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [0, -1, 0], [0, -1, 0]], names=["hip", "knee", "ankle"])
        >>> posed = fastkin.ik.two_bone_skeleton(leg, leg.rest_pose(), ("hip", "knee", "ankle"), [0.0, -1.2, 0],
        ...                                      pole=[0.0, -1, 1])
        >>> fastkin.fk_batch(leg, posed)[1].round(6) + 0.0  # (+ 0.0 turns -0. into 0.)
        array([[ 0. ,  0. ,  0. ],
               [ 0. , -0.6,  0.8],
               [ 0. , -1.2,  0. ]])
    """
    if not isinstance(skeleton, Skeleton):
        raise TypeError(f"skeleton must be a fastkin.Skeleton, got {type(skeleton).__name__}")
    if not isinstance(joints, (tuple, list)) or len(joints) != 3:
        raise ValueError("joints must be (root, mid, end): three joint indices or names")
    hip, knee, ankle = (skeleton._joint_index(j, "joints") for j in joints)
    for upper_joint, lower_joint in ((hip, knee), (knee, ankle)):
        if not _is_ancestor(skeleton.parents, upper_joint, lower_joint):
            raise ValueError(
                f"joints: joint {upper_joint} ({skeleton.names[upper_joint]}) is not an ancestor of joint "
                f"{lower_joint} ({skeleton.names[lower_joint]})"
            )
    arrays, like = _float_inputs(
        {"rotations": rotations, "target": target, "pole": pole, "root_translation": root_translation}
    )
    rotations = arrays["rotations"]
    world_rotations, world_positions = fk_batch(skeleton, rotations, arrays["root_translation"])
    new = two_bone(
        world_positions[..., hip, :],
        world_positions[..., knee, :],
        world_positions[..., ankle, :],
        arrays["target"],
        arrays["pole"],
        return_rotations=True,
    )
    upper, lower = new[2], new[3]
    batch = upper.shape[:-2]
    world_hip = upper @ world_rotations[..., hip, :, :]
    parent = skeleton.parents[hip]
    local_hip = world_hip if parent < 0 else np.swapaxes(world_rotations[..., parent, :, :], -1, -2) @ world_hip
    knee_parent = world_rotations[..., skeleton.parents[knee], :, :]
    local_knee = np.swapaxes(upper @ knee_parent, -1, -2) @ (lower @ world_rotations[..., knee, :, :])
    quaternions = rotations.shape[-1] == 4
    trailing = rotations.shape[-1:] if quaternions else rotations.shape[-2:]
    result = np.array(np.broadcast_to(rotations, batch + rotations.shape[-len(trailing) - 1 :]))
    if quaternions:
        from ..rotations import matrix_to_quat

        local_hip, local_knee = matrix_to_quat(local_hip), matrix_to_quat(local_knee)
    rows = (slice(None),) * len(trailing)
    result[(Ellipsis, hip) + rows] = local_hip
    result[(Ellipsis, knee) + rows] = local_knee
    return _like((result,), like)[0]


def fabrik(
    positions: Any,
    parents: Any,
    targets: Any,
    *,
    target_joints: Any,
    max_iters: int = 100,
    tol: float | None = None,
    fixed_root: bool = True,
) -> tuple[Any, Any, Any]:
    """FABRIK (forward and backward reaching IK) on joint positions, for
    chains and trees with several end effectors, with every bone length
    ``|p_j - p_parent(j)|`` of the input kept.

    Each pass goes backward, from the end effectors in: an end effector goes
    to its target, and its parent to the point at the bone's length from it
    on the line to the parent's current position; a joint where branches
    meet (a sub-base) takes the centroid of its children's proposals (and of
    its own target, if it has one). Then forward, from the roots out: a root
    stays where it was (``fixed_root``) or goes to its backward position, and
    every joint goes to the point at its bone's length from its (already
    placed) parent on the line to its backward position. Only joints that
    lead to a target take part. The others (branches without a target, the
    fingers below a targeted wrist) move rigidly with their nearest ancestor
    that takes part, turned by the smallest rotation that takes that
    ancestor's bone from its old direction to its new one.

    With one end effector and a fixed root, a target at or beyond the
    chain's reach (the sum of its bone lengths) stretches the chain straight
    from the root towards it in one pass (iterations = 1): the closest pose.

    Args:
        positions: ``(..., J, 3)`` joint positions: the starting pose, which
            also defines the bone lengths.
        parents: ``(J,)`` parent indices in topological order
            (``parents[j] < j``, roots -1), or a :class:`fastkin.Skeleton`
            (its ``parents``; then ``target_joints`` may use names).
        targets: ``(..., T, 3)`` target positions, one per end effector.
        target_joints: ``(T,)`` distinct joints (indices or names) that
            should reach ``targets``; any joints, not only leaves.
        max_iters: most passes per frame (>= 1).
        tol: a frame has converged when every end effector is within ``tol``
            (units of the positions, > 0) of its target. Default:
            ``1e-6 * reach`` for float64 and ``1e-5 * reach`` for float32,
            where reach is the frame's summed length of the bones that lead
            to a target.
        fixed_root: roots keep their positions (else they move too).

    positions and targets are float32 or float64 (one dtype; lists are
    converted); their batch shapes broadcast together (e.g. one starting pose
    and many targets).

    Returns:
        ``(positions, iterations, converged)``: new positions ``(..., J, 3)``,
        the passes each frame used ``(...)`` int32 (0 when the start already
        met ``tol``), and ``(...)`` bool: True when every end effector ended
        within ``tol`` of its target. A frame stops at convergence, after
        ``max_iters`` passes, or at its second stall, a pass that moves no
        joint by more than ``tol / 1000`` (at the first, the bones that take
        part are bent a little, deterministically, so that a straight chain
        on the line through its target can leave it). Unreachable targets
        never converge: the result is then the pose FABRIK settles in, the
        straight chain for a single effector out of reach, a compromise
        between the branches for several. torch tensors in give tensors out
        (``iterations`` int32, ``converged`` bool), not differentiable.

    Example:
        >>> import numpy as np, fastkin
        >>> arm = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]])
        >>> solved, iterations, converged = fastkin.ik.fabrik(arm, [-1, 0, 1, 2], [[1.0, 2, 0]], target_joints=[3])
        >>> bool(converged), bool(np.linalg.norm(solved[3] - [1, 2, 0]) < 3e-6)
        (True, True)
        >>> np.linalg.norm(np.diff(solved, axis=0), axis=1).round(9)  # bone lengths kept
        array([1., 1., 1.])
    """
    skeleton = parents if isinstance(parents, Skeleton) else None
    parents = skeleton.parents if skeleton is not None else _validated_parents(parents)
    num_joints = len(parents)
    joint_indices = _target_joint_indices(target_joints, num_joints, skeleton)
    num_targets = len(joint_indices)
    if isinstance(max_iters, bool) or not isinstance(max_iters, (int, np.integer)):
        raise TypeError(f"max_iters must be an int, got {type(max_iters).__name__}")
    if not 1 <= max_iters <= np.iinfo(np.int32).max:
        raise ValueError(f"max_iters must be >= 1, got {max_iters}")
    if not isinstance(fixed_root, (bool, np.bool_)):
        raise TypeError(f"fixed_root must be a bool, got {type(fixed_root).__name__}")
    arrays, like = _float_inputs({"positions": positions, "targets": targets})
    positions, targets = arrays["positions"], arrays["targets"]
    if positions.ndim < 2 or positions.shape[-2:] != (num_joints, 3):
        raise ValueError(f"positions must have shape (..., {num_joints}, 3), got {positions.shape}")
    if targets.ndim < 2 or targets.shape[-2:] != (num_targets, 3):
        raise ValueError(
            f"targets must have shape (..., {num_targets}, 3) for {num_targets} target_joints, got {targets.shape}"
        )
    dtype = positions.dtype
    if tol is None:
        absolute, relative = 0.0, DEFAULT_RELATIVE_TOL[dtype]
    else:
        if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)):
            raise TypeError(f"tol must be a number, got {type(tol).__name__}")
        if not (math.isfinite(tol) and tol > 0):
            raise ValueError(f"tol must be finite and > 0, got {tol}")
        absolute, relative = float(tol), 0.0
    batch = _broadcast_batch({"positions": positions.shape[:-2], "targets": targets.shape[:-2]})
    frames = math.prod(batch)
    solved = np.empty(batch + (num_joints, 3), dtype)
    iterations = np.empty(batch, np.int32)
    converged = np.empty(batch, np.bool_)
    finite = _core.fabrik(
        parents,
        joint_indices,
        _per_frame(positions, batch, frames, 2),
        _per_frame(targets, batch, frames, 2),
        int(max_iters),
        absolute,
        relative,
        bool(fixed_root),
        solved.reshape(frames, num_joints, 3),
        iterations.reshape(frames),
        converged.reshape(frames),
    )
    if not finite:
        _raise_nonfinite(arrays, "fabrik overflowed: the positions or targets are too large for the dtype")
    return _like((solved, iterations, converged), like)


# -- private helpers ------------------------------------------------------------------------------


def _float_inputs(named: dict[str, Any]) -> tuple[dict[str, np.ndarray | None], Any]:
    """The values of ``named`` as float32/float64 numpy arrays of one dtype
    (None stays None), and the first torch tensor among them (None if there
    is none). The dtype is that of the first array or tensor; lists and
    scalars are converted to it; an array or tensor of another dtype is a
    TypeError naming it. Finiteness is left to the kernels, which report it
    (then :func:`_raise_nonfinite` names the argument)."""
    like = next((v for v in named.values() if is_torch(v)), None)
    dtype = None
    reference = None
    arrays: dict[str, np.ndarray | None] = {}
    for name, value in named.items():
        if value is None:
            arrays[name] = None
            continue
        if is_torch(value):
            if not value.is_floating_point() or value.element_size() not in (4, 8) or value.is_complex():
                raise TypeError(f"{name} must be float32 or float64, got {value.dtype}")
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            if value.dtype.char not in "fd":
                raise TypeError(f"{name} must be float32 or float64, got dtype {value.dtype}")
            if dtype is None:
                dtype, reference = value.dtype, name
            elif value.dtype != dtype:
                raise TypeError(f"{name} has dtype {value.dtype} but {reference} is {dtype}: pass matching dtypes")
        arrays[name] = value
    dtype = dtype or np.dtype(np.float64)
    for name, value in arrays.items():
        if value is None:
            continue
        if not isinstance(value, np.ndarray):
            try:
                value = np.asarray(value, dtype=dtype)
            except (TypeError, ValueError):
                raise TypeError(f"{name} must be a float32 or float64 array, got {type(value).__name__}") from None
        arrays[name] = value
    return arrays, like


def _raise_nonfinite(arrays: Mapping[str, np.ndarray | None], overflow: str) -> None:
    """The ValueError for a kernel that reported a non-finite value: the
    first argument holding NaN or infinity, else ``overflow``."""
    for name, value in arrays.items():
        if value is not None and not np.isfinite(value).all():
            raise ValueError(f"{name} must be finite (it holds NaN or infinity)")
    raise ValueError(overflow)


def _broadcast_batch(shapes: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    first, *others = shapes.values()
    if all(shape == first for shape in others):  # the common case, without numpy's overhead
        return tuple(first)
    try:
        return tuple(np.broadcast_shapes(*shapes.values()))
    except ValueError:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"the batch shapes do not broadcast together: {listed}") from None


def _per_frame(array: np.ndarray, batch: tuple[int, ...], frames: int, trailing: int) -> np.ndarray:
    """``array`` for the kernels: C-contiguous ``(frames, *item)``, or the
    bare item when it has no batch dimensions (shared by every frame, no
    copy)."""
    item = array.shape[array.ndim - trailing :]
    if array.ndim == trailing:
        return np.ascontiguousarray(array)
    if array.shape[:-trailing] != batch:
        array = np.broadcast_to(array, batch + item)
    return np.ascontiguousarray(array).reshape((frames,) + item)


def _like(outputs: tuple[np.ndarray, ...], like: Any) -> tuple[Any, ...]:
    """numpy outputs as tensors on ``like``'s device (floats in its dtype),
    or unchanged when ``like`` is None."""
    if like is None:
        return outputs
    import torch

    return tuple(torch.from_numpy(np.ascontiguousarray(o)).to(like.device) for o in outputs)


def _target_joint_indices(target_joints: Any, num_joints: int, skeleton: Skeleton | None) -> np.ndarray:
    """target_joints as a C-contiguous int32 array of distinct joint indices."""
    if is_torch(target_joints):
        target_joints = target_joints.detach().cpu().numpy()
    if isinstance(target_joints, (str, bytes)) or np.ndim(target_joints) != 1:
        raise ValueError("target_joints must be a 1-D sequence of joint indices" + (" or names" if skeleton else ""))
    indices = []
    for i, joint in enumerate(target_joints):
        if isinstance(joint, str) and skeleton is not None:
            indices.append(skeleton.index(joint))
        elif isinstance(joint, (int, np.integer)) and not isinstance(joint, (bool, np.bool_)):
            if not 0 <= joint < num_joints:
                raise ValueError(f"target_joints[{i}] = {joint} is not a joint index in [0, {num_joints})")
            indices.append(int(joint))
        else:
            kind = "an int index or a str name" if skeleton is not None else "an int index"
            raise TypeError(f"target_joints[{i}] must be {kind}, got {type(joint).__name__}")
    if not indices:
        raise ValueError("target_joints must name at least one joint")
    if len(set(indices)) != len(indices):
        repeated = next(j for j in indices if indices.count(j) > 1)
        raise ValueError(f"target_joints must be distinct; joint {repeated} appears twice")
    return np.array(indices, np.int32)


def _is_ancestor(parents: np.ndarray, ancestor: int, joint: int) -> bool:
    j = int(parents[joint])
    while j >= 0:
        if j == ancestor:
            return True
        j = int(parents[j])
    return False
