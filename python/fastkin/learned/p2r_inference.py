"""PoseToRotation's forward pass without torch for one skeleton and
reference: everything that depends only on them (rest and reference poses,
tree biases, masks, the fixed features) is computed once, the geometric
estimate comes from the compiled analytic IK, and the transformer runs in
the compiled kernel IK-GAT uses (its tokens' inputs given, its attention
masks as pair biases). This is what ``predict`` runs when no gradient is
wanted; it matches the torch forward pass (tested)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from ..ik import analytic
from ..kinematics import fk_batch
from ..rotations import matrix_to_quat, matrix_to_rot6d
from ..skeleton import Skeleton
from .pose_to_rotation import twist_part

__all__ = ["PreparedPoseToRotation"]


class PreparedPoseToRotation:
    """A frozen, compiled copy of a :class:`PoseToRotation` for one skeleton
    and one reference pose (float32 network, float64 geometry). Later
    changes to the model are not seen.

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

        from .pose_to_rotation import _FIXED, _FIXED_KIND, _TWIST, _posed, correction_kinds, joint_inputs

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
        features, hops, types, _ = joint_inputs(
            graph, self.parents, rest_positions, reference_positions, reference_positions[None]
        )
        self.fixed = features[0, :, :_FIXED].double().numpy()
        kind, self.aim_end = correction_kinds(self.parents, reference_positions.double().numpy())
        self.twist_joints, self.fixed_joints = np.flatnonzero(kind == _TWIST), np.flatnonzero(kind == _FIXED_KIND)
        self.tree_root = graph.tree_root
        self.parent_or_self = np.where(self.parents >= 0, self.parents, np.arange(j))
        rest = rest_positions.double().numpy()
        lengths = np.linalg.norm(rest - rest[self.parent_or_self], axis=-1)
        bones = lengths > 0
        self.length_scale = max(float(lengths[bones].mean()) if bones.any() else 1.0, 1e-12)
        self.network = _core.IKGATInference(
            _kernel_weights(model, self.fixed, hops[0].numpy(), types[0].numpy(), self.parents),
            model.config["heads"],
            model.config["layers"],
            from_positions=False,
        )

    def __call__(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(B, J, 3)`` finite float positions -> ``(rotations (B, J, 4) xyzw
        float64, root_translation (B, 3))``."""
        positions = np.asarray(positions, dtype=np.float64)
        local, _ = analytic(self.reference_skeleton, positions)
        estimate_world = np.asarray(fk_batch(self.reference_skeleton, local)[0])
        estimate = estimate_world @ self.reference_world.transpose(0, 2, 1)  # R_j = W_j W_ref_jᵀ
        s = self.length_scale
        aim = np.zeros_like(positions)  # unit bone directions of the twist joints (joint_inputs' aim)
        bones = positions[:, self.aim_end[self.twist_joints]] - positions[:, self.twist_joints]
        aim[:, self.twist_joints] = bones / np.maximum(np.linalg.norm(bones, axis=-1, keepdims=True), 1e-12)
        dynamic = [(positions - positions[:, self.tree_root]) / s, (positions - positions[:, self.parent_or_self]) / s,
                   matrix_to_rot6d(estimate), aim]
        rotation = np.empty((len(positions), self.skeleton.num_joints, 3, 3), np.float32)
        self.network.forward(np.concatenate(dynamic, -1).astype(np.float32), rotation)
        # The correction rule (pose_to_rotation._correction) on the joints of each kind only.
        correction = rotation.astype(np.float64)
        correction[:, self.fixed_joints] = np.eye(3)
        correction[:, self.twist_joints] = twist_part(correction[:, self.twist_joints], aim[:, self.twist_joints])
        world = correction @ estimate_world  # C R_est W_ref = C W_est
        parent_world = world[:, self.parent_or_self]
        local = np.where((self.parents >= 0)[None, :, None, None], parent_world.transpose(0, 1, 3, 2) @ world, world)
        root = positions[:, self.first_root] - self.skeleton.offsets[self.first_root]
        return matrix_to_quat(np.ascontiguousarray(local)), root


def _kernel_weights(model: Any, fixed: np.ndarray, hops: np.ndarray, types: np.ndarray, parents: np.ndarray) -> dict:
    """The model's tensors for one skeleton in the layout of the compiled
    transformer (``_core.IKGATInference`` with given token features): the
    fixed features' share of the embedding becomes a per-joint bias, the
    shared embedding and head are repeated per joint, and each layer's tree
    biases become a pair bias, -1e30 where its mask (chain or whole body)
    forbids attention."""
    from .pose_to_rotation import _CHAIN_TYPES, _FIXED

    state = {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}
    j = len(parents)
    embed = state["embed.weight"]  # (width, features): the first _FIXED are fixed per joint
    weights = {
        "embed_weight": np.broadcast_to(embed[:, _FIXED:].T, (j, *embed[:, _FIXED:].T.shape)),
        "embed_bias": fixed @ embed[:, :_FIXED].T + state["embed.bias"],
        "head_weight": np.broadcast_to(state["head.weight"].T, (j, *state["head.weight"].T.shape)),
        "head_bias": np.broadcast_to(state["head.bias"], (j, 6)),
        "norm.weight": state["norm.weight"],
        "norm.bias": state["norm.bias"],
    }
    chain = np.isin(types, _CHAIN_TYPES)
    for index in range(model.config["layers"]):
        key = f"blocks.{index}."
        weights.update({k: v for k, v in state.items() if k.startswith(key) and "_bias." not in k})
        bias = state[key + "hop_bias.weight"][hops] + state[key + "type_bias.weight"][types]  # (J, J, H)
        allowed = (chain if index % 2 == 0 else np.ones_like(chain)) | np.eye(j, dtype=bool)
        weights[key + "pair_bias"] = np.where(allowed[..., None], bias, -1e30).transpose(2, 0, 1)
    weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    weights["parents"] = np.where(parents >= 0, parents, np.arange(j)).astype(np.int32)
    weights["has_bone"] = np.ones(j, dtype=bool)  # unused: the features are given
    weights["blocked"] = np.zeros((j, j), dtype=bool)  # the masks are in the pair biases
    return weights
