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


def bvh_reference_positions(path: Path, frames: list[int]) -> np.ndarray:
    """World joint positions (len(frames), J, 3) of chosen frames of a BVH file,
    by a line-oriented reader independent of fastkin.io (scipy for Euler
    angles; position channels replace offsets; end sites are joints)."""
    lines = Path(path).read_text(errors="replace").replace("\r", "").split("\n")
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    stack: list[int] = []
    pending = None
    row = 0
    while not lines[row].strip().startswith("MOTION"):
        words = lines[row].split()
        row += 1
        if not words:
            continue
        if words[0] in ("ROOT", "JOINT") or words[0] == "End":
            pending = True
        elif words[0] == "{" and pending:
            parents.append(stack[-1] if stack else -1)
            offsets.append([0.0, 0.0, 0.0])
            channels.append([])
            stack.append(len(parents) - 1)
            pending = None
        elif words[0] == "}":
            stack.pop()
        elif words[0] == "OFFSET":
            offsets[stack[-1]] = [float(w) for w in words[1:4]]
        elif words[0] == "CHANNELS":
            channels[stack[-1]] = words[2 : 2 + int(words[1])]
    time_row = next(r for r in range(row, len(lines)) if lines[r].strip().startswith("Frame Time"))
    values = " ".join(lines[time_row + 1 :]).split()
    width = sum(len(c) for c in channels)
    data = np.array([float(v) for v in values[: width * (max(frames) + 1)]]).reshape(-1, width)
    num_joints = len(parents)
    quats = np.zeros((len(frames), num_joints, 4))
    per_frame_offsets = np.tile(np.array(offsets), (len(frames), 1, 1))
    for f_index, frame in enumerate(frames):
        column = 0
        for j, names in enumerate(channels):
            rotation = Rotation.identity()
            for name in names:
                value = data[frame, column]
                column += 1
                if name.endswith("position"):
                    per_frame_offsets[f_index, j, "XYZ".index(name[0])] = value
                else:
                    rotation = rotation * Rotation.from_euler(name[0], value, degrees=True)
            quats[f_index, j] = rotation.as_quat()
    return fk_reference(parents, per_frame_offsets, quats)[1]
