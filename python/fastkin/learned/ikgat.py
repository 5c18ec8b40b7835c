"""IK-GAT: joint positions -> local rotations in one forward pass, by graph
attention over a known skeleton (see docs/learned.md for the design)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .._backend import is_torch
from .. import _core
from ..bone_frames import bone_frames, bone_world_to_local, frame_constants
from ..rotations import matrix_to_quat, matrix_to_rot6d, rot6d_to_matrix
from ..skeleton import Skeleton
from .attention_block import PreNormBlock
from .augment import aligned_frames

__all__ = ["IKGAT", "hop_distances"]


class IKGAT(nn.Module):
    """Graph-attention IK for one skeleton (its hierarchy and rest frames;
    bone lengths may vary: inputs are normalised by the mean bone length).

    Each joint is a token whose input is its root-relative position and its
    offset from its parent, divided by the pose's mean bone length, embedded
    by a per-joint linear map. ``layers`` pre-norm transformer blocks follow,
    whose multi-head attention is restricted to joints within ``hops`` edges
    of each other on the parent-child graph, with a learned bias per head and
    joint pair. A per-joint linear head gives a 6D rotation (first two
    columns) in the joint's bone-aligned world frame (see
    :func:`fastkin.local_to_bone_world`), turned into local rotations with
    :func:`fastkin.bone_world_to_local`.

    Args:
        skeleton: the :class:`fastkin.Skeleton` the model is for.
        width: token width.
        layers: number of attention blocks.
        heads: attention heads per block (must divide ``width``).
        hops: attention reach on the skeleton graph.
        expansion: hidden width of each block's MLP, as a multiple of ``width``.

    Example:
        >>> import numpy as np, fastkin
        >>> from fastkin.learned import IKGAT
        >>> walk = fastkin.data.default_motion()
        >>> model = IKGAT(walk.skeleton, width=16, layers=1)
        >>> rotations, root = model.predict(walk.positions()[:4])
        >>> rotations.shape, root.shape
        ((4, 38, 4), (4, 3))
    """

    parents: torch.Tensor  # (J,) buffers: each joint's parent (roots: themselves),
    has_bone: torch.Tensor  # whether its offset from the parent has a length,
    blocked: torch.Tensor  # and (J, J): pairs too many hops apart to attend

    def __init__(self, skeleton: Skeleton, width: int = 64, layers: int = 4, heads: int = 4, hops: int = 3,
                 expansion: int = 2) -> None:
        super().__init__()
        if not isinstance(skeleton, Skeleton):
            raise TypeError(f"skeleton must be a fastkin.Skeleton, got {type(skeleton).__name__}")
        for name, value in (("width", width), ("layers", layers), ("heads", heads), ("hops", hops),
                            ("expansion", expansion)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if width % heads:
            raise ValueError(f"heads ({heads}) must divide width ({width})")
        self.skeleton = skeleton
        self.config = dict(width=width, layers=layers, heads=heads, hops=hops, expansion=expansion)
        j = skeleton.num_joints
        parents = np.asarray(skeleton.parents)
        self.register_buffer("parents", torch.from_numpy(np.where(parents < 0, np.arange(j), parents)))
        lengths = np.linalg.norm(skeleton.offsets, axis=1)
        self.register_buffer("has_bone", torch.from_numpy((parents >= 0) & (lengths > 1e-9 * max(lengths.max(), 1e-300))))
        reach = torch.from_numpy(hop_distances(parents) <= hops)
        self.register_buffer("blocked", ~reach)
        self.embed_weight = nn.Parameter(torch.randn(j, 6, width) / math.sqrt(6))
        self.embed_bias = nn.Parameter(torch.zeros(j, width))
        self.blocks = nn.ModuleList(_Block(width, heads, expansion, j) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head_weight = nn.Parameter(torch.zeros(j, width, 6))
        # Untrained, the model answers the rest pose.
        rest = matrix_to_rot6d(torch.from_numpy(bone_frames(skeleton)).float())
        self.head_bias = nn.Parameter(rest.clone())
        # Walking the module tree on every predict call costs more than a small forward pass.
        self._parameter_list = list(self.parameters())

    def features(self, positions: torch.Tensor) -> torch.Tensor:
        """``(B, J, 6)`` token inputs of ``(B, J, 3)`` positions: root-relative
        position and offset from the parent, over the mean bone length."""
        relative = positions - positions[:, :1]
        from_parent = positions - positions[:, self.parents]
        bones = from_parent[:, self.has_bone].norm(dim=-1)
        scale = bones.mean(dim=1).clamp_min(1e-12)[:, None, None] if bones.shape[1] else 1.0
        return torch.cat([relative, from_parent], dim=-1) / scale

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """``(B, J, 3)`` positions -> ``(B, J, 3, 3)`` bone-aligned world rotations."""
        x = torch.einsum("bjf,jfw->bjw", self.features(positions), self.embed_weight) + self.embed_bias
        for block in self.blocks:
            x = block(x, self.blocked)
        x = self.norm(x)
        rot6d = torch.einsum("bjw,jwk->bjk", x, self.head_weight) + self.head_bias
        return rot6d_to_matrix(rot6d)

    def num_parameters(self) -> int:
        """The number of trained parameters.

        Example:
            >>> import fastkin
            >>> from fastkin.learned import IKGAT
            >>> IKGAT(fastkin.data.default_motion().skeleton).num_parameters() > 100_000
            True
        """
        return sum(p.numel() for p in self.parameters())

    def predict(self, positions: Any, *, skeleton: Skeleton | None = None, refine: bool = False,
                refine_iters: int = 5, batch_size: int = 4096) -> tuple[Any, Any]:
        """Local rotations and root translation for joint positions.

        Args:
            positions: ``(..., J, 3)`` joint positions (numpy or torch).
            skeleton: the body the positions belong to, if its bone lengths
                differ from the model's skeleton (same hierarchy); its rest
                frames turn the prediction into local rotations and
                ``refine`` fits its bones.
            refine: start :func:`fastkin.ik.solve` from the prediction for
                ``refine_iters`` iterations, so that the pose reaches the
                positions exactly while the twist stays learned.
            batch_size: frames per forward pass.

        Returns:
            ``(rotations (..., J, 4) xyzw, root_translation (..., 3))``:
            numpy for numpy input (float64), torch for torch input (its dtype).
            With torch input and gradients enabled (and no ``refine``) the
            result is differentiable with respect to the positions and the
            model's parameters (the torch forward pass); otherwise the
            compiled forward pass (:class:`CompiledIKGAT`) runs, about ten
            times faster.
        """
        skeleton = self._body(skeleton)
        torch_in = is_torch(positions)
        if not torch_in:
            positions = np.asarray(positions)
            if positions.dtype.kind != "f":
                raise TypeError(f"positions must be floating point, got {positions.dtype}")
        elif not positions.dtype.is_floating_point:
            raise TypeError(f"positions must be floating point, got {positions.dtype}")
        j = self.skeleton.num_joints
        if positions.ndim < 2 or tuple(positions.shape[-2:]) != (j, 3):
            raise ValueError(f"positions must have shape (..., {j}, 3), got {tuple(positions.shape)}")
        if not bool((abs(positions) < float("inf")).all()):  # False for NaN too
            raise ValueError("positions must be finite (they hold NaN or infinity)")
        batch = tuple(positions.shape[:-2])
        differentiable = torch_in and torch.is_grad_enabled() and not refine
        if differentiable or any(p.device.type != "cpu" for p in self._parameter_list):
            flat = positions.reshape(-1, j, 3) if torch_in else torch.from_numpy(positions.reshape(-1, j, 3))
            local = self._local_torch(flat, skeleton, batch_size, differentiable).to(torch.float64)
            rotations = matrix_to_quat(local)
            root = flat[:, 0].to(torch.float64).cpu() - torch.from_numpy(np.array(skeleton.offsets[0]))
            if refine:
                rotations, root = map(torch.from_numpy, _refine(skeleton, flat.detach().cpu().numpy(),
                                                                rotations.detach().numpy(), root.detach().numpy(),
                                                                refine_iters))
        else:  # the compiled forward pass: numpy only, no torch at call time
            flat = (positions.detach().cpu().numpy() if torch_in else positions).reshape(-1, j, 3)
            # float32 throughout, like the network: one cast at the end.
            rotations = matrix_to_quat(self._local_compiled(flat, skeleton)).astype(np.float64)
            root = flat[:, 0].astype(np.float64) - skeleton.offsets[0]
            if refine:
                rotations, root = _refine(skeleton, flat, rotations, root, refine_iters)
        rotations, root = rotations.reshape(*batch, j, 4), root.reshape(*batch, 3)
        if torch_in:
            as_torch = lambda a: (a if is_torch(a) else torch.from_numpy(a)).to(positions.dtype)  # noqa: E731
            return as_torch(rotations), as_torch(root)
        return rotations, root

    def _local_torch(self, flat: torch.Tensor, skeleton: Skeleton, batch_size: int, grad: bool) -> torch.Tensor:
        device = next(self.parameters()).device
        frames = None if skeleton is self.skeleton else aligned_frames(skeleton, self.skeleton)
        with torch.set_grad_enabled(grad):
            parts = [bone_world_to_local(skeleton, self(flat[i : i + batch_size].to(device, torch.float32)).cpu(),
                                         frames=frames) for i in range(0, len(flat), batch_size)]
        return torch.cat(parts) if parts else torch.empty(0, skeleton.num_joints, 3, 3)

    def _local_compiled(self, flat: np.ndarray, skeleton: Skeleton) -> np.ndarray:
        """Local rotations (float32) through :class:`CompiledIKGAT`, rebuilt
        whenever a parameter has changed since the last call."""
        from .fast_inference import CompiledIKGAT

        # In-place updates bump _version; .to() and friends move the storage.
        stamp = (self._parameter_list[0].data_ptr(), tuple(p._version for p in self._parameter_list))
        if getattr(self, "_compiled_stamp", None) != stamp:
            self._compiled = CompiledIKGAT(self)
            self._compiled_stamp = stamp
        world = self._compiled.bone_rotations(np.ascontiguousarray(flat, dtype=np.float32))
        # The frame constants of this body (validated once, cached on it).
        key = ("ikgat_frame_constants", id(self.skeleton))
        cached = skeleton._torch_cache.get(key)
        if cached is None or cached[0] is not self.skeleton:
            frames = None if skeleton is self.skeleton else aligned_frames(skeleton, self.skeleton)
            cached = skeleton._torch_cache[key] = (self.skeleton, frame_constants(skeleton, frames, np.float32))
        local = np.empty_like(world)
        if not _core.bone_world_to_local(skeleton.parents, world, cached[1], local):
            raise ValueError("the network's output is not finite (are the positions extreme?)")
        return local

    def _body(self, skeleton: Skeleton | None) -> Skeleton:
        if skeleton is None:
            return self.skeleton
        if not isinstance(skeleton, Skeleton):
            raise TypeError(f"skeleton must be a fastkin.Skeleton, got {type(skeleton).__name__}")
        if not np.array_equal(skeleton.parents, self.skeleton.parents):
            raise ValueError("skeleton must have the model skeleton's hierarchy (the same parents)")
        return skeleton


class _Block(PreNormBlock):
    """Pre-norm attention over the skeleton graph, then an MLP; a learned
    bias per head and joint pair."""

    pair_bias: nn.Parameter

    def __init__(self, width: int, heads: int, expansion: int, joints: int) -> None:
        super().__init__(width, heads, expansion, {"pair_bias": nn.Parameter(torch.zeros(heads, joints, joints))})

    def forward(self, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        return self.attend(x, self.pair_bias.masked_fill(blocked, float("-inf")))


def hop_distances(parents: Any) -> np.ndarray:
    """``(J, J)`` number of parent-child edges between every pair of joints
    (a large number between trees of a forest).

    Example:
        >>> from fastkin.learned import hop_distances
        >>> hop_distances([-1, 0, 1, 0])
        array([[0, 1, 2, 1],
               [1, 0, 1, 2],
               [2, 1, 0, 3],
               [1, 2, 3, 0]])
    """
    parents = np.asarray(parents)
    j = len(parents)
    far = 1 << 20
    distance = np.full((j, j), far, dtype=np.int64)
    np.fill_diagonal(distance, 0)
    for child, parent in enumerate(parents):
        if parent >= 0:
            distance[child, parent] = distance[parent, child] = 1
    for k in range(j):  # Floyd-Warshall: J is small
        distance = np.minimum(distance, distance[:, k : k + 1] + distance[k : k + 1, :])
    return np.minimum(distance, far)


def _refine(skeleton: Skeleton, positions: np.ndarray, rotations: np.ndarray, root: np.ndarray,
            iterations: int) -> tuple[np.ndarray, np.ndarray]:
    from ..ik import solve

    as64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    result = solve(skeleton, as64(positions), init=as64(rotations), init_root=as64(root), max_iters=iterations)
    return result.rotations, result.root_translation
