"""Inverse kinematics: iterative (Levenberg-Marquardt) solving of joint
positions and orientations for any skeleton. See docs/ik.md."""

from .solve import IKResult, solve, solve_sequence

__all__ = ["IKResult", "solve", "solve_sequence"]
