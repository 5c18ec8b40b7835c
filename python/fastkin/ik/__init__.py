"""Inverse kinematics (docs/ik.md): Levenberg-Marquardt solving of joint
positions and orientations for any skeleton (``solve``, ``solve_sequence``),
analytic two-bone limbs and FABRIK chains and trees, and analytic IK of a
whole skeleton from its joint positions (``analytic``).

Example:
    >>> import numpy as np, fastkin
    >>> arm = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [1, 0, 0], [1, 0, 0]])
    >>> wrist = fastkin.fk_batch(arm, fastkin.rotations.axis_angle_to_quat(np.array([[0, 0, 0.3], [0, 0, 0.9], [0, 0, 0]])))[1][2]
    >>> result = fastkin.ik.solve(arm, wrist[None], joints=[2], fixed_root=True)
    >>> bool(np.allclose(fastkin.fk_batch(arm, result.rotations)[1][2], wrist))
    True
"""

from .analytic import analytic
from .chains import fabrik, two_bone, two_bone_skeleton
from .solve import IKResult, solve, solve_sequence

__all__ = [
    "IKResult",
    "solve",
    "solve_sequence",
    "two_bone",
    "two_bone_skeleton",
    "fabrik",
    "analytic",
]
