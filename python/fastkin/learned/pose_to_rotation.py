"""PoseToRotation: joint positions of any skeleton -> local rotations, given
the skeleton's rest pose and one reference (pose, rotation) pair of it, with
global-local graph-guided attention (GL-GMHA; docs/learned.md has the design).

The network never sees a local axis convention. It reads world-space
quantities only (rest, reference and current joint positions) and predicts,
per joint, the world rotation ``R_j`` that carries the joint's frame from the
reference pose to the current one. The reference rotations then fix the
convention exactly: ``W_j = R_j W_ref_j`` and ``L_j = W_parent(j)ᵀ W_j``.
So a skeleton whose joint frames are re-oriented gets its own rotations back
(a property the tests check), and at the reference pose an untrained model
answers the reference rotations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._backend import is_torch, namespace
from ..kinematics import fk_batch
from ..rotations import matrix_to_quat, matrix_to_rot6d, quat_to_matrix, rot6d_to_matrix
from ..skeleton import Skeleton
from .attention_block import PreNormBlock
from .ikgat import hop_distances

__all__ = ["PoseToRotation", "SkeletonGraph", "EDGE_TYPES", "joint_inputs", "pad_inputs", "swing_estimate",
           "correction_kinds", "twist_part"]

# How key joint k relates to query joint j: the attention bias of each layer
# and head is learned per type (and per hop distance).
EDGE_TYPES = ("self", "parent", "child", "ancestor", "descendant", "same tree", "other tree")
# Local layers attend along a joint's kinematic chain: these types.
_CHAIN_TYPES = (0, 1, 2, 3, 4)
# Per-joint input features (all world-space, root-relative, over the rest
# pose's mean bone length). Fixed per skeleton and reference: rest and
# reference position and bone vector (3 each), bone length at rest, root and
# leaf flags, and the correction's kind (one-hot, see _correction). Per pose:
# current position and bone vector, the 6D of the geometric estimate
# (swing_estimate) the network corrects, and the unit direction of the bone
# a twist turns about.
_FIXED = 18
_KIND = slice(15, 18)
_ESTIMATE = slice(24, 30)
_AIM = slice(30, 33)
_FEATURES = 33
# The correction a joint may get, by how many bones aim it (swing_estimate):
# none -> any rotation (nothing in the positions fixes it); one -> a twist
# about that bone only (its direction is exact); several -> none (they fix
# the rotation).
_FREE, _TWIST, _FIXED_KIND = 0, 1, 2


class SkeletonGraph:
    """The tree relations PoseToRotation attends with, for one skeleton:
    ``hops (J, J)`` edge counts (clipped), ``types (J, J)`` indices into
    :data:`EDGE_TYPES`, ``tree_root (J,)`` and ``is_leaf (J,)``.

    Example:
        >>> from fastkin.learned import SkeletonGraph, EDGE_TYPES
        >>> graph = SkeletonGraph([-1, 0, 1, 0], max_hops=8)
        >>> [EDGE_TYPES[t] for t in graph.types[1]]
        ['parent', 'self', 'child', 'same tree']
    """

    def __init__(self, parents: Any, max_hops: int) -> None:
        parents = np.asarray(parents, dtype=np.int64)
        j = len(parents)
        self.hops = np.minimum(hop_distances(parents), max_hops + 1)  # max_hops + 1: farther, or another tree
        ancestor = np.zeros((j, j), dtype=bool)  # ancestor[a, b]: b is a or above it
        tree_root = np.arange(j)
        for joint, parent in enumerate(parents):
            if parent >= 0:
                ancestor[joint] = ancestor[parent]
                tree_root[joint] = tree_root[parent]
            ancestor[joint, joint] = True
        same_tree = tree_root[:, None] == tree_root[None, :]
        types = np.where(same_tree, 5, 6)
        types[ancestor.T & ~np.eye(j, dtype=bool)] = 4  # descendants
        types[ancestor & ~np.eye(j, dtype=bool)] = 3
        rows = np.arange(j)
        has_parent = parents >= 0
        types[rows[has_parent], parents[has_parent]] = 1
        types[parents[has_parent], rows[has_parent]] = 2
        types[rows, rows] = 0
        self.types = types
        self.tree_root = tree_root
        self.is_leaf = np.ones(j, dtype=bool)
        self.is_leaf[parents[has_parent]] = False


class PoseToRotation(nn.Module):
    """A skeleton-agnostic pose-to-rotation network (no per-joint or
    per-skeleton parameters).

    Each joint is a token of world-space features: its rest, reference and
    current positions relative to its tree's root and its bone vectors
    (offset from the parent), all over the rest pose's mean bone length.
    ``layers`` pre-norm attention blocks follow, alternating **local** layers
    (a joint attends to its kinematic chain: itself, its ancestors and
    descendants) and **global** layers (every joint of the skeleton), each
    with a learned bias per head for the hop distance and for the edge type
    (:data:`EDGE_TYPES`). The answer is the world rotation from the reference
    pose to the current one: a geometric estimate from the bones
    (:func:`swing_estimate`, which fixes each bone's direction but not its
    twist) times a correction from a shared 6D head (identity at
    initialisation); the reference rotations turn it into local rotations.

    Args:
        width: token width.
        layers: attention blocks (local first, then alternating).
        heads: attention heads (must divide ``width``).
        max_hops: hop distances beyond this share one bias.
        expansion: hidden width of each block's MLP, as a multiple of ``width``.

    Example:
        >>> import fastkin
        >>> from fastkin.learned import PoseToRotation
        >>> walk = fastkin.data.default_motion()
        >>> model = PoseToRotation(width=16, layers=2)
        >>> rotations, root = model.predict(walk.skeleton, walk.positions()[:4],
        ...                                 reference=walk.rotations[0])
        >>> rotations.shape, root.shape
        ((4, 38, 4), (4, 3))
    """

    def __init__(self, width: int = 64, layers: int = 4, heads: int = 4, max_hops: int = 8,
                 expansion: int = 2) -> None:
        super().__init__()
        for name, value in (("width", width), ("layers", layers), ("heads", heads), ("max_hops", max_hops),
                            ("expansion", expansion)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if width % heads:
            raise ValueError(f"heads ({heads}) must divide width ({width})")
        self.config = dict(width=width, layers=layers, heads=heads, max_hops=max_hops, expansion=expansion)
        self.embed = nn.Linear(_FEATURES, width)
        self.blocks = nn.ModuleList(_GraphBlock(width, heads, expansion, max_hops) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 6)
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            self.head.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))  # identity
        self._graphs: dict[bytes, SkeletonGraph] = {}
        self._parameter_list = list(self.parameters())  # for the prepared pass's freshness stamp

    def num_parameters(self) -> int:
        """Trainable parameter count (the same for every skeleton).

        Example:
            >>> from fastkin.learned import PoseToRotation
            >>> PoseToRotation(width=16, layers=2).num_parameters() > 0
            True
        """
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # -- the network ------------------------------------------------------------------------------

    def forward(self, features: torch.Tensor, hops: torch.Tensor, types: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
        """``(B, J, 33)`` features, ``(B, J, J)`` hops and edge types and
        ``(B, J)`` valid-joint mask (padding False) -> ``(B, J, 3, 3)`` world
        rotations from the reference pose to the current one. Use
        :meth:`predict` unless you build batches yourself."""
        x = self.embed(features)
        pair_allowed = valid[:, None, :] & valid[:, :, None]
        chain = torch.zeros_like(types, dtype=torch.bool)
        for t in _CHAIN_TYPES:
            chain |= types == t
        eye = torch.eye(types.shape[-1], dtype=torch.bool, device=types.device)
        for index, block in enumerate(self.blocks):
            allowed = pair_allowed & (chain if index % 2 == 0 else True)
            allowed = allowed | eye  # padding rows attend to themselves: no all-masked softmax
            x = block(x, hops, types, allowed)
        estimate = rot6d_to_matrix(features[..., _ESTIMATE])
        return _correction(rot6d_to_matrix(self.head(self.norm(x))), features) @ estimate

    # -- numpy / torch front end ------------------------------------------------------------------

    def predict(self, skeleton: Skeleton, positions: Any, reference: Any | None = None,
                reference_root: Any | None = None) -> tuple[Any, Any]:
        """Local rotations and root translation of ``skeleton`` for joint
        positions.

        Args:
            skeleton: any :class:`fastkin.Skeleton` (a forest too).
            positions: ``(..., J, 3)`` world joint positions (numpy or torch).
            reference: ``(J, 4)`` xyzw local rotations of one known pose of
                this skeleton (the pose's positions follow by FK); ``None``
                uses the rest pose (``skeleton.rest_rotations``): the
                ablation without a reference pair.
            reference_root: ``(3,)`` root translation of the reference pose
                (default zero; only positions relative to the root matter).

        Returns:
            ``(rotations (..., J, 4) xyzw, root_translation (..., 3))``:
            numpy float64 for numpy input, torch (the input's dtype) for
            torch input, differentiable when gradients are enabled.
        """
        if not isinstance(skeleton, Skeleton):
            raise TypeError(f"skeleton must be a fastkin.Skeleton, got {type(skeleton).__name__}")
        torch_in = is_torch(positions)
        p = positions if torch_in else torch.from_numpy(np.asarray(positions))
        if not p.dtype.is_floating_point:
            raise TypeError(f"positions must be floating point, got {p.dtype}")
        j = skeleton.num_joints
        if p.ndim < 2 or tuple(p.shape[-2:]) != (j, 3):
            raise ValueError(f"positions must have shape (..., {j}, 3) for this {j}-joint skeleton, "
                             f"got {tuple(p.shape)}")
        if not (bool(torch.isfinite(p).all()) if torch_in else bool(np.isfinite(positions).all())):
            raise ValueError("positions must be finite (they hold NaN or infinity)")
        batch = tuple(p.shape[:-2])
        device = self.head.weight.device
        if not (torch_in and torch.is_grad_enabled()) and device.type == "cpu":
            rotations_np, root_np = self._prepared(skeleton, reference, reference_root)(
                p.detach().reshape(-1, j, 3).numpy())
            rotations_np, root_np = rotations_np.reshape(*batch, j, 4), root_np.reshape(*batch, 3)
            if torch_in:
                return torch.from_numpy(rotations_np).to(positions.dtype), torch.from_numpy(root_np).to(positions.dtype)
            return rotations_np, root_np
        flat = p.reshape(-1, j, 3).to(device, torch.float32)
        reference_world, reference_positions = self._reference(skeleton, reference, reference_root, device)
        features, hops, types, valid = self.inputs(skeleton, flat, reference_positions)
        delta = self(features, hops, types, valid)
        world = delta @ reference_world  # W_j = R_j W_ref_j
        local = _world_to_local(torch.tensor(skeleton.parents, device=device), world)
        rotations = matrix_to_quat(local.to(torch.float64))
        first_root = int(skeleton.roots[0])  # the root translation is added to every root's offset
        root = p.reshape(-1, j, 3)[:, first_root].to(device, torch.float64) - torch.tensor(
            skeleton.offsets[first_root], device=device)
        rotations, root = rotations.reshape(*batch, j, 4), root.reshape(*batch, 3)
        if torch_in:
            return rotations.to(positions.dtype), root.to(positions.dtype)
        return rotations.detach().cpu().numpy(), root.detach().cpu().numpy()

    def inputs(self, skeleton: Skeleton, positions: torch.Tensor,
               reference_positions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The network inputs for ``(B, J, 3)`` positions of one skeleton
        (its rest pose from ``skeleton``): ``features (B, J, 33)``, ``hops``,
        ``types`` ``(B, J, J)`` and ``valid (B, J)`` (all True: one skeleton
        needs no padding)."""
        rest_positions = _posed(skeleton, skeleton.rest_rotations, np.zeros(3), positions.device)[1]
        return joint_inputs(self._graph(skeleton), skeleton.parents, rest_positions, reference_positions, positions)

    def _prepared(self, skeleton: Skeleton, reference: Any | None, reference_root: Any | None) -> Any:
        """The numpy forward pass for this skeleton and reference, rebuilt
        when they or a parameter change."""
        from .p2r_inference import PreparedPoseToRotation

        checked = _checked_reference(skeleton, reference)
        root = np.zeros(3) if reference_root is None else np.asarray(reference_root, dtype=np.float64)
        stamp = (id(skeleton), checked.tobytes(), root.tobytes(),
                 tuple((p.data_ptr(), p._version) for p in self._parameter_list))
        cached = getattr(self, "_prepared_cache", None)
        if cached is None or cached[0] != stamp or cached[1] is not skeleton:
            self._reference(skeleton, reference, reference_root, torch.device("cpu"))  # validates
            cached = self._prepared_cache = (stamp, skeleton, PreparedPoseToRotation(self, skeleton, checked, root))
        return cached[2]

    def _graph(self, skeleton: Skeleton) -> SkeletonGraph:
        key = skeleton.parents.tobytes()
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._graphs[key] = SkeletonGraph(skeleton.parents, self.config["max_hops"])
        return graph

    def _reference(self, skeleton: Skeleton, reference: Any | None, reference_root: Any | None,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """World rotations ``(J, 3, 3)`` and positions ``(J, 3)`` of the
        reference pose."""
        reference = _checked_reference(skeleton, reference)
        root = np.zeros(3) if reference_root is None else np.asarray(reference_root, dtype=np.float64)
        if root.shape != (3,) or not np.isfinite(root).all():
            raise ValueError(f"reference_root must be 3 finite numbers, got shape {root.shape}")
        return _posed(skeleton, reference, root, device)


class _GraphBlock(PreNormBlock):
    """Pre-norm attention with tree biases (per head: hop distance, edge
    type), then an MLP."""

    hop_bias: nn.Embedding
    type_bias: nn.Embedding

    def __init__(self, width: int, heads: int, expansion: int, max_hops: int) -> None:
        hop_bias, type_bias = nn.Embedding(max_hops + 2, heads), nn.Embedding(len(EDGE_TYPES), heads)
        nn.init.zeros_(hop_bias.weight)
        nn.init.zeros_(type_bias.weight)
        super().__init__(width, heads, expansion, {"hop_bias": hop_bias, "type_bias": type_bias})

    def forward(self, x: torch.Tensor, hops: torch.Tensor, types: torch.Tensor,
                allowed: torch.Tensor) -> torch.Tensor:
        bias = (self.hop_bias(hops) + self.type_bias(types)).permute(0, 3, 1, 2)  # (B, H, J, J)
        return self.attend(x, bias.masked_fill(~allowed[:, None], float("-inf")))


def joint_inputs(graph: SkeletonGraph, parents: np.ndarray, rest_positions: torch.Tensor,
                 reference_positions: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """:meth:`PoseToRotation.inputs` from world positions alone: the rest
    and reference poses ``(J, 3)`` and the posed frames ``(B, J, 3)``."""
    device = positions.device
    j = len(parents)
    parent = torch.as_tensor(np.where(parents >= 0, parents, np.arange(j)), device=device)
    tree_root = torch.as_tensor(graph.tree_root, device=device)
    rest_bones = rest_positions - rest_positions[parent]
    lengths = rest_bones.norm(dim=-1)
    has_bone = lengths > 0
    scale = lengths[has_bone].mean() if bool(has_bone.any()) else torch.ones((), device=device)
    scale = torch.clamp(scale, min=1e-12)

    def relative(p: torch.Tensor) -> list[torch.Tensor]:
        return [(p - p[..., tree_root, :]) / scale, (p - p[..., parent, :]) / scale]

    flags = torch.stack([torch.as_tensor(parents < 0, device=device),
                         torch.as_tensor(graph.is_leaf, device=device)], -1).to(torch.float32)
    kind, aim_end = correction_kinds(parents, reference_positions.detach().cpu().numpy())
    fixed = torch.cat([*relative(rest_positions), *relative(reference_positions), (lengths / scale)[:, None], flags,
                       torch.eye(3, device=device)[torch.as_tensor(kind, device=device)]], -1)
    b = positions.shape[0]
    estimate = matrix_to_rot6d(swing_estimate(parents, reference_positions, positions))
    aim = F.normalize(positions[:, torch.as_tensor(aim_end, device=device)] - positions, dim=-1)
    aim = torch.where(torch.as_tensor(kind == _TWIST, device=device)[:, None], aim, 0.0)
    features = torch.cat([fixed.expand(b, -1, -1), *relative(positions), estimate, aim], -1)
    hops = torch.as_tensor(graph.hops, device=device).expand(b, -1, -1)
    types = torch.as_tensor(graph.types, device=device).expand(b, -1, -1)
    valid = torch.ones(b, j, dtype=torch.bool, device=device)
    return features, hops, types, valid


def swing_estimate(parents: np.ndarray, reference_positions: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``(B, J, 3, 3)`` world rotations that carry each joint from the
    reference pose ``(J, 3)`` to ``positions (B, J, 3)``, from positions
    alone, parents first: a joint starts from its parent's rotation (it keeps
    its reference rotation relative to the parent, so its twist follows the
    parent), then turns by the smallest rotation that points its one bone at
    its child; a joint with several children takes the least-squares
    rotation of their bones (Kabsch); one without bones keeps the start; a
    lone root the identity. A child at the joint's own place (a zero-length
    bone, as BVH hips and hands have) is looked through: its children aim
    the joint. This is analytic IK with the reference
    as the rest pose, the starting point the network corrects (mostly twist).

    Example:
        >>> import torch
        >>> from fastkin.learned import swing_estimate
        >>> arm = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]])
        >>> bent = torch.tensor([[[0.0, 0, 0], [0, 1, 0], [0, 2, 0]]])
        >>> swing_estimate([-1, 0, 1], arm, bent)[0, 0].round()  # 90 degrees about z
        tensor([[ 0., -1.,  0.],
                [ 1.,  0.,  0.],
                [ 0.,  0.,  1.]])
    """
    parents = np.asarray(parents)
    j = len(parents)
    children = _bone_ends(parents, reference_positions.detach().cpu().numpy().reshape(j, 3))
    width = max(1, max(len(c) for c in children))
    index = np.zeros((j, width), dtype=np.int64)
    member = np.zeros((j, width), dtype=bool)
    for k, c in enumerate(children):
        index[k, : len(c)], member[k, : len(c)] = c, True
    depth = np.zeros(j, dtype=np.int64)
    for k in range(j):
        depth[k] = depth[parents[k]] + 1 if parents[k] >= 0 else 0
    device = positions.device
    index_t, member_t = torch.as_tensor(index, device=device), torch.as_tensor(member, device=device)
    with torch.no_grad():
        ref = reference_positions.expand_as(positions)
        a = ref[:, index_t] - ref[:, :, None]  # (B, J, C, 3) bones at the reference
        b = positions[:, index_t] - positions[:, :, None]  # and now
        usable = member_t & (a.norm(dim=-1) > 1e-9) & (b.norm(dim=-1) > 1e-9)
        a = torch.where(usable[..., None], a, 0.0)
        b = torch.where(usable[..., None], b, 0.0)
        count = usable.sum(-1)
        # Several bones: Kabsch, R = V diag(1, 1, det) Uᵀ for H = Σ a bᵀ = U S Vᵀ.
        u, _, vt = torch.linalg.svd(a.transpose(-1, -2) @ b)
        sign = torch.sign(torch.linalg.det(vt.transpose(-1, -2) @ u.transpose(-1, -2)))
        flip = torch.ones_like(u[..., 0])
        flip[..., 2] = torch.where(sign == 0, 1.0, sign)
        kabsch = vt.transpose(-1, -2) @ (flip[..., None] * u.transpose(-1, -2))
        first = usable.float().argmax(-1)[..., None, None].expand(*usable.shape[:2], 1, 3)
        bone_before, bone_now = a.gather(2, first)[:, :, 0], b.gather(2, first)[:, :, 0]
        out = torch.eye(3, device=device, dtype=positions.dtype).repeat(*positions.shape[:2], 1, 1)
        for level in range(int(depth.max()) + 1):
            joints = torch.as_tensor(np.flatnonzero(depth == level), device=device)
            level_parents = parents[depth == level]
            start = out[:, torch.as_tensor(np.maximum(level_parents, 0), device=device)]
            start = torch.where(torch.as_tensor(level_parents >= 0, device=device)[None, :, None, None], start,
                                out[:, joints])
            turned = (start @ bone_before[:, joints, :, None])[..., 0]
            swing = _smallest_rotation(F.normalize(turned, dim=-1), F.normalize(bone_now[:, joints], dim=-1)) @ start
            n = count[:, joints][..., None, None]
            out[:, joints] = torch.where(n >= 2, kabsch[:, joints], torch.where(n == 1, swing, start))
    return out


def correction_kinds(parents: np.ndarray, reference_positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per joint, the correction PoseToRotation may make to the estimate,
    from the reference pose ``(J, 3)``: ``0`` any rotation (no bone aims the
    joint, or one reaches past a zero-length child, whose own turn moves it),
    ``1`` a twist about its bone (one bone, or several along one line), ``2``
    none (bones in several directions fix it); and the joint the twist's bone
    ends at (itself otherwise).

    Example:
        >>> import numpy as np
        >>> from fastkin.learned import correction_kinds
        >>> kind, end = correction_kinds(np.array([-1, 0, 1, 0]), np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0],
        ...                                                                  [0, 1, 0]]))
        >>> kind.tolist(), end.tolist()
        ([2, 1, 0, 0], [0, 2, 2, 3])
    """
    parents = np.asarray(parents)
    reference = np.asarray(reference_positions, dtype=np.float64).reshape(-1, 3)
    ends = _bone_ends(parents, reference)
    kind = np.full(len(parents), _FREE, dtype=np.int64)
    aim_end = np.arange(len(parents))
    for k, e in enumerate(ends):
        # A bone ending past a zero-length child turns with that child too:
        # it fixes nothing exactly, so the joint stays free.
        if len(e) == 0 or (parents[e] != k).any():
            continue
        bones = reference[e] - reference[k]
        bones /= np.linalg.norm(bones, axis=-1, keepdims=True)
        # Bones along one line (within ~10 degrees) leave the twist about it open.
        collinear = np.linalg.norm(np.cross(bones[0], bones), axis=-1).max() < 0.17
        kind[k] = _TWIST if collinear else _FIXED_KIND
        aim_end[k] = e[0] if collinear else k
    return kind, aim_end


def _correction(rotation: Any, features: Any) -> Any:
    """The network's rotation ``(..., J, 3, 3)`` cut down to what each joint
    may get (the kind one-hot and aim direction in ``features``): all of it,
    its twist about the aim direction alone, or the identity. numpy or torch."""
    kind, aim = features[..., _KIND], features[..., _AIM]
    twist = twist_part(rotation, aim)
    eye = _eye_like(rotation)
    free, turn = kind[..., _FREE][..., None, None] > 0.5, kind[..., _TWIST][..., None, None] > 0.5
    xp = namespace(rotation)
    return xp.where(free, rotation, xp.where(turn, twist, eye))


def _eye_like(x: Any) -> Any:
    if is_torch(x):
        return torch.eye(3, dtype=x.dtype, device=x.device)
    return np.eye(3, dtype=x.dtype)


def twist_part(rotation: Any, axis: Any) -> Any:
    """The twist of ``rotation (..., 3, 3)`` about unit ``axis (..., 3)`` in
    the swing-twist split (rotation = swing · twist, the swing's axis
    perpendicular to ``axis``), as a rotation matrix; numpy or torch. For a
    quaternion (v, w) the twist angle is ``2 atan2(v·a, w)``, read here from
    the matrix: ``w² = (tr + 1) / 4``, ``(v·a)² = (aᵀRa - (tr - 1) / 2) / 2``
    and ``2 w (v·a) = vee(R - Rᵀ)·a / 2``. Identity where undefined (a half
    turn about an axis across ``axis``) or where ``axis`` is zero.

    Example:
        >>> import numpy as np
        >>> from fastkin.rotations import axis_angle_to_matrix
        >>> from fastkin.learned import twist_part
        >>> r = axis_angle_to_matrix(np.array([0.0, 0.0, 0.7])) @ axis_angle_to_matrix(np.array([0.3, 0.0, 0.0]))
        >>> np.allclose(twist_part(r, np.array([1.0, 0.0, 0.0])), axis_angle_to_matrix(np.array([0.3, 0.0, 0.0])))
        True
    """
    xp = namespace(rotation)
    r, a = rotation, axis
    trace = r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2]
    vee = xp.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1)
    along = xp.sum(a * xp.sum(r * a[..., None, :], -1), -1)  # aᵀ R a
    # (w² - (v·a)², 2 w (v·a)) is (cos, sin) of the twist angle times w² + (v·a)² > 0.
    cos2 = (trace + 1.0) / 4.0 - (along - (trace - 1.0) / 2.0) / 2.0
    sin2 = xp.sum(vee * a, -1) / 2.0
    square = cos2 * cos2 + sin2 * sin2
    ok = (square > 1e-24) & (xp.sum(a * a, -1) > 0.25)
    norm = xp.sqrt(xp.where(ok, square, 1.0 + 0.0 * square))  # no infinite gradient where unused
    c = xp.where(ok, cos2 / norm, 1.0 + 0.0 * norm)[..., None, None]
    s = xp.where(ok, sin2 / norm, 0.0 * norm)[..., None, None]
    zero = a[..., 0] * 0.0
    cross = xp.stack([xp.stack([zero, -a[..., 2], a[..., 1]], -1), xp.stack([a[..., 2], zero, -a[..., 0]], -1),
                      xp.stack([-a[..., 1], a[..., 0], zero], -1)], -2)  # [a]×
    outer = a[..., :, None] * a[..., None, :]
    return c * _eye_like(r) + s * cross + (1.0 - c) * outer


def _bone_ends(parents: np.ndarray, reference: np.ndarray) -> list[np.ndarray]:
    """Per joint, the joints its bones end at: its children, each child at
    the joint's own reference position replaced by that child's ends."""
    tolerance = 1e-7 * max(1.0, float(np.abs(reference).max(initial=0.0)))
    direct = [np.flatnonzero(parents == k) for k in range(len(parents))]
    ends: list[np.ndarray] = []
    for k in range(len(parents)):
        found, stack = [], list(direct[k])
        while stack:
            c = stack.pop()
            if np.linalg.norm(reference[c] - reference[k]) > tolerance:
                found.append(c)
            else:
                stack += list(direct[c])
        ends.append(np.array(sorted(found), dtype=np.int64))
    return ends


def _smallest_rotation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Matrices of the smallest rotations taking unit vectors x to y (a half
    turn about an axis perpendicular to x when they are opposite)."""
    w = 1.0 + (x * y).sum(-1, keepdim=True)
    axis = torch.linalg.cross(x, y)
    # Opposite vectors: any axis perpendicular to x, from the least aligned basis vector.
    basis = torch.eye(3, device=x.device, dtype=x.dtype)[x.abs().argmin(-1)]
    perpendicular = F.normalize(torch.linalg.cross(x, basis), dim=-1)
    opposite = w < 1e-6
    q = torch.cat([torch.where(opposite, perpendicular, axis), torch.where(opposite, 0.0, w)], -1)
    return quat_to_matrix(F.normalize(q, dim=-1))


def pad_inputs(inputs: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """One batch from several skeletons' :meth:`PoseToRotation.inputs`:
    joints padded to the largest count, padding marked invalid (it neither
    attends nor is attended to; its outputs are meaningless).

    Example:
        >>> import numpy as np, fastkin, torch
        >>> from fastkin.learned import PoseToRotation, pad_inputs
        >>> model = PoseToRotation(width=16, layers=2)
        >>> arm = fastkin.Skeleton([-1, 0, 1], np.eye(3))
        >>> leg = fastkin.Skeleton([-1, 0], np.eye(3)[:2])
        >>> rest = lambda s: torch.as_tensor(fastkin.fk_batch(s, s.rest_rotations)[1], dtype=torch.float32)
        >>> batch = pad_inputs([model.inputs(s, rest(s)[None], rest(s)) for s in (arm, leg)])
        >>> [tuple(t.shape) for t in batch]
        [(2, 3, 33), (2, 3, 3), (2, 3, 3), (2, 3)]
    """
    if not inputs:
        raise ValueError("inputs must hold at least one skeleton's inputs")
    size = max(item[0].shape[1] for item in inputs)

    def padded(t: torch.Tensor, joint_dims: int, trailing: int, value: float) -> torch.Tensor:
        # F.pad lists (before, after) pairs from the last dimension back.
        return F.pad(t, [0, 0] * trailing + [0, size - t.shape[1]] * joint_dims, value=value)

    features = torch.cat([padded(f, 1, 1, 0.0) for f, _, _, _ in inputs])
    hops = torch.cat([padded(h, 2, 0, 0) for _, h, _, _ in inputs])
    types = torch.cat([padded(t, 2, 0, len(EDGE_TYPES) - 1) for _, _, t, _ in inputs])
    valid = torch.cat([padded(v.to(torch.uint8), 1, 0, 0) for _, _, _, v in inputs]).bool()
    features[..., _ESTIMATE][~valid] = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])  # padding: identity estimate
    features[..., _KIND][~valid] = torch.eye(3)[_FIXED_KIND]  # and no correction
    return features, hops, types, valid


def _checked_reference(skeleton: Skeleton, reference: Any | None) -> np.ndarray:
    j = skeleton.num_joints
    given: Any = skeleton.rest_rotations if reference is None else reference
    checked = np.asarray(given.detach().cpu().numpy() if is_torch(given) else given, dtype=np.float64)
    if checked.shape != (j, 4):
        raise ValueError(f"reference must have shape ({j}, 4) (local xyzw rotations), got {checked.shape}")
    if not np.isfinite(checked).all() or (np.linalg.norm(checked, axis=-1) < 1e-12).any():
        raise ValueError("reference must hold finite, nonzero quaternions")
    return checked


def _posed(skeleton: Skeleton, rotations: np.ndarray, root: np.ndarray,
           device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 world rotations ``(J, 3, 3)`` and positions ``(J, 3)`` of one pose."""
    world, positions = fk_batch(skeleton, np.asarray(rotations, dtype=np.float64), root)
    as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)  # noqa: E731
    return as_tensor(world), as_tensor(positions)


def _world_to_local(parents: torch.Tensor, world: torch.Tensor) -> torch.Tensor:
    """``L_j = W_parent(j)ᵀ W_j`` (roots: ``W_j``) for ``(B, J, 3, 3)``."""
    has_parent = parents >= 0
    parent_world = world[:, torch.where(has_parent, parents, 0)]
    local = parent_world.transpose(-1, -2) @ world
    return torch.where(has_parent[None, :, None, None], local, world)
