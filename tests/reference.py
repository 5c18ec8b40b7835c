"""Slow, obviously correct references for the kernels (tests only).

Rotations come from scipy, the tree walk is a plain Python loop over poses
and joints in float64: nothing here shares code with fastkin's kernels.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation


def local_matrices(rotations: np.ndarray, num_joints: int) -> np.ndarray:
    """(..., J, 3, 3) float64 local matrices from quaternions or matrices."""
    rotations = np.asarray(rotations, dtype=np.float64)
    if rotations.shape[-1] == 4 and rotations.shape[-2] == num_joints:
        flat = rotations.reshape(-1, 4)
        return Rotation.from_quat(flat).as_matrix().reshape(rotations.shape[:-1] + (3, 3))
    return rotations


def fk_reference(parents, offsets, rotations, root_translation=None):
    """World rotations (..., J, 3, 3) and positions (..., J, 3) in float64."""
    parents = list(parents)
    num_joints = len(parents)
    local = local_matrices(rotations, num_joints)
    batch = local.shape[:-3]
    local = local.reshape((-1, num_joints, 3, 3))
    count = local.shape[0]
    offsets = np.asarray(offsets, dtype=np.float64)
    offsets = np.broadcast_to(offsets, batch + (num_joints, 3)).reshape(count, num_joints, 3)
    root = None if root_translation is None else np.asarray(root_translation, np.float64).reshape(count, 3)
    world_r = np.zeros((count, num_joints, 3, 3))
    world_p = np.zeros((count, num_joints, 3))
    for b in range(count):
        for j, p in enumerate(parents):
            if p < 0:
                world_r[b, j] = local[b, j]
                world_p[b, j] = offsets[b, j] + (0.0 if root is None else root[b])
            else:
                world_r[b, j] = world_r[b, p] @ local[b, j]
                world_p[b, j] = world_p[b, p] + world_r[b, p] @ offsets[b, j]
    return world_r.reshape(batch + (num_joints, 3, 3)), world_p.reshape(batch + (num_joints, 3))


def random_quaternions(rng: np.random.Generator, shape) -> np.ndarray:
    """Uniformly random unit quaternions (xyzw)."""
    q = rng.normal(size=tuple(shape) + (4,))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def bvh_hierarchy(path: Path) -> tuple[list[int], np.ndarray, list[str]]:
    """Parents, offsets and names of a BVH file's HIERARCHY section, end
    sites included as leaf joints (a minimal independent reader for tests)."""
    text = Path(path).read_text(errors="replace")
    hierarchy = text.split("MOTION")[0]
    tokens = re.findall(r"[{}]|[^\s{}]+", hierarchy)
    parents: list[int] = []
    offsets: list[list[float]] = []
    names: list[str] = []
    stack: list[int] = []
    pending: str | None = None
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t in ("ROOT", "JOINT"):
            pending = tokens[i + 1]
            i += 2
            continue
        if t == "End":
            pending = f"{names[stack[-1]]}_end_{len(names)}"
            i += 2
            continue
        if t == "{":
            if pending is not None:
                parents.append(stack[-1] if stack else -1)
                names.append(pending)
                offsets.append([0.0, 0.0, 0.0])
                stack.append(len(names) - 1)
                pending = None
        elif t == "}":
            stack.pop()
        elif t == "OFFSET":
            offsets[stack[-1]] = [float(v) for v in tokens[i + 1 : i + 4]]
            i += 4
            continue
        i += 1
    return parents, np.array(offsets), names
