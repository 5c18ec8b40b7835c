"""fastkin: fast, exact kinematics for articulated characters.

Batched forward kinematics with exact torch gradients (:func:`fk_batch`),
rest-pose bone frames for learned IK (:func:`bone_frames`,
:func:`local_to_bone_world`, :func:`bone_world_to_local`), rotation
conversions (:mod:`fastkin.rotations`), the :class:`Skeleton` that
describes a joint hierarchy, skinning (:func:`lbs`, :func:`dqs`) and
SMPL-family body models (:class:`BodyModel`) and inverse kinematics
(:mod:`fastkin.ik`). See docs/ for conventions and examples.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import _core, data, ik, io, rotations
from .body_model import BodyModel
from .bone_frames import bone_frames, bone_world_to_local, local_to_bone_world
from .kinematics import fk_batch
from .motion import Motion
from .skeleton import Skeleton
from .skinning import dqs, lbs, skinning_transforms, top_k_weights

try:
    __version__ = version("fastkin")
except PackageNotFoundError:  # running from a source tree without metadata
    __version__ = "0+unknown"

__all__ = [
    "Skeleton",
    "Motion",
    "BodyModel",
    "fk_batch",
    "bone_frames",
    "local_to_bone_world",
    "bone_world_to_local",
    "skinning_transforms",
    "lbs",
    "dqs",
    "top_k_weights",
    "ik",
    "rotations",
    "io",
    "data",
    "set_num_threads",
    "get_num_threads",
    "build_info",
    "__version__",
]


def set_num_threads(num_threads: int) -> None:
    """Sets how many threads large batches use (default: all hardware
    threads, or ``FASTKIN_NUM_THREADS``). Safe to call while other threads
    run kernels. A single pose never uses the pool.

    Example:
        >>> import fastkin
        >>> fastkin.set_num_threads(1); fastkin.get_num_threads()
        1
    """
    if isinstance(num_threads, bool) or not isinstance(num_threads, int):
        raise TypeError(f"num_threads must be an int, got {type(num_threads).__name__}")
    _core.set_num_threads(num_threads)


def get_num_threads() -> int:
    """The number of threads large batches may use.

    Example:
        >>> fastkin.get_num_threads() >= 1
        True
    """
    return _core.get_num_threads()


def build_info() -> dict:
    """How this fastkin was built and what it runs with: version, the
    instruction set the kernels use on this CPU (``"avx512"``, ``"avx2"`` or
    ``"scalar"``; ``FASTKIN_ISA`` can cap it), the thread count and compiler.

    Example:
        >>> sorted(fastkin.build_info())
        ['compiler', 'isa', 'num_threads', 'version']
    """
    return {
        "version": __version__,
        "isa": _core.isa(),
        "num_threads": _core.get_num_threads(),
        "compiler": _core.compiler,
    }
