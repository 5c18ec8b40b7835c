"""Augmented training batches: random heading, left/right mirroring,
bone-length jitter and Gaussian position noise, all applied to real frames
before forward kinematics so positions and rotations stay consistent."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..kinematics import fk_batch
from ..rotations import quat_multiply
from ..skeleton import Skeleton
from .dataset import MotionDataset

__all__ = ["Augmentation", "Batch", "aligned_frames", "augmented_batch", "mirror_pairs", "up_axis", "height"]


@dataclass(frozen=True)
class Augmentation:
    """What :func:`augmented_batch` varies.

    Example:
        >>> from fastkin.learned import Augmentation
        >>> Augmentation(noise=0.0).bone_jitter
        0.05

    Attributes:
        heading: turn every pose by a random angle about the vertical axis.
        mirror: probability of mirroring a batch left/right (joints are
            paired by name: Left/Right, L/R, l/r prefixes).
        bone_jitter: standard deviation of a random log-scale per bone and
            pose (0.05: bone lengths vary by about 5%).
        noise: largest standard deviation of Gaussian position noise, as a
            fraction of the skeleton's height; each pose draws its own level,
            half of them none.
    """

    heading: bool = True
    mirror: float = 0.5
    bone_jitter: float = 0.05
    noise: float = 0.02


class Batch(NamedTuple):
    """One training batch (torch tensors, float32), from :func:`augmented_batch`.

    Example:
        >>> import numpy as np, fastkin
        >>> from fastkin.learned import MotionDataset, augmented_batch
        >>> walk = fastkin.data.default_motion()
        >>> data = MotionDataset([fastkin.data.path("cmu_12_01_walk.bvh")], walk.skeleton, progress=False)
        >>> augmented_batch(data, 2, np.random.default_rng(0)).frames.shape
        (38, 3, 3)
    """

    skeleton: Skeleton  # every pose's hierarchy and rest frames (one body per batch)
    frames: np.ndarray  # (J, 3, 3) its rest bone frames, aligned to the dataset skeleton's (aligned_frames)
    rotations: Any  # (B, J, 4) local xyzw quaternions: the targets
    offsets: Any  # (B, J, 3) bone offsets after jitter
    positions: Any  # (B, J, 3) exact joint positions (fk_batch)
    inputs: Any  # (B, J, 3) positions with noise: what the model sees


def augmented_batch(dataset: MotionDataset, size: int, rng: np.random.Generator,
                    augmentation: Augmentation = Augmentation()) -> Batch:
    """Draws ``size`` frames of one body (chosen in proportion to its frame
    count) from ``dataset``, augments them and computes their positions with
    :func:`fastkin.fk_batch`.

    Example:
        >>> import numpy as np, fastkin
        >>> from fastkin.learned import MotionDataset, augmented_batch
        >>> walk = fastkin.data.default_motion()
        >>> data = MotionDataset([fastkin.data.path("cmu_12_01_walk.bvh")], walk.skeleton, progress=False)
        >>> batch = augmented_batch(data, 8, np.random.default_rng(0))
        >>> tuple(batch.inputs.shape), tuple(batch.rotations.shape)
        ((8, 38, 3), (8, 38, 4))
    """
    import torch

    counts = dataset.frames_per_skeleton()
    body = int(rng.choice(len(counts), p=counts / counts.sum()))
    takes = [t for t in dataset.takes if t.skeleton == body]
    lengths = np.array([len(t.rotations) for t in takes])
    which = rng.choice(len(takes), size=size, p=lengths / lengths.sum())
    frame = (rng.random(size) * lengths[which]).astype(np.int64)
    rotations = np.stack([takes[t].rotations[f] for t, f in zip(which, frame)]).astype(np.float32)
    skeleton = dataset.skeletons[body]
    if rng.random() < augmentation.mirror:
        skeleton, rotations = _mirrored(skeleton, rotations)
    if augmentation.heading:
        turn = np.zeros((size, 4), np.float32)
        angle = rng.uniform(-np.pi, np.pi, size)
        turn[:, up_axis(skeleton)] = np.sin(angle / 2)
        turn[:, 3] = np.cos(angle / 2)
        roots = skeleton.parents < 0
        rotations[:, roots] = quat_multiply(turn[:, None], rotations[:, roots])
    scale = np.exp(rng.normal(0.0, augmentation.bone_jitter, (size, skeleton.num_joints, 1)))
    offsets = (skeleton.offsets * scale).astype(np.float32)
    offsets[:, skeleton.parents < 0] = 0.0  # positions are root-relative
    rotations_t = torch.from_numpy(rotations)
    offsets_t = torch.from_numpy(offsets)
    positions = fk_batch(skeleton, rotations_t, offsets=offsets_t)[1]
    sigma = rng.uniform(0.0, augmentation.noise, size) * (rng.random(size) < 0.5) * height(skeleton)
    noise = rng.normal(0.0, 1.0, positions.shape) * sigma[:, None, None]
    inputs = positions + torch.from_numpy(noise.astype(np.float32))
    return Batch(skeleton, aligned_frames(skeleton, dataset.skeleton), rotations_t, offsets_t, positions, inputs)


def up_axis(skeleton: Skeleton) -> int:
    """The vertical axis (0, 1, 2): of the two axes that do not separate the
    left and right joints (see :func:`mirror_pairs`), the one along which
    the rest pose is taller; without left/right pairs, the tallest axis.

    Example:
        >>> import fastkin
        >>> from fastkin.learned import up_axis
        >>> up_axis(fastkin.data.default_motion().skeleton)  # CMU: y up
        1
    """
    rest = fk_batch(skeleton, skeleton.rest_rotations)[1]
    extent = np.ptp(rest, axis=0)
    lateral = _lateral_axis(skeleton, rest)
    if lateral is not None:
        extent[lateral] = -1.0
    return int(np.argmax(extent))


def height(skeleton: Skeleton) -> float:
    """The rest pose's extent along :func:`up_axis` (skeleton units).

    Example:
        >>> import fastkin
        >>> from fastkin.learned import height
        >>> round(height(fastkin.data.default_motion().skeleton), 1)  # CMU units (x 0.056444 = metres)
        24.2
    """
    rest = fk_batch(skeleton, skeleton.rest_rotations)[1]
    return float(np.ptp(rest[:, up_axis(skeleton)]))


def mirror_pairs(skeleton: Skeleton) -> np.ndarray:
    """For each joint its left/right counterpart by name (itself when it has
    none): ``Left*``/``Right*``, ``L*``/``R*`` before a capital, ``l*``/``r*``
    (CMU ASF), and the same with ``left``/``right`` anywhere in the name.

    Example:
        >>> import fastkin
        >>> from fastkin.learned import mirror_pairs
        >>> s = fastkin.data.default_motion().skeleton
        >>> [s.names[j] for j in mirror_pairs(s)[[1, 2, 13]]]
        ['RHipJoint', 'RightUpLeg', 'LowerBack']
    """
    index = {n: j for j, n in enumerate(skeleton.names)}
    swaps = [(r"Left", "Right"), (r"left", "right"), (r"LEFT", "RIGHT")]
    pairs = np.arange(skeleton.num_joints)
    for j, name in enumerate(skeleton.names):
        candidates = []
        for a, b in swaps:
            if a in name:
                candidates.append(name.replace(a, b))
            if b in name:
                candidates.append(name.replace(b, a))
        for a, b in (("L", "R"), ("l", "r")):
            if re.match(f"^[{a}{b}][A-Z_]", name) or (a == "l" and re.match("^[lr][a-z]", name)):
                candidates.append({a: b, b: a}[name[0]] + name[1:])
        for c in candidates:
            if c in index and c != name:
                pairs[j] = index[c]
                break
    return pairs


def _mirrored(skeleton: Skeleton, rotations: np.ndarray) -> tuple[Skeleton, np.ndarray]:
    """The skeleton and poses reflected across the plane that separates its
    left and right sides: joint j takes its counterpart's offset and
    rotation, both reflected (a rotation R becomes M R M)."""
    cache = skeleton._torch_cache
    if ("mirrored",) not in cache:
        pairs = mirror_pairs(skeleton)
        lateral = _lateral_axis(skeleton, fk_batch(skeleton, skeleton.rest_rotations)[1])
        lateral = 0 if lateral is None else lateral
        flip = np.ones(3)
        flip[lateral] = -1.0
        mirrored = Skeleton(skeleton.parents, skeleton.offsets[pairs] * flip, names=skeleton.names)
        cache[("mirrored",)] = (mirrored, pairs, lateral)
    mirrored, pairs, lateral = cache[("mirrored",)]
    reflected = rotations[:, pairs].copy()
    keep = np.zeros(4, bool)
    keep[[lateral, 3]] = True
    reflected[..., ~keep] *= -1.0  # M R M: the vector part flips except along the mirror's normal
    return mirrored, reflected


def _lateral_axis(skeleton: Skeleton, rest: np.ndarray) -> int | None:
    """The axis along which left/right joint pairs lie apart at rest (None without pairs)."""
    pairs = mirror_pairs(skeleton)
    paired = pairs != np.arange(len(pairs))
    if not paired.any():
        return None
    return int(np.argmax(np.abs(rest[paired] - rest[pairs[paired]]).sum(axis=0)))


def aligned_frames(skeleton: Skeleton, reference: Skeleton) -> np.ndarray:
    """``(J, 3, 3)`` rest bone frames of ``skeleton`` that follow the frames
    of ``reference`` (same hierarchy, other bone lengths): each is the
    reference's frame turned by the smallest rotation that takes its bone
    onto ``skeleton``'s. Unlike :func:`fastkin.bone_frames`, whose second axis
    jumps when a bone crosses a tie between world axes, these change
    continuously with the bones, so every body of one hierarchy shares one
    convention for the twist.

    Example:
        >>> import numpy as np, fastkin
        >>> from fastkin.learned import aligned_frames
        >>> walk = fastkin.data.default_motion()
        >>> frames = aligned_frames(walk.skeleton, walk.skeleton)
        >>> bool(np.allclose(frames, fastkin.bone_frames(walk.skeleton)))
        True
    """
    from ..bone_frames import bone_frames

    key = ("aligned_frames", id(reference))
    cached = skeleton._torch_cache.get(key)
    if cached is not None and cached[0] is reference:
        return cached[1]
    target = bone_frames(reference)
    a, b = target[:, :, 0], bone_frames(skeleton)[:, :, 0]
    v = np.cross(a, b)
    c = np.sum(a * b, axis=1)
    skew = np.zeros((len(a), 3, 3))
    skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    skew -= skew.transpose(0, 2, 1)
    opposite = c < -0.999
    turn = np.eye(3) + skew + skew @ skew / np.maximum(1.0 + c, 1e-3)[:, None, None]
    # A bone that points against the reference's: half a turn about the frame's second axis.
    u = target[opposite, :, 1]
    turn[opposite] = 2.0 * u[:, :, None] * u[:, None, :] - np.eye(3)
    frames = turn @ target
    skeleton._torch_cache[key] = (reference, frames)
    return frames
