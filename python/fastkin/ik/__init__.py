"""Inverse kinematics (docs/ik.md)."""

from .chains import fabrik, two_bone, two_bone_skeleton

__all__ = [
    "two_bone",
    "two_bone_skeleton",
    "fabrik",
]
