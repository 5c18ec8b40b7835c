"""torch front door of the bone frames: custom ops over the compiled kernels
for CPU tensors (forward and backward both C++), a torch-native path for
other devices. Imported on first use, so ``import fastkin`` never needs torch.

local_to_bone_world is fk_batch (already differentiable through
``fastkin::fk``) followed by ``fastkin::bone_right_multiply``, whose backward
is the same op with the constants transposed.
"""

from __future__ import annotations

from typing import Any

import torch

from . import _core
from ._torch_ops import _skeleton_tensor, host
from .bone_frames import frame_constants, raise_nonfinite
from .kinematics import fk_batch
from .skeleton import Skeleton

_FLOATS = (torch.float32, torch.float64)


@torch.library.custom_op("fastkin::bone_right_multiply", mutates_args=(), device_types="cpu")
def right_multiply_op(matrices: torch.Tensor, constants: torch.Tensor, transpose: bool) -> torch.Tensor:
    """``matrices (..., J, 3, 3) @ constants (J, 3, 3)`` per joint (the constants transposed when ``transpose``)."""
    out = matrices.new_empty(matrices.shape)
    if not _core.bone_right_multiply(host(matrices), host(constants), transpose, host(out)):
        raise ValueError("bone_right_multiply: the matrices are not finite")
    return out


@right_multiply_op.register_fake
def _right_multiply_fake(matrices, constants, transpose):
    return matrices.new_empty(matrices.shape)


def _right_multiply_setup(ctx, inputs, output):
    _, constants, transpose = inputs
    ctx.save_for_backward(constants)
    ctx.transpose = transpose


def _right_multiply_backward(ctx, grad):
    (constants,) = ctx.saved_tensors
    # d(M C)/dM pulls G back to G Cᵀ (and G C for M Cᵀ).
    return right_multiply_op(grad, constants, not ctx.transpose), None, None


right_multiply_op.register_autograd(_right_multiply_backward, setup_context=_right_multiply_setup)


@torch.library.custom_op("fastkin::bone_world_to_local", mutates_args=(), device_types="cpu")
def world_to_local_op(parents: torch.Tensor, bone_rotations: torch.Tensor, constants: torch.Tensor) -> torch.Tensor:
    """Local rotations (..., J, 3, 3) from bone-aligned world rotations; see fastkin.bone_world_to_local."""
    local_rotations = bone_rotations.new_empty(bone_rotations.shape)
    if not _core.bone_world_to_local(host(parents), host(bone_rotations), host(constants), host(local_rotations)):
        raise_nonfinite(bone_rotations)
    return local_rotations


@world_to_local_op.register_fake
def _world_to_local_fake(parents, bone_rotations, constants):
    return bone_rotations.new_empty(bone_rotations.shape)


@torch.library.custom_op("fastkin::bone_world_to_local_backward", mutates_args=(), device_types="cpu")
def world_to_local_backward_op(
    parents: torch.Tensor, bone_rotations: torch.Tensor, constants: torch.Tensor, grad_local_rotations: torch.Tensor
) -> torch.Tensor:
    """Gradient with respect to bone_rotations of fastkin::bone_world_to_local."""
    grad = bone_rotations.new_empty(bone_rotations.shape)
    ok = _core.bone_world_to_local_backward(
        host(parents), host(bone_rotations), host(constants), host(grad_local_rotations), host(grad)
    )
    if not ok:
        raise ValueError("bone_world_to_local backward: the incoming gradient or the inputs are not finite")
    return grad


@world_to_local_backward_op.register_fake
def _world_to_local_backward_fake(parents, bone_rotations, constants, grad_local_rotations):
    return bone_rotations.new_empty(bone_rotations.shape)


def _world_to_local_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _world_to_local_backward(ctx, grad_local_rotations):
    parents, bone_rotations, constants = ctx.saved_tensors
    return None, world_to_local_backward_op(parents, bone_rotations, constants, grad_local_rotations), None


world_to_local_op.register_autograd(_world_to_local_backward, setup_context=_world_to_local_setup)


def local_to_bone_world_torch(skeleton: Skeleton, rotations: torch.Tensor, frames: Any) -> torch.Tensor:
    """fastkin.local_to_bone_world for torch tensors."""
    world_rotations, _ = fk_batch(skeleton, rotations)  # checks rotations
    constants = _constants_tensor(skeleton, frames, world_rotations.dtype, world_rotations.device)
    if world_rotations.device.type == "cpu":
        return right_multiply_op(world_rotations, constants, False)
    return world_rotations @ constants


def bone_world_to_local_torch(skeleton: Skeleton, bone_rotations: torch.Tensor, frames: Any) -> torch.Tensor:
    """fastkin.bone_world_to_local for torch tensors."""
    if bone_rotations.dtype not in _FLOATS:
        raise TypeError(f"bone_rotations must be float32 or float64, got {bone_rotations.dtype}")
    num_joints = skeleton.num_joints
    shape = tuple(bone_rotations.shape)
    if len(shape) < 3 or shape[-3:] != (num_joints, 3, 3):
        raise ValueError(f"bone_rotations must have shape (..., {num_joints}, 3, 3), got {shape}")
    constants = _constants_tensor(skeleton, frames, bone_rotations.dtype, bone_rotations.device)
    if bone_rotations.device.type == "cpu":
        parents = _skeleton_tensor(skeleton, "parents", torch.int32, bone_rotations.device)
        return world_to_local_op(parents, bone_rotations, constants)
    return bone_world_to_local_native(skeleton.parents.tolist(), bone_rotations, constants)


def bone_world_to_local_native(parents: list[int], bone_rotations: torch.Tensor, constants: torch.Tensor):
    """bone_world_to_local in plain torch operations (autograd by torch): the
    path for CUDA and other non-CPU tensors, same semantics as the kernel."""
    world = bone_rotations @ constants.transpose(-1, -2)
    parent_index = torch.tensor([max(p, 0) for p in parents], device=world.device)
    is_root = torch.tensor([p < 0 for p in parents], device=world.device)[:, None, None]
    local = torch.where(is_root, world, world[..., parent_index, :, :].transpose(-1, -2) @ world)
    if not torch.compiler.is_compiling() and not bool(torch.isfinite(local).all()):
        raise_nonfinite(bone_rotations)
    return local


def _constants_tensor(skeleton: Skeleton, frames: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """C_j = W0_jᵀ A_j as a tensor (cached per dtype and device for the default frames)."""
    if torch.compiler.is_compiling():
        # dynamo cannot trace the numpy that makes the frames: they are made
        # once at trace time and enter the graph as literal values.
        values = _constant_values(skeleton, frames)
        return torch.tensor(values, dtype=torch.float64, device=device).to(dtype).reshape(-1, 3, 3)
    if frames is not None:
        return torch.as_tensor(frame_constants(skeleton, frames, "float64")).to(dtype=dtype, device=device)
    key = ("bone_frame_constants", dtype, device)
    cached = skeleton._torch_cache.get(key)
    if cached is None:
        cached = torch.as_tensor(frame_constants(skeleton, None, "float64").copy()).to(dtype=dtype, device=device)
        skeleton._torch_cache[key] = cached
    return cached


@torch.compiler.assume_constant_result
def _constant_values(skeleton: Skeleton, frames: Any) -> tuple:
    """The constants as a flat tuple of floats (what dynamo can bake into a
    graph; guarded on the skeleton's identity, frames taken as constant)."""
    return tuple(frame_constants(skeleton, frames, "float64").ravel().tolist())
