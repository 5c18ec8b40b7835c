"""torch front door of the compiled rotation conversions: custom ops for CPU
tensors whose forward and backward are both C++ (fastkin.rotations uses
them for CPU float32 / float64 tensors; other tensors take its array
formulas). Imported on first use, so ``import fastkin`` never needs torch."""

from __future__ import annotations

import torch

from . import _core
from ._torch_ops import host


def _quaternions_like(axis_angle: torch.Tensor) -> torch.Tensor:
    return axis_angle.new_empty(axis_angle.shape[:-1] + (4,))


@torch.library.custom_op("fastkin::axis_angle_to_quat", mutates_args=(), device_types="cpu")
def axis_angle_to_quat_op(axis_angle: torch.Tensor) -> torch.Tensor:
    """xyzw quaternions (..., 4) of axis-angles (..., 3); see fastkin.rotations.axis_angle_to_quat."""
    quaternions = _quaternions_like(axis_angle)
    _core.axis_angle_to_quat(host(axis_angle), host(quaternions))
    return quaternions


@axis_angle_to_quat_op.register_fake
def _axis_angle_to_quat_fake(axis_angle):
    return _quaternions_like(axis_angle)


@torch.library.custom_op("fastkin::axis_angle_to_quat_backward", mutates_args=(), device_types="cpu")
def axis_angle_to_quat_backward_op(axis_angle: torch.Tensor, grad_quaternions: torch.Tensor) -> torch.Tensor:
    """Gradient (..., 3) with respect to the axis-angles of fastkin::axis_angle_to_quat."""
    grad_axis_angle = torch.empty_like(axis_angle, memory_format=torch.contiguous_format)
    _core.axis_angle_to_quat_backward(host(axis_angle), host(grad_quaternions), host(grad_axis_angle))
    return grad_axis_angle


@axis_angle_to_quat_backward_op.register_fake
def _axis_angle_to_quat_backward_fake(axis_angle, grad_quaternions):
    return torch.empty_like(axis_angle, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _backward(ctx, grad_quaternions):
    (axis_angle,) = ctx.saved_tensors
    return axis_angle_to_quat_backward_op(axis_angle, grad_quaternions)


axis_angle_to_quat_op.register_autograd(_backward, setup_context=_setup_context)
