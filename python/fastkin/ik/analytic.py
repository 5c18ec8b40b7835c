"""Analytic IK: local rotations from world joint positions, one joint at a
time from the roots down (the classical factorised pipeline). The math and
the rules are in docs/ik.md; the work runs in the compiled kernel
(``cpp/src/ik_analytic.cpp``).

numpy in -> numpy out; torch in -> torch out (computed on the CPU, without
gradients).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from .._backend import is_torch
from ..kinematics import _float_array
from ..skeleton import Skeleton

__all__ = ["analytic"]

# Largest |RᵀR - I| of a reference matrix (the kernel's test, repeated here
# only to say which matrix failed).
ROTATION_TOLERANCE = 1e-5


def analytic(skeleton: Skeleton, positions: Any, *, reference: Any | None = None) -> tuple[Any, Any]:
    """Local rotations and root translation that put the skeleton's joints at
    ``positions``, solved joint by joint from the roots down.

    Each joint j gets the world rotation that turns its rest bones onto the
    posed ones, starting from a *start* rotation that fixes what positions
    cannot show (the twist about a bone):

    - start: the rest rotation relative to the solved parent,
      ``W_parent · R0_j`` (``R0`` = ``skeleton.rest_rotations``), or with
      ``reference``, the reference pose's own world rotation of j;
    - one child c: the smallest rotation (swing) after the start that points
      the bone j -> c at ``p_c - p_j``, so its direction is exact;
    - several children: the rotation minimising the children's squared
      position errors ``Σ |p_j + W_j o_c - p_c|²`` (Horn's method, always a
      proper rotation); when the children are collinear, the swing as for
      one child;
    - no child (a leaf), or targets coincident with the joint: the start. A
      joint whose children all have zero-length offsets is aimed by their
      children instead, as if the zero-length joints kept their start
      rotations (so a BVH hips or hand joint gets a full rotation).

    ``root_translation = p_root - offset_root`` of the first root (fk adds one
    translation to every root of a forest). Exactness: for positions made by
    fk of the same skeleton every joint is reproduced to float precision;
    otherwise bone lengths cannot change, so each single-child bone points
    exactly at its target and several children are a least-squares fit.

    Analytic IK is not differentiable: it is an initialiser and a baseline
    (for iterative solvers, learned models, joint angles from keypoints).

    Args:
        skeleton: the :class:`fastkin.Skeleton`.
        positions: world joint positions ``(..., J, 3)``, float32 or float64,
            in the skeleton's units.
        reference: optional rotations whose twist to keep, ``(J, 4)`` xyzw
            quaternions or ``(J, 3, 3)`` matrices for every frame, or one
            per frame (the batch shape of ``positions`` first), in the dtype
            of ``positions`` (e.g. the previous frame's solution, a learned
            model's output, or the true pose). Matrices must be rotations.

    Returns:
        ``(local_rotations (..., J, 3, 3), root_translation (..., 3))``
        rotation matrices and translation in the dtype of ``positions``
        (computed in float64 either way), ready for
        :func:`fastkin.fk_batch`. numpy gives numpy; torch gives tensors on
        the input's device, not attached to the autograd graph.

    Example:
        >>> import numpy as np, fastkin
        >>> arm = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [1, 0, 0], [1, 0, 0]])
        >>> positions = np.array([[5.0, 0, 0], [5, 1, 0], [4, 1, 0]])  # up, then back
        >>> rotations, root_translation = fastkin.ik.analytic(arm, positions)
        >>> fastkin.rotations.matrix_to_axis_angle(rotations).round(6)  # 90 degrees about z, twice
        array([[0.      , 0.      , 1.570796],
               [0.      , 0.      , 1.570796],
               [0.      , 0.      , 0.      ]])
        >>> root_translation, fastkin.fk_batch(arm, rotations, root_translation)[1].round(6)
        (array([5., 0., 0.]), array([[5., 0., 0.],
               [5., 1., 0.],
               [4., 1., 0.]]))
    """
    if not isinstance(skeleton, Skeleton):
        raise TypeError(f"skeleton must be a fastkin.Skeleton, got {type(skeleton).__name__}")
    if type(positions) is not np.ndarray and is_torch(positions):
        from ._torch_analytic import analytic_torch

        return analytic_torch(skeleton, positions, reference)
    positions = _float_array(positions, "positions", None)
    num_joints = skeleton.num_joints
    shape = positions.shape
    if len(shape) < 2 or shape[-2:] != (num_joints, 3):
        raise ValueError(f"positions must have shape (..., {num_joints}, 3), got {shape}")
    if reference is not None:
        if is_torch(reference):
            reference = reference.detach().cpu().numpy()
        reference = _float_array(reference, "reference", positions.dtype, reference="positions")
    ok, rotations, root_translation = _core.ik_analytic(_plan(skeleton), positions, reference)
    if not ok:
        _raise_failure(positions, reference)
    return rotations, root_translation


# -- helpers -------------------------------------------------------------------------------------


def _plan(skeleton: Skeleton) -> Any:
    """The kernel's per-skeleton data (targets, rest vectors), cached on the skeleton."""
    plan = skeleton._torch_cache.get("ik_analytic_plan")
    if plan is None:
        plan = _core.AnalyticIkPlan(skeleton.parents, skeleton.offsets, skeleton.rest_rotations)
        skeleton._torch_cache["ik_analytic_plan"] = plan
    return plan


def _raise_failure(positions: np.ndarray, reference: np.ndarray | None) -> None:
    """The ValueError for a failed kernel call, naming what is wrong."""
    if not np.isfinite(positions).all():
        raise ValueError("positions must be finite (it holds NaN or infinity)")
    if reference is not None:
        if not np.isfinite(reference).all():
            raise ValueError("reference must be finite (it holds NaN or infinity)")
        values = reference.astype(np.float64)
        if values.shape[-1] == 4:
            zero = np.sum(values * values, axis=-1) < np.finfo(np.float64).tiny
            if zero.any():
                index = tuple(int(i) for i in np.argwhere(zero)[0])
                raise ValueError(f"reference holds a zero quaternion at {index}, which is no rotation")
        else:
            gram = np.swapaxes(values, -1, -2) @ values
            error = np.abs(gram - np.eye(3)).max(axis=(-1, -2))
            bad = (error > ROTATION_TOLERANCE) | ~(np.linalg.det(values) > 0)
            if bad.any():
                index = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    f"reference{list(index)} is not a rotation matrix (orthonormal to {ROTATION_TOLERANCE:g}, "
                    "determinant +1)"
                )
    raise ValueError("analytic IK overflowed: positions are too large for the dtype")
