"""One array vocabulary over numpy and torch, so each rotation formula is
written once and serves both (torch keeps autograd through it)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def is_torch(x: Any) -> bool:
    """True when ``x`` is a torch tensor (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def as_float_array(x: Any, name: str, last_dims: tuple[int, ...]) -> Any:
    """``x`` as a floating numpy array or torch tensor whose trailing shape is
    ``last_dims``; integer numpy input becomes float64, other bad input raises."""
    if is_torch(x):
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    else:
        x = np.asarray(x)
        if x.dtype.kind in "iub":
            x = x.astype(np.float64)
        elif x.dtype.kind != "f":
            raise TypeError(f"{name} must be a real floating-point array, got dtype {x.dtype}")
    n = len(last_dims)
    if x.ndim < n or tuple(x.shape[x.ndim - n :]) != last_dims:
        want = ", ".join(str(d) for d in last_dims)
        raise ValueError(f"{name} must have shape (..., {want}), got {tuple(x.shape)}")
    return x


def read_only(array: np.ndarray) -> np.ndarray:
    """A C-contiguous, read-only version of ``array`` (for immutable data)."""
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


class _Numpy:
    @staticmethod
    def stack(xs, axis):
        return np.stack(xs, axis=axis)

    @staticmethod
    def concat(xs, axis):
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def sum(x, axis, keepdims=False):
        return np.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def transpose(x):
        return np.swapaxes(x, -1, -2)

    @staticmethod
    def clip(x, lo, hi):
        return np.clip(x, lo, hi)

    @staticmethod
    def full_like(x, value):
        return np.full_like(x, value)

    @staticmethod
    def tiny(x):
        return float(np.finfo(x.dtype).tiny)

    @staticmethod
    def eps(x):
        return float(np.finfo(x.dtype).eps)

    sqrt = staticmethod(np.sqrt)
    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    atan2 = staticmethod(np.arctan2)
    acos = staticmethod(np.arccos)
    where = staticmethod(np.where)
    abs = staticmethod(np.abs)
    matmul = staticmethod(np.matmul)
    argmax = staticmethod(np.argmax)
    pi = np.pi


class _Torch:
    def __init__(self):
        import torch

        self.torch = torch
        self.sqrt = torch.sqrt
        self.sin = torch.sin
        self.cos = torch.cos
        self.atan2 = torch.atan2
        self.acos = torch.acos
        self.abs = torch.abs
        self.matmul = torch.matmul
        self.argmax = torch.argmax
        self.pi = np.pi

    def stack(self, xs, axis):
        return self.torch.stack(xs, dim=axis)

    def concat(self, xs, axis):
        return self.torch.cat(xs, dim=axis)

    def sum(self, x, axis, keepdims=False):
        return x.sum(dim=axis, keepdim=keepdims)

    def transpose(self, x):
        return x.transpose(-1, -2)

    def clip(self, x, lo, hi):
        return self.torch.clamp(x, lo, hi)

    def full_like(self, x, value):
        return self.torch.full_like(x, value)

    def where(self, cond, a, b):
        return self.torch.where(cond, a, b)

    def tiny(self, x):
        return float(self.torch.finfo(x.dtype).tiny)

    def eps(self, x):
        return float(self.torch.finfo(x.dtype).eps)


_NUMPY = _Numpy()
_TORCH: _Torch | None = None


def namespace(x: Any):
    """The vocabulary for ``x``'s library."""
    global _TORCH
    if is_torch(x):
        if _TORCH is None:
            _TORCH = _Torch()
        return _TORCH
    return _NUMPY
