"""PoseToRotation's forward pass in numpy for one skeleton and reference:
everything that depends only on them (rest and reference poses, tree
biases, masks, the fixed features) is computed once, the geometric estimate
comes from the compiled analytic IK, and what is left is a few small matrix
products per layer. This is what ``predict`` runs when no gradient is
wanted; it matches the torch forward pass (tested)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ik import analytic
from ..kinematics import fk_batch
from ..rotations import matrix_to_quat, matrix_to_rot6d, rot6d_to_matrix
from ..skeleton import Skeleton

__all__ = ["PreparedPoseToRotation"]


class PreparedPoseToRotation:
    """A frozen numpy copy of a :class:`PoseToRotation` for one skeleton and
    one reference pose. Later changes to the model are not seen.

    Example:
        >>> import fastkin
        >>> from fastkin.learned import PoseToRotation, PreparedPoseToRotation
        >>> walk = fastkin.data.default_motion()
        >>> fast = PreparedPoseToRotation(PoseToRotation(width=16, layers=2), walk.skeleton, walk.rotations[0])
        >>> rotations, root = fast(walk.positions()[:3])
        >>> rotations.shape, root.shape
        ((3, 38, 4), (3, 3))
    """

    def __init__(self, model: Any, skeleton: Skeleton, reference: np.ndarray, reference_root: Any = None) -> None:
        import torch

        from .pose_to_rotation import _CHAIN_TYPES, _posed, joint_inputs

        self.skeleton = skeleton
        j = skeleton.num_joints
        self.parents = np.asarray(skeleton.parents)
        self.first_root = int(skeleton.roots[0])
        # The estimate is analytic IK of a skeleton whose rest pose is the reference.
        self.reference_skeleton = Skeleton(skeleton.parents, skeleton.offsets, reference, skeleton.names)
        cpu = torch.device("cpu")
        root = np.zeros(3) if reference_root is None else np.asarray(reference_root, dtype=np.float64)
        reference_world, reference_positions = _posed(skeleton, reference, root, cpu)
        self.reference_world = reference_world.double().numpy()
        graph = model._graph(skeleton)
        rest_positions = _posed(skeleton, skeleton.rest_rotations, np.zeros(3), cpu)[1]
        # The features that do not depend on the pose: any pose gives them.
        features, hops, types, _ = joint_inputs(graph, self.parents, rest_positions, reference_positions,
                                                reference_positions[None])
        self.fixed = features[0, :, :15].double().numpy()
        self.tree_root = graph.tree_root
        self.parent_or_self = np.where(self.parents >= 0, self.parents, np.arange(j))
        rest = rest_positions.double().numpy()
        lengths = np.linalg.norm(rest - rest[self.parent_or_self], axis=-1)
        bones = lengths > 0
        self.length_scale = max(float(lengths[bones].mean()) if bones.any() else 1.0, 1e-12)
        # float32 like the torch model; weights stored transposed for x @ W.
        state = {k: (v.detach().float().numpy().T.copy() if k.endswith(".weight") and v.ndim == 2 and "bias" not in k
                     else v.detach().float().numpy()) for k, v in model.state_dict().items()}
        self.heads = model.config["heads"]
        chain = np.isin(types[0].numpy(), _CHAIN_TYPES)
        self.blocks = []
        for index in range(model.config["layers"]):
            key = f"blocks.{index}."
            bias = (state[key + "hop_bias.weight"][hops[0].numpy()] + state[key + "type_bias.weight"][types[0].numpy()])
            allowed = chain if index % 2 == 0 else np.ones_like(chain)
            bias = np.where(allowed[..., None], bias, -np.inf).transpose(2, 0, 1).astype(np.float32)  # (H, J, J)
            self.blocks.append({name: state[key + name] for name in (
                "norm1.weight", "norm1.bias", "qkv.weight", "qkv.bias", "out.weight", "out.bias", "norm2.weight",
                "norm2.bias", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias")} | {"bias": bias})
        self.state = state

    def __call__(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(B, J, 3)`` finite float positions -> ``(rotations (B, J, 4) xyzw
        float64, root_translation (B, 3))``."""
        positions = np.asarray(positions, dtype=np.float64)
        local, _ = analytic(self.reference_skeleton, positions)
        estimate_world = np.asarray(fk_batch(self.reference_skeleton, local)[0])
        estimate = estimate_world @ self.reference_world.transpose(0, 2, 1)  # R_j = W_j W_ref_jᵀ
        s = self.length_scale
        current = np.concatenate([(positions - positions[:, self.tree_root]) / s,
                                  (positions - positions[:, self.parent_or_self]) / s], -1)
        six = matrix_to_rot6d(estimate)
        b = len(positions)
        x = np.concatenate([np.broadcast_to(self.fixed, (b, *self.fixed.shape)), current, six], -1)
        x = x.astype(np.float32) @ self.state["embed.weight"] + self.state["embed.bias"]
        for block in self.blocks:
            x = x + self._attention(_layer_norm(x, block["norm1.weight"], block["norm1.bias"]), block)
            h = _layer_norm(x, block["norm2.weight"], block["norm2.bias"]) @ block["mlp.0.weight"] + block["mlp.0.bias"]
            h = h / (1.0 + np.exp(-h))  # SiLU
            x = x + h @ block["mlp.2.weight"] + block["mlp.2.bias"]
        r6 = _layer_norm(x, self.state["norm.weight"], self.state["norm.bias"]) @ self.state["head.weight"]
        world = rot6d_to_matrix((r6 + self.state["head.bias"]).astype(np.float64)) @ estimate @ self.reference_world
        parent_world = world[:, self.parent_or_self]
        local = np.where((self.parents >= 0)[None, :, None, None], parent_world.transpose(0, 1, 3, 2) @ world, world)
        root = positions[:, self.first_root] - self.skeleton.offsets[self.first_root]
        return matrix_to_quat(np.ascontiguousarray(local)), root

    def _attention(self, h: np.ndarray, block: dict) -> np.ndarray:
        b, j, w = h.shape
        qkv = (h @ block["qkv.weight"] + block["qkv.bias"]).reshape(b, j, 3, self.heads, w // self.heads)
        q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each (B, H, J, D)
        scores = q @ (k.transpose(0, 1, 3, 2) * np.float32(1.0 / np.sqrt(w // self.heads))) + block["bias"]
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attended = (scores @ v) / scores.sum(-1, keepdims=True)
        return attended.transpose(0, 2, 1, 3).reshape(b, j, w) @ block["out.weight"] + block["out.bias"]


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    width = x.shape[-1]
    centred = x - np.add.reduce(x, -1, keepdims=True) * np.float32(1.0 / width)
    variance = np.einsum("...i,...i->...", centred, centred)[..., None] * np.float32(1.0 / width)
    return centred * (weight / np.sqrt(variance + np.float32(1e-5))) + bias
