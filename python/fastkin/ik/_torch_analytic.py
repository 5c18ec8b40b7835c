"""torch front door of analytic IK: the tensors go through the same kernel
on the CPU, without gradients. Imported on first use, so ``import fastkin``
never needs torch."""

from __future__ import annotations

from typing import Any

import torch

from ..skeleton import Skeleton

_FLOATS = (torch.float32, torch.float64)


def analytic_torch(skeleton: Skeleton, positions: torch.Tensor, reference: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """fastkin.ik.analytic for torch tensors: tensors of the input's dtype
    and device, not attached to the autograd graph."""
    from .analytic import analytic

    if positions.dtype not in _FLOATS:
        raise TypeError(f"positions must be float32 or float64, got {positions.dtype}")
    if isinstance(reference, torch.Tensor):
        if reference.dtype != positions.dtype:
            raise TypeError(
                f"reference has dtype {reference.dtype} but positions are {positions.dtype}: pass matching dtypes"
            )
        reference = reference.detach().cpu().contiguous().numpy()
    host = positions.detach().cpu().contiguous().numpy()  # no copy for a contiguous CPU tensor
    rotations, root_translation = analytic(skeleton, host, reference=reference)
    device = positions.device
    return torch.from_numpy(rotations).to(device), torch.from_numpy(root_translation).to(device)
