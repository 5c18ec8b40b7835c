"""Readers and writers for motion and character files.

- :func:`load_bvh` / :func:`save_bvh`: Biovision hierarchy (BVH).
- :func:`load_asf_amc`: CMU ASF skeleton + AMC motion.

Malformed files raise :class:`FormatError` (a ValueError) with the file
name and line.
"""

from .asf import load_asf_amc
from .bvh import load_bvh, save_bvh
from .errors import FormatError
from .layout import channel_layout

__all__ = ["load_bvh", "save_bvh", "load_asf_amc", "channel_layout", "FormatError"]
