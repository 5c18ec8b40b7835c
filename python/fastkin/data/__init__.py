"""Small bundled data: a human skeleton with motions and a skinned character.

See ``ATTRIBUTION.md`` beside this file for sources and licences (CMU
motion capture; the Khronos "Fox" glTF sample, CC0 / CC BY 4.0).

Example:
    >>> import fastkin
    >>> walk = fastkin.data.default_motion("cmu_12_01_walk")
    >>> walk.positions().shape
    (524, 38, 3)
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily at run time, as the functions below do
    from ..io import Character
    from ..motion import Motion

__all__ = ["MOTIONS", "path", "default_motion", "default_character", "attribution"]

# Bundled motion name -> file.
MOTIONS = {"cmu_12_01_walk": "cmu_12_01_walk.bvh", "cmu_01_01": "cmu_01_01.bvh"}
CHARACTER = "Fox.glb"


def path(name: str) -> Path:
    """The path of a bundled file (e.g. ``"Fox.glb"``).

    Example:
        >>> from fastkin import data
        >>> data.path("Fox.glb").name
        'Fox.glb'
    """
    files = set(MOTIONS.values()) | {CHARACTER, "ATTRIBUTION.md"}
    if name not in files:
        raise ValueError(f"no bundled file {name!r}; bundled files are {sorted(files)}")
    return Path(str(resources.files(__name__).joinpath(name)))


def default_motion(name: str = "cmu_12_01_walk") -> Motion:
    """A bundled human motion (CMU, 31 joints, 120 fps) as a Motion.

    Example:
        >>> from fastkin import data
        >>> walk = data.default_motion()
        >>> walk.skeleton.num_joints, round(walk.fps), len(walk)  # the file's frame time is 0.0083333
        (38, 120, 524)
    """
    from ..io import load_bvh

    if name not in MOTIONS:
        raise ValueError(f"no bundled motion {name!r}; choose from {sorted(MOTIONS)}")
    return load_bvh(path(MOTIONS[name]))


def default_character(fps: float = 30.0) -> Character:
    """The bundled skinned character (the Khronos "Fox": 24 joints, clips
    Survey, Walk and Run) as a :class:`fastkin.io.Character`.

    Example:
        >>> from fastkin import data
        >>> fox = data.default_character()
        >>> fox.skeleton.num_joints, sorted(fox.animations)
        (24, ['Run', 'Survey', 'Walk'])
    """
    from ..io import load_gltf

    return load_gltf(path(CHARACTER), fps=fps)[0]


def attribution() -> str:
    """Sources and licences of the bundled files.

    Example:
        >>> from fastkin import data
        >>> "CC BY 4.0" in data.attribution()
        True
    """
    return path("ATTRIBUTION.md").read_text()
