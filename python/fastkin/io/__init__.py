"""Readers and writers for motion and character files.

- :func:`load_bvh` / :func:`save_bvh`: Biovision hierarchy (BVH).
- :func:`load_asf_amc`: CMU ASF skeleton + AMC motion.
- :func:`load_gltf`: glTF 2.0 skins, skinned meshes and animations.

Malformed files raise :class:`FormatError` (a ValueError) with the file
name and line.

Example:
    >>> import os, tempfile, fastkin
    >>> walk = fastkin.data.default_motion()
    >>> path = os.path.join(tempfile.mkdtemp(), "walk_30fps.bvh")
    >>> fastkin.io.save_bvh(path, walk.resample(30))
    >>> again = fastkin.io.load_bvh(path)
    >>> again.skeleton.names == walk.skeleton.names, round(again.fps)  # the file keeps 1/30 s to 7 digits
    (True, 30)
"""

from .asf import load_asf_amc
from .bvh import load_bvh, save_bvh
from .errors import FormatError
from .gltf import Character, SkinnedMesh, load_gltf
from .layout import channel_layout

__all__ = [
    "load_bvh",
    "save_bvh",
    "load_asf_amc",
    "load_gltf",
    "Character",
    "SkinnedMesh",
    "channel_layout",
    "FormatError",
]
