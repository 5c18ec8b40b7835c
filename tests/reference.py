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


def gltf_document(path: Path) -> tuple[dict, dict]:
    """The JSON and the buffers (index -> bytes) of a .gltf/.glb, read with
    the standard library only (independent of fastkin.io)."""
    import base64
    import json
    import struct

    raw = Path(path).read_bytes()
    binary = None
    if raw[:4] == b"glTF":
        json_length = struct.unpack_from("<I", raw, 12)[0]
        document = json.loads(raw[20 : 20 + json_length])
        at = 20 + json_length
        if at < len(raw):
            binary = raw[at + 8 : at + 8 + struct.unpack_from("<I", raw, at)[0]]
    else:
        document = json.loads(raw)
    buffers = {}
    for i, spec in enumerate(document.get("buffers", [])):
        uri = spec.get("uri")
        if uri is None:
            buffers[i] = binary
        elif uri.startswith("data:"):
            buffers[i] = base64.b64decode(uri.split(",", 1)[1])
        else:
            buffers[i] = (Path(path).parent / uri).read_bytes()
    return document, buffers


def gltf_accessor(document: dict, buffers: dict, index: int) -> np.ndarray:
    spec = document["accessors"][index]
    view = document["bufferViews"][spec["bufferView"]]
    dtype = {5120: "i1", 5121: "u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}[spec["componentType"]]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}[spec["type"]]
    size = np.dtype(dtype).itemsize
    stride = view.get("byteStride", size * width)
    start = view.get("byteOffset", 0) + spec.get("byteOffset", 0)
    rows = [
        np.frombuffer(buffers[view["buffer"]], dtype, count=width, offset=start + k * stride)
        for k in range(spec["count"])
    ]
    return np.array(rows, dtype=np.float64)


def gltf_world_matrices(document: dict, buffers: dict, animation: dict | None, times: np.ndarray) -> np.ndarray:
    """(T, N, 4, 4) world matrices of every node at `times`, composing each
    node's T * R * S (or matrix) down the node tree, with LINEAR channels
    sampled by np.interp and scipy's Slerp (scale included)."""
    from scipy.spatial.transform import Slerp

    nodes = document["nodes"]
    count = len(times)
    local = np.zeros((count, len(nodes), 4, 4))
    animated = {}
    for channel in (animation or {}).get("channels", []):
        sampler = animation["samplers"][channel["sampler"]]
        key_times = gltf_accessor(document, buffers, sampler["input"])[:, 0]
        values = gltf_accessor(document, buffers, sampler["output"])
        animated[(channel["target"]["node"], channel["target"]["path"])] = (key_times, values)
    for n, node in enumerate(nodes):
        if "matrix" in node and not any((n, p) in animated for p in ("translation", "rotation", "scale")):
            local[:, n] = np.array(node["matrix"]).reshape(4, 4).T
            continue
        parts = {}
        for kind, default in (("translation", [0, 0, 0]), ("rotation", [0, 0, 0, 1]), ("scale", [1, 1, 1])):
            if (n, kind) in animated:
                key_times, values = animated[(n, kind)]
                clipped = np.clip(times, key_times[0], key_times[-1])
                if kind == "rotation":
                    if len(key_times) == 1:
                        parts[kind] = np.tile(values[0], (count, 1))
                    else:
                        parts[kind] = Slerp(key_times, Rotation.from_quat(values))(clipped).as_quat()
                else:
                    parts[kind] = np.stack([np.interp(clipped, key_times, values[:, c]) for c in range(3)], -1)
            else:
                parts[kind] = np.tile(np.array(node.get(kind, default), dtype=np.float64), (count, 1))
        matrix = np.zeros((count, 4, 4))
        matrix[:, :3, :3] = Rotation.from_quat(parts["rotation"]).as_matrix() * parts["scale"][:, None, :]
        matrix[:, :3, 3] = parts["translation"]
        matrix[:, 3, 3] = 1.0
        local[:, n] = matrix
    parent_of = {c: i for i, node in enumerate(nodes) for c in node.get("children", [])}
    world = np.zeros_like(local)
    done: set[int] = set()

    def visit(n: int) -> None:
        if n in done:
            return
        p = parent_of.get(n)
        if p is None:
            world[:, n] = local[:, n]
        else:
            visit(p)
            world[:, n] = world[:, p] @ local[:, n]
        done.add(n)

    for n in range(len(nodes)):
        visit(n)
    return world


def lbs_reference(transforms, vertices, joint_indices, weights, points=True):
    """Linear blend skinning in float64, one influence at a time:
    sum_k w_k (R_k v + t_k) / sum_k w_k (t_k dropped for directions)."""
    transforms = np.asarray(transforms, np.float64)
    vertices = np.asarray(vertices, np.float64)
    weights = np.asarray(weights, np.float64)
    weights = weights / weights.sum(axis=1, keepdims=True)
    out = np.zeros(transforms.shape[:-3] + (len(joint_indices), 3))
    for k in range(joint_indices.shape[1]):
        m = transforms[..., joint_indices[:, k], :, :]  # (..., V, 3, 4)
        moved = np.einsum("...vij,...vj->...vi", m[..., :3], np.broadcast_to(vertices, out.shape))
        if points:
            moved = moved + m[..., 3]
        out += weights[:, k, None] * moved
    return out


def dqs_reference(transforms, vertices, joint_indices, weights, points=True):
    """Dual-quaternion skinning in float64, vertex by vertex with scipy's
    quaternions (Kavan et al.): blend (q, (t, 0) q / 2) with each influence
    flipped onto the first one's hemisphere, normalise by |real|, apply."""
    transforms = np.asarray(transforms, np.float64)
    batch = transforms.shape[:-3]
    flat = transforms.reshape((-1,) + transforms.shape[-3:])
    vertices = (
        np.broadcast_to(np.asarray(vertices, np.float64), batch + (len(joint_indices), 3))
        .reshape(len(flat), -1, 3)
        .copy()
    )
    out = np.zeros_like(vertices)
    for b, pose in enumerate(flat):
        real = Rotation.from_matrix(pose[:, :, :3]).as_quat()  # xyzw
        t = np.concatenate([pose[:, :, 3], np.zeros((len(pose), 1))], axis=1)
        dual = 0.5 * _quat_product(t, real)
        for v, (joints, w) in enumerate(zip(joint_indices, weights)):
            signs = np.where(real[joints] @ real[joints[0]] < 0, -1.0, 1.0)
            blend_real = (signs * w) @ real[joints]
            blend_dual = (signs * w) @ dual[joints]
            norm = np.linalg.norm(blend_real)
            blend_real, blend_dual = blend_real / norm, blend_dual / norm
            moved = Rotation.from_quat(blend_real).apply(vertices[b, v])
            if points:
                conj = blend_real * [-1, -1, -1, 1]
                moved = moved + 2 * _quat_product(blend_dual, conj)[:3]
            out[b, v] = moved
    return out.reshape(batch + (len(joint_indices), 3))


def _quat_product(a, b):
    """Hamilton product of xyzw quaternions (..., 4)."""
    av, aw = a[..., :3], a[..., 3:]
    bv, bw = b[..., :3], b[..., 3:]
    return np.concatenate([aw * bv + bw * av + np.cross(av, bv), aw * bw - np.sum(av * bv, -1, keepdims=True)], -1)


def random_rigid_transforms(rng: np.random.Generator, shape, scale: float = 1.0) -> np.ndarray:
    """Random (..., 3, 4) rotation + translation matrices."""
    rotation = Rotation.from_quat(random_quaternions(rng, (int(np.prod(shape)),))).as_matrix()
    out = np.concatenate([rotation, scale * rng.normal(size=(len(rotation), 3, 1))], axis=-1)
    return out.reshape(tuple(shape) + (3, 4))


def primary_children_reference(parents, offsets) -> list[int]:
    """The documented primary-child rule, written out joint by joint: the
    child with the longest offset (lowest index on ties), skipping bones
    shorter than 1e-9 of the longest; -1 for none."""
    lengths = [float(np.sqrt(np.dot(o, o))) for o in np.asarray(offsets, np.float64)]
    longest = max([lengths[j] for j, p in enumerate(parents) if p >= 0], default=0.0)
    chosen = []
    for j in range(len(parents)):
        best = -1
        for c, p in enumerate(parents):
            if p == j and lengths[c] > 1e-9 * longest and (best < 0 or lengths[c] > lengths[best]):
                best = c
        chosen.append(best)
    return chosen


def bone_frames_reference(parents, offsets, rest_rotations, primary=None) -> np.ndarray:
    """(J, 3, 3) rest bone frames from rest-pose joint positions (fk_reference):
    first column towards the primary child, else from the parent, else the
    joint's rest x axis; second the least-aligned world axis, orthogonalised;
    third their cross product."""
    parents = list(parents)
    offsets = np.asarray(offsets, np.float64)
    primary = primary_children_reference(parents, offsets) if primary is None else primary
    rest_r, rest_p = fk_reference(parents, offsets, rest_rotations)
    lengths = np.linalg.norm(offsets, axis=1)
    longest = max([lengths[j] for j, p in enumerate(parents) if p >= 0], default=0.0)
    frames = np.zeros((len(parents), 3, 3))
    for j, p in enumerate(parents):
        if primary[j] >= 0:
            bone = rest_p[primary[j]] - rest_p[j]
        elif p >= 0 and lengths[j] > 1e-9 * longest:
            bone = rest_p[j] - rest_p[p]
        else:
            bone = rest_r[j][:, 0]
        first = bone / np.linalg.norm(bone)
        axis = np.eye(3)[min(range(3), key=lambda k: abs(first[k]))]
        second = axis - np.dot(axis, first) * first
        second = second / np.linalg.norm(second)
        frames[j] = np.column_stack([first, second, np.cross(first, second)])
    return frames


def bone_world_reference(parents, offsets, rest_rotations, rotations, frames) -> np.ndarray:
    """Q_j = W_j W0_jᵀ A_j in float64, (..., J, 3, 3)."""
    world = fk_reference(parents, offsets, rotations)[0]
    rest_world = fk_reference(parents, offsets, rest_rotations)[0]
    return world @ np.swapaxes(rest_world, -1, -2) @ frames


def bone_local_reference(parents, offsets, rest_rotations, bone_rotations, frames) -> np.ndarray:
    """Local rotations from Q: W_j = Q_j A_jᵀ W0_j, L_j = W_pᵀ W_j (a joint loop)."""
    rest_world = fk_reference(parents, offsets, rest_rotations)[0]
    world = np.asarray(bone_rotations, np.float64) @ np.swapaxes(frames, -1, -2) @ rest_world
    local = world.copy()
    for j, p in enumerate(parents):
        if p >= 0:
            local[..., j, :, :] = np.swapaxes(world[..., p, :, :], -1, -2) @ world[..., j, :, :]
    return local


def body_model_reference(arrays: dict, betas=None, pose=None, translation=None, pose_form="axis_angle"):
    """An SMPL-style body model in float64, written the textbook way: one
    pose at a time, 4x4 homogeneous world transforms by a loop over the
    joints, one vertex at a time for the skin, translation added at the
    end. ``arrays`` holds v_template (V,3), shapedirs (V,3,S), posedirs
    (V,3,P), J_regressor (J,V), weights (V,J) dense and parents (J,).
    Returns (vertices (..., V, 3), joints (..., J, 3))."""
    v_template = np.asarray(arrays["v_template"], np.float64)
    shapedirs = np.asarray(arrays["shapedirs"], np.float64)
    posedirs = np.asarray(arrays["posedirs"], np.float64)
    regressor = np.asarray(arrays["J_regressor"], np.float64)
    weights = np.asarray(arrays["weights"], np.float64)
    parents = [int(p) for p in arrays["parents"]]
    num_vertices, num_joints = len(v_template), len(parents)
    trailing = {"axis_angle": 2, "quaternion": 2, "matrix": 3}[pose_form]
    shapes = []
    if betas is not None:
        betas = np.asarray(betas, np.float64)
        shapes.append(betas.shape[:-1])
    if pose is not None:
        pose = np.asarray(pose, np.float64)
        shapes.append(pose.shape[: pose.ndim - trailing])
    if translation is not None:
        translation = np.asarray(translation, np.float64)
        shapes.append(translation.shape[:-1])
    batch = np.broadcast_shapes(*shapes) if shapes else ()
    count = int(np.prod(batch, dtype=np.int64))
    betas_flat = (
        np.zeros((count, 0)) if betas is None else np.broadcast_to(betas, batch + betas.shape[-1:]).reshape(count, -1)
    )
    if pose is None:
        pose_flat = None
    else:
        core = pose.shape[pose.ndim - trailing :]
        pose_flat = np.broadcast_to(pose, batch + core).reshape((count,) + core).copy()
    shift_flat = (
        np.zeros((count, 3)) if translation is None else np.broadcast_to(translation, batch + (3,)).reshape(count, 3)
    )
    vertices_out = np.zeros((count, num_vertices, 3))
    joints_out = np.zeros((count, num_joints, 3))
    for b in range(count):
        shaped = v_template.copy()
        for s, beta in enumerate(betas_flat[b]):
            shaped += beta * shapedirs[:, :, s]
        rest = regressor @ shaped
        if pose_flat is None:
            local = np.tile(np.eye(3), (num_joints, 1, 1))
        elif pose_form == "axis_angle":
            local = Rotation.from_rotvec(pose_flat[b]).as_matrix()
        elif pose_form == "quaternion":
            local = Rotation.from_quat(pose_flat[b]).as_matrix()
        else:
            local = pose_flat[b]
        feature = (
            np.concatenate([(local[j] - np.eye(3)).ravel() for j in range(1, num_joints)])
            if num_joints > 1
            else np.zeros(0)
        )
        posed = shaped + np.einsum("vcp,p->vc", posedirs, feature)
        world = np.zeros((num_joints, 4, 4))
        for j, p in enumerate(parents):
            step = np.eye(4)
            step[:3, :3] = local[j]
            step[:3, 3] = rest[j] if p < 0 else rest[j] - rest[p]
            world[j] = step if p < 0 else world[p] @ step
        skinning = np.zeros((num_joints, 4, 4))
        for j in range(num_joints):
            unbind = np.eye(4)
            unbind[:3, 3] = -rest[j]
            skinning[j] = world[j] @ unbind
        for v in range(num_vertices):
            blended = np.einsum("j,jab->ab", weights[v], skinning)
            vertices_out[b, v] = (blended @ np.append(posed[v], 1.0))[:3] + shift_flat[b]
        joints_out[b] = world[:, :3, 3] + shift_flat[b]
    return vertices_out.reshape(batch + (num_vertices, 3)), joints_out.reshape(batch + (num_joints, 3))


def two_bone_reference(root, mid, end, target, pole=None):
    """Two-bone IK for one limb by the law of cosines at the root (angles,
    not the kernel's Heron form): new (mid, end) in float64. The bend side is
    towards the pole, else the current plane's normal turned perpendicular to
    the root-target line (non-degenerate inputs only)."""
    root, mid, end, target = (np.asarray(x, np.float64) for x in (root, mid, end, target))
    l1 = np.linalg.norm(mid - root)
    l2 = np.linalg.norm(end - mid)
    to_target = target - root
    distance = np.linalg.norm(to_target)
    u = to_target / distance
    reach = min(max(distance, abs(l1 - l2)), l1 + l2)
    cos_root = (l1 * l1 + reach * reach - l2 * l2) / (2.0 * l1 * reach)
    angle = np.arccos(np.clip(cos_root, -1.0, 1.0))
    if pole is None:
        side = np.cross(u, np.cross(mid - root, end - root))
    else:
        to_pole = np.asarray(pole, np.float64) - root
        side = to_pole - np.dot(to_pole, u) * u
    side /= np.linalg.norm(side)
    new_mid = root + l1 * (np.cos(angle) * u + np.sin(angle) * side)
    return new_mid, root + reach * u


def fabrik_reference(positions, parents, targets, target_joints, passes, fixed_root=True):
    """Multi-end-effector FABRIK on one frame, exactly ``passes`` passes, no
    early stop and no reachability shortcut: plain loops in float64.
    Returns the positions (J, 3)."""
    start = np.asarray(positions, np.float64)
    p = start.copy()
    targets = np.asarray(targets, np.float64)
    J = len(parents)
    lengths = [np.linalg.norm(start[j] - start[parents[j]]) if parents[j] >= 0 else 0.0 for j in range(J)]
    goal = {int(j): targets[t] for t, j in enumerate(target_joints)}
    active = [False] * J
    for j in reversed(range(J)):
        if j in goal or any(active[c] for c in range(j + 1, J) if parents[c] == j):
            active[j] = True

    def unit(v):
        return v / np.linalg.norm(v)

    for _ in range(passes):
        proposals = {j: [] for j in range(J)}
        backward = {}
        for j in reversed(range(J)):
            if not active[j]:
                continue
            wanted = proposals[j] + ([goal[j]] if j in goal else [])
            backward[j] = np.mean(wanted, axis=0)
            if parents[j] >= 0:
                parent = parents[j]
                proposals[parent].append(backward[j] + lengths[j] * unit(p[parent] - backward[j]))
        for j in range(J):
            if not active[j]:
                continue
            if parents[j] < 0:
                if not fixed_root:
                    p[j] = backward[j]
            else:
                p[j] = p[parents[j]] + lengths[j] * unit(backward[j] - p[parents[j]])
    # Joints leading to no target: rigid with their nearest active ancestor,
    # turned by the smallest rotation of that ancestor's bone (scipy).
    for j in range(J):
        if active[j] or parents[j] < 0:
            continue
        anchor = parents[j]
        while not active[anchor] and parents[anchor] >= 0:
            anchor = parents[anchor]
        if not active[anchor]:
            continue
        turn = np.eye(3)
        above = parents[anchor]
        if above >= 0 and lengths[anchor] > 0:
            before, after = unit(start[anchor] - start[above]), unit(p[anchor] - p[above])
            axis = np.cross(before, after)
            angle = np.arctan2(np.linalg.norm(axis), np.dot(before, after))
            if np.linalg.norm(axis) > 0:
                turn = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()
        p[j] = p[parents[j]] + turn @ (start[j] - start[parents[j]])
    return p


def analytic_ik_reference(parents, offsets, rest_rotations, positions, reference=None):
    """Analytic IK the slow way (docs/ik.md): local rotation matrices
    (F, J, 3, 3) and root translation (F, 3) for positions (F, J, 3), one
    frame and joint at a time in float64, every fit by scipy's
    Rotation.align_vectors (the shortest rotation for one vector pair,
    Kabsch for several). Degenerate fits (collinear children, half turns)
    are not handled: use data without them."""
    parents = [int(p) for p in parents]
    num_joints = len(parents)
    offsets = np.asarray(offsets, dtype=np.float64)
    rest = Rotation.from_quat(np.asarray(rest_rotations, dtype=np.float64)).as_matrix()
    children = [[c for c in range(num_joints) if parents[c] == j] for j in range(num_joints)]
    bones = [float(np.linalg.norm(offsets[c])) for c in range(num_joints) if parents[c] >= 0]
    zero_length = 1e-9 * max(bones, default=0.0)
    usable = [float(np.linalg.norm(offsets[c])) > zero_length for c in range(num_joints)]

    def targets(joint):
        """[(target joint, zero-length joints passed on the way)]."""
        direct = [c for c in children[joint] if usable[c]]
        if direct:
            return [(c, []) for c in direct]
        return [(g, [c] + path) for c in children[joint] for g, path in targets(c)]

    def rest_vector(target, path):
        """From a joint to `target` in the joint's frame, the joints on `path` at rest."""
        turn, vector = np.eye(3), np.zeros(3)
        for x in path:
            vector = vector + turn @ offsets[x]
            turn = turn @ rest[x]
        return vector + turn @ offsets[target]

    positions = np.asarray(positions, dtype=np.float64).reshape(-1, num_joints, 3)
    count = len(positions)
    if reference is not None:
        reference_local = local_matrices(reference, num_joints).reshape(-1, num_joints, 3, 3)
        reference_local = np.broadcast_to(reference_local, (count, num_joints, 3, 3))
        reference_world, reference_positions = fk_reference(parents, offsets, reference_local)
    first_root = parents.index(-1)
    local = np.zeros((count, num_joints, 3, 3))
    root_translation = positions[:, first_root] - offsets[first_root]
    for f in range(count):
        world = np.zeros((num_joints, 3, 3))
        for j, p in enumerate(parents):
            parent_world = world[p] if p >= 0 else np.eye(3)
            if reference is None:
                start = parent_world @ rest[j]
                rest_vectors = [start @ rest_vector(g, path) for g, path in targets(j)]
            else:
                start = reference_world[f, j]
                rest_vectors = [reference_positions[f, g] - reference_positions[f, j] for g, _ in targets(j)]
            posed = [positions[f, g] - positions[f, j] for g, _ in targets(j)]
            pairs = [(a, b) for a, b in zip(rest_vectors, posed) if np.linalg.norm(b) > 1e-9 * np.linalg.norm(a)]
            turn = np.eye(3)
            if pairs:
                a, b = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
                turn = Rotation.align_vectors(b, a)[0].as_matrix()
            world[j] = turn @ start
            local[f, j] = parent_world.T @ world[j]
    return local, root_translation
