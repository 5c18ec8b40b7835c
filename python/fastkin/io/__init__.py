"""Readers and writers for motion and character files.

- :func:`load_bvh` / :func:`save_bvh`: Biovision hierarchy (BVH).
"""

from .bvh import load_bvh, save_bvh

__all__ = ["load_bvh", "save_bvh"]
