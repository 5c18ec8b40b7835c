"""Levenberg-Marquardt IK over batches of frames: ``fastkin.ik.solve`` and
``fastkin.ik.solve_sequence`` (C++ solver in ``cpp/src/ik_solve.cpp``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .. import _core
from .._backend import is_torch, read_only
from ..rotations import quat_to_matrix
from ..skeleton import Skeleton

__all__ = ["IKResult", "solve", "solve_sequence"]


class IKResult(NamedTuple):
    """What :func:`solve` found for each frame (a named tuple).

    Attributes:
        rotations: ``(..., J, 4)`` local xyzw quaternions (pass them to
            :func:`fastkin.fk_batch` with ``root_translation``).
        root_translation: ``(..., 3)``.
        error: ``(...)`` largest distance of a target joint from its target
            (skeleton units).
        iterations: ``(...)`` Levenberg-Marquardt iterations taken.
        converged: ``(...)`` True when every target joint is within ``tol``
            or the solver reached a stationary point (targets out of reach,
            or noisy: then ``error`` says how close it got). False: it ran out
            of iterations or could not make progress; the frame holds the
            best pose found.

    Example:
        >>> import numpy as np, fastkin
        >>> arm = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [1, 0, 0], [1, 0, 0]])
        >>> result = fastkin.ik.solve(arm, [[0, 0, 0], [0, 1, 0], [-1, 1, 0]])
        >>> bool(result.converged), float(result.error) < 1e-9
        (True, True)
    """

    rotations: Any
    root_translation: Any
    error: Any
    iterations: Any
    converged: Any


def solve(
    skeleton: Skeleton,
    targets: Any,
    *,
    joints: Any | None = None,
    weights: Any | None = None,
    orientation_targets: Any | None = None,
    orientation_weight: float = 1.0,
    init: Any | None = None,
    init_root: Any | None = None,
    fixed_root: bool = False,
    regularization: float = 0.0,
    joint_limits: Any | None = None,
    max_iters: int = 100,
    tol: float | None = None,
    robust: float | None = None,
) -> IKResult:
    """Local rotations (and root translation) that put joints at target
    positions, frame by frame, by damped least squares (Levenberg-Marquardt)
    with analytic Jacobians on the rotation manifold.

    Args:
        skeleton: the :class:`fastkin.Skeleton`.
        targets: ``(..., T, 3)`` target positions of ``joints`` (``(..., J, 3)``
            when ``joints`` is None: every joint). float32 or float64; every
            frame of the leading shape is solved (in parallel over threads).
        joints: ``(T,)`` joint indices or names that have targets.
        weights: ``(T,)`` per-target weights (>= 0; default 1).
        orientation_targets: optional ``(..., T, 3, 3)`` world rotations (or
            ``(..., T, 4)`` xyzw quaternions) for the same joints, weighted by
            ``orientation_weight`` relative to positions (one radian counts as
            one unit of length).
        init: start pose, ``(..., J, 4)`` quaternions or ``(..., J, 3, 3)``
            matrices, or ``(J, ...)`` for every frame; default the rest pose.
        init_root: ``(..., 3)`` or ``(3,)`` start root translation; default:
            the first root's target minus its offset when that root has a
            target, else zero.
        fixed_root: keep the root translation at ``init_root``.
        regularization: weight of the pull of each local rotation towards
            ``init``: ``½ λ s² |log(init_jᵀ R_j)|²`` with s the skeleton's
            size, so λ is unit-free (a radian of rotation costs as much as
            ``sqrt(λ)`` of the size in position); 0 by default.
        joint_limits: optional ``(J, 3, 2)`` [min, max] box on each joint's
            rotation vector relative to its rest rotation (radians, in the
            joint's rest frame); steps are projected into it.
        max_iters: iteration limit per frame (>= 1).
        tol: a frame is done when every target joint is within ``tol``
            (skeleton units; default ``1e-9`` of the skeleton's size for
            float64, ``1e-5`` for float32).
        robust: optional Huber threshold (skeleton units): target residuals
            beyond it count linearly, so outliers in noisy keypoints pull less.

    Returns:
        An :class:`IKResult`; numpy arrays, or tensors for torch input (the
        solver is not differentiable: use :func:`fastkin.fk_batch` in a torch
        loss for that).

    Example:
        >>> import numpy as np, fastkin
        >>> arm = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [1, 0, 0], [1, 0, 0]])
        >>> result = fastkin.ik.solve(arm, [[1.0, 1.0, 0.0]], joints=[2], fixed_root=True)
        >>> fastkin.fk_batch(arm, result.rotations)[1][2].round(6)
        array([1., 1., 0.])
    """
    return _solve(
        skeleton,
        targets,
        joints,
        weights,
        orientation_targets,
        orientation_weight,
        init,
        init_root,
        fixed_root,
        regularization,
        joint_limits,
        max_iters,
        tol,
        robust,
        sequential=False,
    )


def solve_sequence(
    skeleton: Skeleton,
    targets: Any,
    *,
    smoothness: float = 1e-4,
    joints: Any | None = None,
    weights: Any | None = None,
    orientation_targets: Any | None = None,
    orientation_weight: float = 1.0,
    init: Any | None = None,
    init_root: Any | None = None,
    fixed_root: bool = False,
    joint_limits: Any | None = None,
    max_iters: int = 100,
    tol: float | None = None,
    robust: float | None = None,
) -> IKResult:
    """:func:`solve` for a motion: frames ``(F, T, 3)`` in order, each
    started from the previous frame's solution and pulled towards it with
    weight ``smoothness`` (unit-free as ``regularization`` in :func:`solve`:
    rotations ``½ λ s² |log(prevᵀ R)|²``, root translation
    ``½ λ |t - t_prev|²``): space-time fitting of a motion to
    noisy 3D keypoints. ``init`` / ``init_root`` start the first frame.
    Other arguments as :func:`solve`.

    Example:
        >>> import numpy as np, fastkin
        >>> arm = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [1, 0, 0], [1, 0, 0]])
        >>> angles = np.linspace(0, 1, 5)
        >>> tips = np.stack([np.cos(angles) + 1, np.sin(angles), 0 * angles], -1)[:, None]
        >>> result = fastkin.ik.solve_sequence(arm, tips, joints=[2], fixed_root=True, smoothness=0)
        >>> result.rotations.shape, bool(result.converged.all())
        ((5, 3, 4), True)
    """
    if not (np.isfinite(smoothness) and smoothness >= 0):
        raise ValueError(f"smoothness must be a finite number >= 0, got {smoothness!r}")
    shape = np.shape(targets)
    if len(shape) != 3:
        raise ValueError(f"targets must have shape (F, T, 3) for a sequence, got {tuple(shape)}")
    return _solve(
        skeleton,
        targets,
        joints,
        weights,
        orientation_targets,
        orientation_weight,
        init,
        init_root,
        fixed_root,
        smoothness,
        joint_limits,
        max_iters,
        tol,
        robust,
        sequential=True,
    )


# -- private helpers ------------------------------------------------------------------------------


def _solve(
    skeleton,
    targets,
    joints,
    weights,
    orientation_targets,
    orientation_weight,
    init,
    init_root,
    fixed_root,
    regularization,
    joint_limits,
    max_iters,
    tol,
    robust,
    sequential,
) -> IKResult:
    # Kept lean: a single frame is solved in tens of microseconds, so the
    # checks here must not cost more than the solve.
    if not isinstance(skeleton, Skeleton):
        raise TypeError(f"skeleton must be a fastkin.Skeleton, got {type(skeleton).__name__}")
    torch_like = targets if is_torch(targets) else None
    targets = _float_input(targets, "targets")
    dtype = targets.dtype
    context = _context(skeleton, dtype)
    J = skeleton.num_joints
    joint_indices = None if joints is None else _joint_indices(skeleton, joints)  # None: every joint
    count = J if joint_indices is None else len(joint_indices)
    if targets.ndim < 2 or targets.shape[-2:] != (count, 3):
        raise ValueError(f"targets must have shape (..., {count}, 3) for {count} target joints, got {targets.shape}")
    batch = targets.shape[:-2]
    frames = math.prod(batch)
    flat_targets = np.ascontiguousarray(targets.reshape(frames, count, 3))
    target_weights = None
    if weights is not None:
        target_weights = np.ascontiguousarray(_float_input(weights, "weights").astype(dtype, copy=False))
        if target_weights.shape != (count,):
            raise ValueError(f"weights must have shape ({count},), got {target_weights.shape}")
    orientations = None
    if orientation_targets is not None:
        orientations = _frames_of_rotations(
            _float_input(orientation_targets, "orientation_targets").astype(dtype, copy=False),
            "orientation_targets",
            batch,
            count,
        )
    if orientation_weight != 1.0:  # (the checks below skip the defaults: this path is timed per frame)
        _require_number(orientation_weight, "orientation_weight", "a finite number >= 0", lambda v: v >= 0)
    start = context.rest_rotations if init is None else _start_rotations(skeleton, init, batch, dtype)
    # None: the solver starts from the first root's target minus its offset (or zero).
    root = None if init_root is None else np.ascontiguousarray(_start_root(init_root, batch, dtype))
    if regularization != 0.0:
        _require_number(regularization, "regularization", "a finite number >= 0", lambda v: v >= 0)
    limits = None
    if joint_limits is not None:
        limits = np.ascontiguousarray(_float_input(joint_limits, "joint_limits").astype(dtype, copy=False))
        if limits.shape != (J, 3, 2):
            raise ValueError(f"joint_limits must have shape ({J}, 3, 2), got {limits.shape}")
        if not np.isfinite(limits).all() or (limits[..., 0] > limits[..., 1]).any():
            raise ValueError("joint_limits must be finite with min <= max")
    if isinstance(max_iters, bool) or not isinstance(max_iters, (int, np.integer)) or max_iters < 1:
        raise ValueError(f"max_iters must be an int >= 1, got {max_iters!r}")
    if tol is None:
        tol = context.default_tol
    else:
        _require_number(tol, "tol", "a finite number > 0", lambda v: v > 0)
    if robust is not None:
        _require_number(robust, "robust", "a finite Huber threshold > 0", lambda v: v > 0)
    rotations = np.empty((frames, J, 4), dtype)
    root_translation = np.empty((frames, 3), dtype)
    error = np.empty(frames, dtype)
    iterations = np.empty(frames, np.int32)
    converged = np.empty(frames, np.bool_)
    _core.ik_solve(
        skeleton._kernel_data,
        joint_indices,
        flat_targets,
        target_weights,
        orientations,
        float(orientation_weight),
        start,
        root,
        float(regularization) * context.size**2,
        float(regularization) if sequential else 0.0,
        bool(fixed_root),
        limits,
        0.0 if robust is None else float(robust),
        int(max_iters),
        float(tol),
        sequential,
        rotations,
        root_translation,
        error,
        iterations,
        converged,
    )
    result = IKResult(
        rotations.reshape(batch + (J, 4)),
        root_translation.reshape(batch + (3,)),
        error.reshape(batch),
        iterations.reshape(batch),
        converged.reshape(batch),
    )
    return result if torch_like is None else _as_tensors(result, torch_like)


@dataclass(frozen=True)
class _Context:
    """What every solve of a skeleton needs, made once per dtype."""

    rest_rotations: np.ndarray
    size: float  # extent of the rest pose (the skeleton's 'height'), at least 1e-12
    default_tol: float


def _context(skeleton: Skeleton, dtype) -> _Context:
    key = ("ik", dtype)  # a numpy dtype: hashable, and cheaper to key on than its name
    context = skeleton._torch_cache.get(key)
    if context is None:
        from ..kinematics import fk_batch

        positions = fk_batch(skeleton, np.asarray(skeleton.rest_rotations, np.float64))[1]
        extent = float(np.ptp(positions, axis=0).max()) if len(positions) > 1 else 0.0

        def frozen(array):
            return read_only(np.asarray(array, dtype=dtype))

        size = max(extent, float(np.abs(skeleton.offsets).max()), 1e-12)
        context = _Context(
            rest_rotations=frozen(skeleton.rest_rotations),
            size=size,
            default_tol=(1e-9 if np.dtype(dtype) == np.float64 else 1e-5) * size,
        )
        skeleton._torch_cache[key] = context
    return context


def _require_number(value: Any, name: str, what: str, ok) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    if not (math.isfinite(value) and ok(value)):
        raise ValueError(f"{name} must be {what}, got {value!r}")


def _float_input(value: Any, name: str) -> np.ndarray:
    if type(value) is np.ndarray and value.dtype.char in "fd":
        return value
    if is_torch(value):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind in "iub":
        array = array.astype(np.float64)
    if array.dtype.char not in "fd":
        raise TypeError(f"{name} must be float32 or float64, got dtype {array.dtype}")
    return array


def _joint_indices(skeleton: Skeleton, joints: Any) -> np.ndarray:
    if joints is None:
        return np.arange(skeleton.num_joints, dtype=np.int32)
    values = list(joints) if not isinstance(joints, (str, bytes)) else [joints]
    out = []
    for i, j in enumerate(values):
        if isinstance(j, str):
            out.append(skeleton.index(j))
        elif isinstance(j, (int, np.integer)) and not isinstance(j, bool):
            if not 0 <= j < skeleton.num_joints:
                raise ValueError(f"joints[{i}] = {j} is not a joint index in [0, {skeleton.num_joints})")
            out.append(int(j))
        else:
            raise TypeError(f"joints must be joint indices or names, got {type(j).__name__} at joints[{i}]")
    if not out:
        raise ValueError("joints must name at least one target joint")
    if len(set(out)) != len(out):
        raise ValueError("joints must not repeat a joint")
    return np.asarray(out, dtype=np.int32)


def _start_rotations(skeleton: Skeleton, init: Any, batch: tuple, dtype) -> np.ndarray:
    """init as the solver takes it: (frames, J, 4 | 3, 3) or shared (J, 4 | 3, 3)."""
    J = skeleton.num_joints
    start = _float_input(init, "init").astype(dtype, copy=False)
    if start.shape in ((J, 4), (J, 3, 3)):
        return np.ascontiguousarray(start)
    trailing = start.shape[len(batch) :]
    if start.shape[: len(batch)] != batch or trailing not in ((J, 4), (J, 3, 3)):
        raise ValueError(
            f"init must have shape {batch + (J, 4)}, {batch + (J, 3, 3)}, ({J}, 4) or ({J}, 3, 3), got {start.shape}"
        )
    frames = int(np.prod(batch, dtype=np.int64))
    return np.ascontiguousarray(start.reshape((frames,) + trailing))


def _frames_of_rotations(values: np.ndarray, name: str, batch: tuple, count: int) -> np.ndarray:
    """(frames, count, 3, 3) contiguous matrices from quaternions or matrices,
    per frame (batch + (count, ...)) or shared ((count, ...))."""
    if values.shape[-1:] == (4,) and values.shape[-2:-1] == (count,):
        norms = np.linalg.norm(values, axis=-1)
        if not np.all(norms > 0):
            raise ValueError(f"{name} holds a zero quaternion")
        values = quat_to_matrix(values)
    if values.shape[-3:] != (count, 3, 3):
        raise ValueError(f"{name} must have shape (..., {count}, 4) or (..., {count}, 3, 3), got {values.shape}")
    leading = values.shape[:-3]
    if leading not in ((), batch):
        raise ValueError(f"{name} must be per frame {batch} or shared, got leading shape {leading}")
    frames = int(np.prod(batch, dtype=np.int64))
    return np.ascontiguousarray(np.broadcast_to(values, batch + (count, 3, 3)).reshape(frames, count, 3, 3))


def _start_root(init_root, batch, dtype) -> np.ndarray:
    """init_root as (frames, 3), or (3,) shared by every frame."""
    root = _float_input(init_root, "init_root").astype(dtype, copy=False)
    if root.shape == (3,):
        return root
    if root.shape != batch + (3,):
        raise ValueError(f"init_root must have shape (3,) or {batch + (3,)}, got {root.shape}")
    return root.reshape(-1, 3)


def _as_tensors(result: IKResult, like: Any) -> IKResult:
    import torch

    def tensor(x):
        return torch.as_tensor(x).to(device=like.device)

    return IKResult(*(tensor(value) for value in result))
