"""torch front door of lbs and dqs: custom ops over the compiled kernels for
CPU tensors (forward and backward are both C++), a torch-native path for
other devices. Imported on first use, so ``import fastkin`` never needs torch."""

from __future__ import annotations

import torch

from . import _core
from ._torch_ops import _like, host
from .rotations import matrix_to_quat, quat_multiply
from .skinning import _check_transforms_shape, index_array, raise_nonfinite, warn_unnormalized

_FLOATS = (torch.float32, torch.float64)


def _batch_shape(transforms: torch.Tensor) -> tuple[int, ...]:
    return tuple(transforms.shape[:-2] if transforms.shape[-1] == 8 else transforms.shape[:-3])


@torch.library.custom_op("fastkin::skin", mutates_args=(), device_types="cpu")
def skin_op(
    method: str,
    transforms: torch.Tensor,
    vertices: torch.Tensor,
    joint_indices: torch.Tensor,
    weights: torch.Tensor,
    points: bool,
) -> torch.Tensor:
    """Skinned vertices (..., V, 3); transforms are (..., J, 3, 4) matrices
    for method "linear" and (..., J, 8) dual quaternions for "dual_quaternion"."""
    out = transforms.new_empty(_batch_shape(transforms) + (joint_indices.shape[0], 3))
    finite, unnormalized, _ = _core.skin_forward(
        method, host(transforms), host(vertices), host(joint_indices), host(weights), points, host(out)
    )
    warn_unnormalized(unnormalized, stacklevel=2)
    if not finite:
        raise_nonfinite(method, transforms, vertices if points else None, None if points else vertices)
    return out


@skin_op.register_fake
def _skin_fake(method, transforms, vertices, joint_indices, weights, points):
    return transforms.new_empty(_batch_shape(transforms) + (joint_indices.shape[0], 3))


@torch.library.custom_op("fastkin::skin_backward", mutates_args=(), device_types="cpu")
def skin_backward_op(
    method: str,
    transforms: torch.Tensor,
    vertices: torch.Tensor,
    joint_indices: torch.Tensor,
    weights: torch.Tensor,
    points: bool,
    grad_out: torch.Tensor,
    want_vertices: bool,
    want_weights: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients with respect to (transforms, vertices, weights) of
    fastkin::skin; the last two are empty when not wanted."""
    grad_transforms, grad_vertices, grad_weights = _backward_outputs(
        transforms, vertices, weights, want_vertices, want_weights
    )
    ok = _core.skin_backward(
        method,
        host(transforms),
        host(vertices),
        host(joint_indices),
        host(weights),
        points,
        host(grad_out),
        host(grad_transforms),
        host(grad_vertices) if want_vertices else None,
        host(grad_weights) if want_weights else None,
    )
    if not ok:
        raise ValueError("skinning backward: the incoming gradient or the inputs are not finite")
    return grad_transforms, grad_vertices, grad_weights


@skin_backward_op.register_fake
def _skin_backward_fake(
    method, transforms, vertices, joint_indices, weights, points, grad_out, want_vertices, want_weights
):
    return _backward_outputs(transforms, vertices, weights, want_vertices, want_weights)


def _backward_outputs(transforms, vertices, weights, want_vertices, want_weights):
    def like(t, wanted):
        return torch.empty_like(t, memory_format=torch.contiguous_format) if wanted else t.new_empty((0,))

    return like(transforms, True), like(vertices, want_vertices), like(weights, want_weights)


def _setup_context(ctx, inputs, output):
    method, transforms, vertices, joint_indices, weights, points = inputs
    ctx.save_for_backward(transforms, vertices, joint_indices, weights)
    ctx.method, ctx.points = method, points


def _backward(ctx, grad_out):
    transforms, vertices, joint_indices, weights = ctx.saved_tensors
    want_vertices, want_weights = ctx.needs_input_grad[2], ctx.needs_input_grad[4]
    grad_t, grad_v, grad_w = skin_backward_op(
        ctx.method, transforms, vertices, joint_indices, weights, ctx.points, grad_out, want_vertices, want_weights
    )
    return None, grad_t, grad_v if want_vertices else None, None, grad_w if want_weights else None, None


skin_op.register_autograd(_backward, setup_context=_setup_context)


def skin_torch(method: str, transforms, vertices, joint_indices, weights, normals):
    """fastkin.lbs / fastkin.dqs for torch tensors (checks, then op or native path)."""
    if transforms.dtype not in _FLOATS:
        raise TypeError(f"transforms must be float32 or float64, got {transforms.dtype}")
    _check_transforms_shape(transforms)
    vertices = _like(vertices, "vertices", transforms, "transforms")
    weights = _like(weights, "weights", transforms, "transforms")
    if normals is not None:
        normals = _like(normals, "normals", transforms, "transforms")
    if method == "dual_quaternion":
        transforms = dual_quaternions(transforms)
    indices = _index_tensor(joint_indices)
    if transforms.device.type == "cpu":
        moved = skin_op(method, transforms, vertices, indices, weights, True)
        if normals is None:
            return moved
        turned = skin_op(method, transforms, normals, indices, weights, False)
    else:
        indices = indices.to(device=transforms.device, dtype=torch.int64)
        moved = skin_torch_native(method, transforms, vertices, indices, weights, True)
        if normals is None:
            return moved
        turned = skin_torch_native(method, transforms, normals, indices, weights, False)
    return moved, turned / turned.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(turned.dtype).tiny)


def _index_tensor(joint_indices) -> torch.Tensor:
    """joint_indices as an int32 CPU tensor (the kernels check the range)."""
    if not isinstance(joint_indices, torch.Tensor):
        return torch.from_numpy(index_array(joint_indices))
    if joint_indices.dtype == torch.int32 and joint_indices.device.type == "cpu":
        return joint_indices
    if joint_indices.is_floating_point() or joint_indices.is_complex() or joint_indices.dtype == torch.bool:
        raise TypeError(f"joint_indices must be an integer tensor, got {joint_indices.dtype}")
    limit = torch.iinfo(torch.int32).max
    if not torch.compiler.is_compiling() and bool(((joint_indices < 0) | (joint_indices > limit)).any()):
        raise ValueError(f"joint_indices holds values outside [0, {limit}], which are no joint indices")
    return joint_indices.to(device="cpu", dtype=torch.int32)


def dual_quaternions(transforms: torch.Tensor) -> torch.Tensor:
    """(..., J, 8) unit dual quaternions (real xyzw, dual xyzw) of rigid
    (..., J, 3, 4) transforms, differentiable; non-rigid ones raise."""
    rotation = transforms[..., :3]
    eye = torch.eye(3, dtype=transforms.dtype, device=transforms.device)
    error = (rotation.transpose(-1, -2) @ rotation - eye).abs().amax(dim=(-1, -2))
    bad = (error > 1e-4) | (torch.linalg.det(rotation.detach()) <= 0)
    if not torch.compiler.is_compiling() and bool(bad.any()):
        index = [int(i) for i in torch.nonzero(bad)[0]]
        raise ValueError(
            f"transforms{index} is not rigid (a rotation and a translation): dual quaternion skinning needs rigid "
            "transforms; use lbs for scaled or sheared ones"
        )
    real = matrix_to_quat(rotation)
    translation = torch.cat([transforms[..., 3], torch.zeros_like(transforms[..., :1, 3])], dim=-1)
    return torch.cat([real, 0.5 * quat_multiply(translation, real)], dim=-1)


def skin_torch_native(method: str, transforms, vertices, joint_indices, weights, points: bool):
    """lbs / dqs in plain torch operations (autograd by torch): the path for
    CUDA and other non-CPU tensors, with the semantics of the compiled kernels
    (transforms for "dual_quaternion" are (..., J, 8))."""
    gathered = transforms[..., joint_indices, :, :] if method == "linear" else transforms[..., joint_indices, :]
    w = weights / weights.sum(dim=-1, keepdim=True)
    if method == "linear":
        blended = (gathered * w[..., None, None]).sum(dim=-3)  # (..., V, 3, 4)
        moved = (blended[..., :3] @ vertices[..., None])[..., 0]
        return moved + blended[..., 3] if points else moved
    first = gathered[..., :1, :4]
    sign = torch.where((gathered[..., :4] * first).sum(dim=-1) < 0, -1.0, 1.0).to(w.dtype)
    blend = (gathered * (sign * w)[..., None]).sum(dim=-2)  # (..., V, 8)
    r, r_w, d, d_w = blend[..., :3], blend[..., 3:4], blend[..., 4:7], blend[..., 7:8]
    scale = 2.0 / (blend[..., :4] * blend[..., :4]).sum(dim=-1, keepdim=True)
    u = torch.cross(r, vertices.expand_as(r), dim=-1) + r_w * vertices
    quadratic = torch.cross(r, u, dim=-1)
    if points:
        quadratic = quadratic + r_w * d - d_w * r + torch.cross(r, d, dim=-1)
    return vertices + scale * quadratic
