"""Inverse kinematics (docs/ik.md): Levenberg-Marquardt solving of joint
positions and orientations for any skeleton (``solve``, ``solve_sequence``),
analytic two-bone limbs and FABRIK chains and trees, and analytic IK of a
whole skeleton from its joint positions (``analytic``)."""

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
