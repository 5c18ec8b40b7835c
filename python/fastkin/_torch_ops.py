"""torch front door of fk_batch: custom ops over the compiled kernels for CPU
tensors (forward and backward are both C++), a torch-native path for other
devices. Imported on first use, so ``import fastkin`` never needs torch."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import _core
from .kinematics import raise_nonfinite
from .rotations import quat_to_matrix
from .skeleton import Skeleton

_FLOATS = (torch.float32, torch.float64)


def host(tensor: Optional[torch.Tensor]) -> Any:
    """A CPU tensor as a C-contiguous numpy view for the compiled kernels
    (None stays None). Outputs, written through the view, must be fresh
    contiguous tensors. nanobind takes a torch tensor through DLPack at ~2 µs
    a tensor against ~1 for this: a single-pose fk went from 37 to 29 µs."""
    return None if tensor is None else tensor.detach().contiguous().numpy()


def _batch_shape(rotations: torch.Tensor) -> tuple[int, ...]:
    return tuple(rotations.shape[:-2] if rotations.shape[-1] == 4 else rotations.shape[:-3])


@torch.library.custom_op("fastkin::fk", mutates_args=(), device_types="cpu")
def fk_op(
    parents: torch.Tensor,
    rotations: torch.Tensor,
    root_translation: Optional[torch.Tensor],
    offsets: torch.Tensor,
    keep_in_cache: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """World rotations (..., J, 3, 3) and positions (..., J, 3); see
    fastkin.fk_batch. ``keep_in_cache``: the outputs are read straight back
    (a loss under autograd), so large ones are not streamed past the cache
    (fk + loss + backward ~10% faster at B = 4096)."""
    batch = _batch_shape(rotations)
    num_joints = parents.shape[0]
    world_rotations = rotations.new_empty(batch + (num_joints, 3, 3))
    world_positions = rotations.new_empty(batch + (num_joints, 3))
    if not _core.fk_forward(
        host(parents),
        host(rotations),
        host(root_translation),
        host(offsets),
        host(world_rotations),
        host(world_positions),
        stream_large_outputs=not keep_in_cache,
    ):
        raise_nonfinite(rotations, root_translation, offsets)
    return world_rotations, world_positions


@fk_op.register_fake
def _fk_fake(parents, rotations, root_translation, offsets, keep_in_cache=False):
    batch = _batch_shape(rotations)
    num_joints = parents.shape[0]
    return rotations.new_empty(batch + (num_joints, 3, 3)), rotations.new_empty(batch + (num_joints, 3))


@torch.library.custom_op("fastkin::fk_backward", mutates_args=(), device_types="cpu")
def fk_backward_op(
    parents: torch.Tensor,
    rotations: torch.Tensor,
    offsets: torch.Tensor,
    grad_world_rotations: Optional[torch.Tensor],
    grad_world_positions: Optional[torch.Tensor],
    root_grad: bool = True,
    offsets_grad: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients with respect to (rotations, root_translation, offsets) of
    fastkin::fk. ``root_grad`` / ``offsets_grad`` False: that gradient is not
    computed (skipping the offsets' saves ~5% of the kernel) and comes back
    as an empty tensor."""
    grad_rotations = torch.empty_like(rotations, memory_format=torch.contiguous_format)
    grad_root, grad_offsets = _backward_outputs(rotations, offsets, root_grad, offsets_grad)
    ok = _core.fk_backward(
        host(parents),
        host(rotations),
        host(offsets),
        host(grad_world_rotations),
        host(grad_world_positions),
        host(grad_rotations),
        host(grad_root) if root_grad else None,
        host(grad_offsets) if offsets_grad else None,
    )
    if not ok:
        raise ValueError("fk backward: the incoming gradient or the inputs are not finite")
    return grad_rotations, grad_root, grad_offsets


def _backward_outputs(rotations, offsets, root_grad: bool, offsets_grad: bool):
    """fk_backward_op's root and offset gradients (empty where not wanted)."""
    grad_root = rotations.new_empty(_batch_shape(rotations) + (3,) if root_grad else (0,))
    grad_offsets = (
        torch.empty_like(offsets, memory_format=torch.contiguous_format) if offsets_grad else offsets.new_empty(0)
    )
    return grad_root, grad_offsets


@fk_backward_op.register_fake
def _fk_backward_fake(
    parents, rotations, offsets, grad_world_rotations, grad_world_positions, root_grad=True, offsets_grad=True
):
    return (torch.empty_like(rotations),) + _backward_outputs(rotations, offsets, root_grad, offsets_grad)


def _setup_context(ctx, inputs, output):
    parents, rotations, root_translation, offsets, _ = inputs
    ctx.save_for_backward(parents, rotations, offsets)


def _backward(ctx, grad_world_rotations, grad_world_positions):
    parents, rotations, offsets = ctx.saved_tensors
    root_grad, offsets_grad = ctx.needs_input_grad[2:4]  # (keep_in_cache is there only when passed)
    grad_rotations, grad_root, grad_offsets = fk_backward_op(
        parents, rotations, offsets, grad_world_rotations, grad_world_positions, root_grad, offsets_grad
    )
    return None, grad_rotations, grad_root if root_grad else None, grad_offsets if offsets_grad else None, None


fk_op.register_autograd(_backward, setup_context=_setup_context)


def fk_torch(skeleton: Skeleton, rotations, root_translation, offsets):
    """fastkin.fk_batch for torch tensors (checks, then op or native path)."""
    if rotations.dtype not in _FLOATS:
        raise TypeError(f"rotations must be float32 or float64, got {rotations.dtype}")
    dtype, device = rotations.dtype, rotations.device
    offsets = (
        _skeleton_tensor(skeleton, "offsets", dtype, device)
        if offsets is None
        else _like(offsets, "offsets", rotations)
    )
    if root_translation is not None:
        root_translation = _like(root_translation, "root_translation", rotations)
    _check_shapes(skeleton.num_joints, rotations, root_translation, offsets)
    if device.type == "cpu":
        parents = _skeleton_tensor(skeleton, "parents", torch.int32, device)
        recording = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (rotations, root_translation, offsets)
        )
        return fk_op(parents, rotations, root_translation, offsets, recording)
    return fk_torch_native(skeleton.parents.tolist(), rotations, root_translation, offsets)


def fk_torch_native(parents: list[int], rotations, root_translation, offsets):
    """fk in plain torch operations (autograd by torch): the path for CUDA and
    other non-CPU tensors, with the same semantics as the compiled kernels."""
    local = quat_to_matrix(rotations) if rotations.shape[-1] == 4 else rotations
    num_joints = len(parents)
    batch = local.shape[:-3]
    offsets = offsets.expand(batch + (num_joints, 3)) if offsets.dim() == 2 else offsets
    world_rotations: list = [None] * num_joints
    world_positions: list = [None] * num_joints
    for j, p in enumerate(parents):
        if p < 0:
            world_rotations[j] = local[..., j, :, :]
            position = offsets[..., j, :]
            world_positions[j] = position if root_translation is None else position + root_translation
        else:
            world_rotations[j] = world_rotations[p] @ local[..., j, :, :]
            world_positions[j] = world_positions[p] + (world_rotations[p] @ offsets[..., j, :, None])[..., 0]
    world_r = torch.stack(world_rotations, dim=-3)
    world_p = torch.stack(world_positions, dim=-2)
    if not torch.compiler.is_compiling() and not bool(torch.isfinite(world_p).all() and torch.isfinite(world_r).all()):
        raise_nonfinite(rotations, root_translation, offsets)
    return world_r, world_p


def _skeleton_tensor(skeleton: Skeleton, what: str, dtype, device) -> torch.Tensor:
    """The skeleton's parents or offsets as a tensor, cached per dtype/device."""
    key = (what, dtype, device)
    cached = skeleton._torch_cache.get(key)
    if cached is None:
        source = skeleton.parents if what == "parents" else skeleton.offsets
        cached = torch.as_tensor(source.copy()).to(dtype=dtype, device=device)
        skeleton._torch_cache[key] = cached
    return cached


def _like(value, name: str, reference: torch.Tensor, reference_name: str = "rotations") -> torch.Tensor:
    """value as a tensor of reference's dtype and device (converted when it is
    not a tensor; a tensor that differs is an error naming both)."""
    if not isinstance(value, torch.Tensor):
        return torch.as_tensor(value, dtype=reference.dtype, device=reference.device)
    if value.dtype != reference.dtype:
        raise TypeError(
            f"{name} has dtype {value.dtype} but {reference_name} are {reference.dtype}: pass matching dtypes"
        )
    if value.device != reference.device:
        raise ValueError(f"{name} is on {value.device} but {reference_name} are on {reference.device}")
    return value


def _check_shapes(num_joints: int, rotations, root_translation, offsets) -> None:
    shape = tuple(rotations.shape)
    if len(shape) >= 2 and shape[-2:] == (num_joints, 4):
        batch = shape[:-2]
    elif len(shape) >= 3 and shape[-3:] == (num_joints, 3, 3):
        batch = shape[:-3]
    else:
        raise ValueError(f"rotations must have shape (..., {num_joints}, 4) or (..., {num_joints}, 3, 3), got {shape}")
    if root_translation is not None and tuple(root_translation.shape) != batch + (3,):
        raise ValueError(f"root_translation must have shape {batch + (3,)}, got {tuple(root_translation.shape)}")
    if tuple(offsets.shape) not in ((num_joints, 3), batch + (num_joints, 3)):
        raise ValueError(
            f"offsets must have shape {(num_joints, 3)} or {batch + (num_joints, 3)}, got {tuple(offsets.shape)}"
        )
