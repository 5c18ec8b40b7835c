"""Training data for PoseToRotation: clips of any skeleton (read from
BVH, ASF/AMC and glTF, or generated), and batches mixing several skeletons
with the augmentations that make the model general: bone-length scaling,
sub-skeletons, mirroring and random orientation.

Random re-orientation of the joints' rest frames needs no augmentation:
PoseToRotation reads world positions only and gets the axis conventions
from the reference rotations, so re-oriented frames give exactly
re-oriented answers (tests/test_pose_to_rotation.py checks this).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..io.errors import FormatError
from ..kinematics import fk_batch
from ..motion import Motion
from ..rotations import axis_angle_to_quat, quat_multiply
from ..skeleton import Skeleton
from .dataset import _read_motions, find_motion_files
from .pose_to_rotation import SkeletonGraph, joint_inputs, pad_inputs

__all__ = ["Clip", "load_clips", "procedural_clip", "P2RBatch", "p2r_batch"]


@dataclass
class Clip:
    """One skeleton's motion: ``rotations (T, J, 4)`` local, the world
    ``frames (T, J, 3, 3)`` and ``positions (T, J, 3)`` they give, and the
    rest pose's ``rest_frames (J, 3, 3)`` and ``rest_positions (J, 3)``
    (float32), computed once so batches do not redo them.

    Example:
        >>> import fastkin
        >>> from fastkin.learned import Clip
        >>> walk = fastkin.data.default_motion()
        >>> clip = Clip.of("walk", walk[:10])
        >>> clip.positions.shape, clip.frames.shape
        ((10, 38, 3), (10, 38, 3, 3))
    """

    name: str
    skeleton: Skeleton
    rotations: np.ndarray
    frames: np.ndarray
    positions: np.ndarray
    rest_frames: np.ndarray
    rest_positions: np.ndarray

    @staticmethod
    def of(name: str, motion: Any) -> "Clip":
        """A clip of a :class:`fastkin.Motion` (its per-frame joint
        translations, if any, included)."""
        skeleton = motion.skeleton
        frames, positions = fk_batch(skeleton, motion.rotations, motion.root_translation,
                                     offsets=motion.joint_translations)
        rest_frames, rest = fk_batch(skeleton, skeleton.rest_rotations)
        return Clip(name, skeleton, np.asarray(motion.rotations), np.asarray(frames, np.float32),
                    np.asarray(positions, np.float32), np.asarray(rest_frames, np.float32),
                    np.asarray(rest, np.float32))

    def __len__(self) -> int:
        return len(self.rotations)


def load_clips(paths: Sequence[Any], fps: float = 30.0, exclude: Sequence[str] = (),
               progress: bool = False) -> list[Clip]:
    """Every motion in ``paths`` (files or folders of BVH, ASF/AMC, glTF) as
    clips at ``fps``, named ``file stem[:animation]`` (an animation that
    drives several skins of one file counted once); files whose stem is in
    ``exclude`` are skipped (the leave-skeleton-out evaluation), and files
    that cannot be read are skipped with a warning naming the file and why.

    Example:
        >>> import fastkin
        >>> from fastkin.learned import load_clips
        >>> [c.name for c in load_clips([fastkin.data.path("cmu_12_01_walk.bvh")])]
        ['cmu_12_01_walk']
    """
    files = [f for f in find_motion_files(paths) if f.stem not in set(exclude)]
    clips: list[Clip] = []
    seen: set[str] = set()
    for index, file in enumerate(files):
        if progress:
            print(f"\rload_clips: {index + 1}/{len(files)} {file.name[:40]:40s}", end="", flush=True)
        try:
            motions = _read_motions(Path(file))
        except (FormatError, OSError) as error:  # one broken file in a data folder must not end a run
            warnings.warn(f"load_clips: skipping {file}: {error}", stacklevel=2)
            continue
        for suffix, motion in motions:
            if file.stem + suffix in seen:  # one animation driving several skins of a file: once
                continue
            seen.add(file.stem + suffix)
            if motion.fps != fps and len(motion) > 1:
                motion = motion.resample(fps)
            clips.append(Clip.of(file.stem + suffix, motion))
    if progress:
        print()
    return clips


def procedural_clip(rng: np.random.Generator, frames: int = 120, joints: tuple[int, int] = (3, 40),
                    fps: float = 30.0) -> Clip:
    """A generated skeleton (chains branching from a spine: legs, arms,
    tails, necks; sometimes a forest) with a smooth motion: each joint turns
    by sums of sinusoids (periods of 0.4 to 3 s) about two axes across its
    bone, up to 70 degrees, and twists about the bone by up to 10 degrees.

    Example:
        >>> import numpy as np
        >>> from fastkin.learned import procedural_clip
        >>> clip = procedural_clip(np.random.default_rng(0), frames=8)
        >>> clip.positions.shape[0], clip.skeleton.num_joints >= 3
        (8, True)
    """
    count = int(rng.integers(joints[0], joints[1] + 1))
    parents = [-1]
    spine = [0]
    while len(parents) < count:
        if rng.random() < 0.3 or len(spine) < 2:  # grow the spine
            parents.append(spine[-1])
            spine.append(len(parents) - 1)
        else:  # a limb of 1-5 joints from a spine joint
            parent = int(rng.choice(spine))
            for _ in range(int(rng.integers(1, 6))):
                if len(parents) >= count:
                    break
                parents.append(parent)
                parent = len(parents) - 1
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    offsets = directions * rng.uniform(0.2, 1.0, size=(count, 1))
    offsets[0] = 0.0
    if count > 4 and rng.random() < 0.1:  # a forest: a second root, away from the first
        parents[count // 2 + 1] = -1
        offsets[count // 2 + 1] = rng.normal(size=3)
    rest = axis_angle_to_quat(rng.normal(scale=0.5, size=(count, 3)))
    skeleton = Skeleton(parents, offsets, rest)
    t = np.arange(frames)[:, None, None] / fps
    # Mostly swing: turns about axes across each joint's bone (to its first
    # child), with a little twist about it, as joints of real bodies move.
    # Twist that is pure noise would teach the model nothing.
    bone = rng.normal(size=(count, 3))
    for joint in range(1, count):
        parent = parents[joint]
        if parent >= 0 and not np.any(np.array(parents[:joint]) == parent):  # its parent's first child
            bone[parent] = offsets[joint]
    bone /= np.maximum(np.linalg.norm(bone, axis=-1, keepdims=True), 1e-12)
    across = np.cross(bone, rng.normal(size=(count, 3)))
    across /= np.maximum(np.linalg.norm(across, axis=-1, keepdims=True), 1e-12)
    basis = np.stack([across, np.cross(bone, across), bone], 1)  # (J, 3 axes, 3)
    limits = np.radians([70.0, 70.0, 10.0])  # swing, swing, twist
    components = np.zeros((frames, count, 3))
    for _ in range(3):
        amplitude = rng.uniform(0, 1, size=(1, count, 3)) * limits / 2
        period = rng.uniform(0.4, 3.0, size=(1, count, 1))
        components += amplitude * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi, size=(1, count, 3)))
    axis_angles = np.einsum("tja,jad->tjd", components, basis)
    rotations = quat_multiply(np.broadcast_to(rest, (frames, count, 4)), axis_angle_to_quat(axis_angles))
    root = np.cumsum(rng.normal(scale=0.02, size=(frames, 3)), axis=0)
    return Clip.of("procedural", Motion(skeleton, rotations, root, fps=fps))


@dataclass
class P2RBatch:
    """Padded network inputs (``features``, ``hops``, ``types``, ``valid``)
    with the reference poses' world rotations ``reference_frames (B, J, 3, 3)``
    and the true world rotations ``frames (B, J, 3, 3)``: the model should
    give ``frames = R reference_frames``."""

    inputs: tuple
    reference_frames: torch.Tensor
    frames: torch.Tensor


def p2r_batch(clips: Sequence[Clip], rng: np.random.Generator, skeletons: int = 8, frames: int = 16,
              scale_jitter: float = 0.1, subset: float = 0.3, mirror: float = 0.5, use_reference: bool = True,
              graphs: dict | None = None, max_hops: int = 8) -> P2RBatch:
    """A batch of ``frames`` poses from each of ``skeletons`` random clips,
    each with a random reference frame of the same clip (or, without
    ``use_reference``, the rest pose), augmented: per-bone length scaling
    (log-normal, ``scale_jitter``), a random sub-skeleton (probability
    ``subset``), mirroring (probability ``mirror``) and a random
    orientation of the whole scene.

    Example:
        >>> import numpy as np
        >>> from fastkin.learned import procedural_clip, p2r_batch
        >>> rng = np.random.default_rng(0)
        >>> batch = p2r_batch([procedural_clip(rng, frames=20)], rng, skeletons=2, frames=4)
        >>> batch.frames.shape[0], batch.inputs[0].shape[-1]
        (8, 33)
    """
    graphs = {} if graphs is None else graphs
    items, reference_frames, truth = [], [], []
    for clip in (clips[i] for i in rng.integers(0, len(clips), size=skeletons)):
        chosen = rng.integers(0, len(clip), size=frames)
        reference = int(rng.integers(0, len(clip)))
        skeleton = clip.skeleton
        world = clip.frames[np.append(chosen, reference)].astype(np.float64)
        positions = clip.positions[np.append(chosen, reference)].astype(np.float64)
        rest = clip.rest_positions.astype(np.float64)
        rest_world = clip.rest_frames.astype(np.float64)
        if scale_jitter > 0:  # bone lengths change, rotations stay
            scale = np.exp(rng.normal(scale=scale_jitter, size=(skeleton.num_joints, 1)))
            offsets = np.asarray(skeleton.offsets) * scale
            parent_world = world[:, np.maximum(skeleton.parents, 0)]
            local = np.where((skeleton.parents < 0)[None, :, None, None], world,
                             np.swapaxes(parent_world, -1, -2) @ world)
            first_root = skeleton.roots[0]
            translation = positions[:, first_root] - offsets[first_root]
            positions = np.asarray(fk_batch(skeleton, local, translation, offsets=offsets)[1])
            rest = np.asarray(fk_batch(skeleton, skeleton.rest_rotations, offsets=offsets)[1])
        parents = np.asarray(skeleton.parents)
        keep = np.arange(skeleton.num_joints)
        if skeleton.num_joints > 2 and rng.random() < subset:
            keep = _sub_skeleton(parents, rng)
            parents = np.asarray(skeleton.subset(keep).parents)
        world, positions, rest, rest_world = world[:, keep], positions[:, keep], rest[keep], rest_world[keep]
        # A mirror M and a rotation G: positions p -> G M p, frames W -> G M W M
        # (M W M is a proper rotation again).
        mirrored = np.diag([-1.0, 1.0, 1.0]) if rng.random() < mirror else np.eye(3)
        linear = _random_rotation(rng) @ mirrored
        world = linear @ world @ mirrored
        positions, rest = positions @ linear.T, rest @ linear.T
        if use_reference:
            reference_world, reference_positions = world[-1], positions[-1]
        else:
            reference_world, reference_positions = linear @ rest_world @ mirrored, rest
        key = parents.tobytes()
        if key not in graphs:
            graphs[key] = SkeletonGraph(parents, max_hops)
        as32 = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)  # noqa: E731
        items.append(joint_inputs(graphs[key], parents, as32(rest), as32(reference_positions), as32(positions[:-1])))
        reference_frames.append(as32(np.broadcast_to(reference_world, world[:-1].shape)))
        truth.append(as32(world[:-1]))
    inputs = pad_inputs(items)
    size = inputs[0].shape[1]
    pad = lambda t: torch.nn.functional.pad(t, [0, 0, 0, 0, 0, size - t.shape[1]])  # noqa: E731
    eye = torch.eye(3)
    reference_all = torch.cat([pad(r) for r in reference_frames])
    truth_all = torch.cat([pad(t) for t in truth])
    padding = ~inputs[3]
    reference_all[padding] = eye  # padding: identity, so every matrix stays a rotation
    truth_all[padding] = eye
    return P2RBatch(inputs, reference_all, truth_all)


def _sub_skeleton(parents: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Joints of a random part that moves as the whole did: one subtree
    alone, or the skeleton without 1-3 subtrees (never a joint without its
    parent, which would make the kept bones stretch)."""
    count = len(parents)
    below = np.eye(count, dtype=bool)  # below[a, b]: b is a or in its subtree
    for joint in range(count - 1, 0, -1):
        if parents[joint] >= 0:
            below[parents[joint]] |= below[joint]
    if rng.random() < 0.5:
        sizes = below.sum(1)
        start = int(rng.choice(np.flatnonzero(sizes >= 2))) if (sizes >= 2).any() else 0
        return np.flatnonzero(below[start])
    dropped = np.zeros(count, dtype=bool)
    for joint in rng.choice(np.arange(1, count), size=min(int(rng.integers(1, 4)), count - 1), replace=False):
        dropped |= below[joint]
    return np.flatnonzero(~dropped)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    x, y, z, w = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip
