"""IKGAT's forward pass in the compiled core: float32 on the CPU, no torch
at call time, batches spread over fastkin's thread pool."""

from __future__ import annotations

import numpy as np

from .. import _core
from .ikgat import IKGAT

__all__ = ["CompiledIKGAT"]


class CompiledIKGAT:
    """A frozen copy of an :class:`IKGAT`'s weights that computes
    ``IKGAT.forward`` (joint positions -> bone-aligned world rotations) in C++.

    Later changes to the model's parameters are not seen: build a new one.

    Example:
        >>> import numpy as np, fastkin
        >>> from fastkin.learned import IKGAT, CompiledIKGAT
        >>> walk = fastkin.data.default_motion()
        >>> compiled = CompiledIKGAT(IKGAT(walk.skeleton, width=16, layers=1))
        >>> compiled.bone_rotations(walk.positions()[:4].astype(np.float32)).shape
        (4, 38, 3, 3)
    """

    def __init__(self, model: IKGAT) -> None:
        if not isinstance(model, IKGAT):
            raise TypeError(f"model must be a fastkin.learned.IKGAT, got {type(model).__name__}")
        weights = {name: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)
                   for name, t in model.state_dict().items() if t.is_floating_point()}
        weights["parents"] = np.ascontiguousarray(model.parents.cpu().numpy(), dtype=np.int32)
        weights["has_bone"] = np.ascontiguousarray(model.has_bone.cpu().numpy(), dtype=bool)
        weights["blocked"] = np.ascontiguousarray(model.blocked.cpu().numpy(), dtype=bool)
        self.num_joints: int = model.skeleton.num_joints
        self._impl = _core.IKGATInference(weights, model.config["heads"], model.config["layers"])

    @property
    def flops_per_frame(self) -> int:
        """Floating-point operations of one frame's forward pass."""
        return self._impl.flops_per_frame

    def bone_rotations(self, positions: np.ndarray) -> np.ndarray:
        """``(B, J, 3)`` float32 C-contiguous joint positions -> ``(B, J, 3, 3)``
        float32 bone-aligned world rotations (what ``IKGAT.forward`` returns).
        No copies are made: other dtypes or layouts raise."""
        if not isinstance(positions, np.ndarray):
            raise TypeError(f"positions must be a numpy array, got {type(positions).__name__}")
        out = np.empty((positions.shape[0] if positions.ndim else 0, self.num_joints, 3, 3), np.float32)
        self._impl.forward(positions, out)
        return out
