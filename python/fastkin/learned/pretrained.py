"""Pretrained models shipped inside the package (weights + description;
how each was trained is in its description and in docs/learned.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from .checkpoint import load_model

__all__ = ["PRETRAINED", "load_pretrained"]

# Name -> what it is.
PRETRAINED = {
    "ikgat-cmu": "IK-GAT for the CMU 31-joint skeleton (38 joints with end sites), trained on ../shared/data/train "
                 "without take 01_01; validated on 01_01 and subject 12's walk. Small (width 32, 1 layer): "
                 "over 100,000 frames/s on 2 cores",
    "ikgat-cmu-large": "the same data and skeleton, width 64 and 4 layers: 1.3-2 degrees more accurate, "
                       "3x slower at batch 1, 15x at batch 4,096",
    "p2r-any": "PoseToRotation for any skeleton (width 64, 4 layers), trained on ../shared/data without the Fox, "
               "RobotExpressive and the 70- and 73-joint BVH skeletons, which it is scored on "
               "(docs/pose_to_rotation.md); predict(skeleton, positions, reference=one known pose)",
}


def load_pretrained(name: str = "ikgat-cmu") -> Any:
    """A shipped model, ready for ``model.predict`` (evaluation mode, CPU).

    Example:
        >>> import fastkin
        >>> from fastkin.learned import load_pretrained
        >>> model = load_pretrained("ikgat-cmu")
        >>> walk = fastkin.data.default_motion()
        >>> rotations, root = model.predict(walk.positions()[:2], skeleton=walk.skeleton)
        >>> rotations.shape
        (2, 38, 4)
    """
    if name not in PRETRAINED:
        raise ValueError(f"no pretrained model {name!r}; shipped: {sorted(PRETRAINED)}")
    folder = Path(str(resources.files(__package__).joinpath("weights")))
    return load_model(folder / name)
