"""Inverse kinematics: rotations that put a skeleton's joints where given
(docs/ik.md)."""

from .analytic import analytic

__all__ = ["analytic"]
