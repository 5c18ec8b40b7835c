"""glTF 2.0 skins and animations (.gltf with .bin or data URIs, and .glb).

One :class:`Character` per skin: a Skeleton built from the skin's joints
(reordered so parents come first; ``joint_nodes`` maps each joint back to
its glTF node), the inverse bind matrices, the skinned mesh primitives, and
every animation as a Motion sampled at a chosen frame rate.

Node transforms above and between joints are folded in: a joint's offset and
rest rotation are its transform relative to its nearest joint ancestor (the
scene root for the skeleton's roots). fk has no scale, so uniform node
scales are folded into the offsets of the nodes below them (exact for
uniform scale); a non-uniform scale is approximated by its mean with a
warning.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import urllib.parse
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..motion import Motion
from ..rotations import matrix_to_quat, quat_slerp, quat_to_matrix
from ..skeleton import Skeleton
from .errors import FormatError

__all__ = ["load_gltf", "Character", "SkinnedMesh"]

PathLike = Union[str, "os.PathLike[str]"]

_COMPONENTS: dict[int, type[np.number]] = {
    5120: np.int8,
    5121: np.uint8,
    5122: np.int16,
    5123: np.uint16,
    5125: np.uint32,
    5126: np.float32,
}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_GLB_MAGIC, _JSON_CHUNK, _BIN_CHUNK = 0x46546C67, 0x4E4F534A, 0x004E4942
# Bounds on what a file may make the reader allocate without data behind it.
_MAX_ZERO_ELEMENTS = 1 << 24
_MAX_SAMPLED_FRAMES = 1 << 20


@dataclass(frozen=True)
class SkinnedMesh:
    """One skinned primitive: ``positions (V, 3)``, ``normals (V, 3)`` or
    None, ``joints (V, K)`` indices into the Character's skeleton,
    ``weights (V, K)``, ``faces (F, 3)`` triangles or None.

    Example:
        >>> import numpy as np
        >>> quad = SkinnedMesh("quad", np.zeros((4, 3)), None, np.zeros((4, 1), int), np.ones((4, 1)),
        ...                    np.array([[0, 1, 2], [0, 2, 3]]))
        >>> quad.faces.shape
        (2, 3)
    """

    name: str
    positions: np.ndarray
    normals: Optional[np.ndarray]
    joints: np.ndarray
    weights: np.ndarray
    faces: Optional[np.ndarray]


@dataclass(frozen=True)
class Character:
    """A skin of a glTF file: its skeleton, ``joint_nodes`` (the glTF node of
    each skeleton joint), ``inverse_bind_matrices (J, 4, 4)`` in skeleton
    order, the skinned ``meshes`` and the ``animations`` (name -> Motion).

    fastkin's joint frames have no scale, so each joint's accumulated (rest)
    node scale is folded into its inverse bind matrix: with them,
    :func:`fastkin.skinning_transforms` reproduces glTF's skinning.

    Example:
        >>> import numpy as np, fastkin
        >>> arm = fastkin.Skeleton([-1, 0], [[0, 0, 0], [0, 1, 0]])
        >>> c = Character("arm", arm, (3, 4), np.tile(np.eye(4), (2, 1, 1)))
        >>> c.joint_nodes[c.skeleton.index("joint_1")]  # the glTF node of joint 1
        4
    """

    name: str
    skeleton: Skeleton
    joint_nodes: tuple
    inverse_bind_matrices: np.ndarray
    meshes: list = field(default_factory=list)
    animations: dict = field(default_factory=dict)


def load_gltf(path: PathLike, fps: float = 30.0) -> list[Character]:
    """Reads the skins of a glTF 2.0 file (``.gltf`` or ``.glb``).

    Animations are sampled at ``fps`` from time 0 to their last key with
    the interpolation each channel asks for (STEP, LINEAR with slerp for
    rotations, CUBICSPLINE).

    Example:
        >>> import fastkin  # doctest: +SKIP
        >>> fox = fastkin.io.load_gltf("Fox.glb")[0]  # doctest: +SKIP
        >>> fox.skeleton.num_joints, sorted(fox.animations)  # doctest: +SKIP
        (24, ['Run', 'Survey', 'Walk'])
    """
    path = Path(path)
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    document, binary = _read_container(path)
    reader = _Accessors(path, document, binary)
    nodes = document.get("nodes", [])
    parent_of = _node_parents(path, nodes)
    characters = []
    for skin_index, skin in enumerate(document.get("skins", [])):
        try:
            characters.append(_character(path, document, reader, nodes, parent_of, skin_index, skin, fps))
        except FormatError:
            raise
        except (TypeError, KeyError, IndexError, ValueError, AttributeError, OverflowError) as error:
            # JSON values of the wrong type or size deep in the document.
            raise FormatError(
                path, None, f"skin {skin_index}: malformed document ({type(error).__name__}: {error})"
            ) from None
    return characters


# -- containers and accessors --------------------------------------------------------------------


def _read_container(path: Path) -> tuple[dict, Optional[bytes]]:
    raw = path.read_bytes()
    binary = None
    if raw[:4] == b"glTF":
        if len(raw) < 20:
            raise FormatError(path, None, "truncated GLB header")
        _, version, length = struct.unpack_from("<III", raw, 0)
        if version != 2 or length > len(raw):
            raise FormatError(path, None, f"GLB version {version}, declared length {length} of {len(raw)} bytes")
        chunks: dict[int, bytes] = {}
        at = 12
        while at + 8 <= length:
            size, kind = struct.unpack_from("<II", raw, at)
            if at + 8 + size > length:
                raise FormatError(path, None, f"GLB chunk at byte {at} runs past the end of the file")
            chunks.setdefault(kind, raw[at + 8 : at + 8 + size])
            at += 8 + size
        if _JSON_CHUNK not in chunks:
            raise FormatError(path, None, "GLB without a JSON chunk")
        text, binary = chunks[_JSON_CHUNK], chunks.get(_BIN_CHUNK)
    else:
        text = raw
    try:
        document = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise FormatError(path, getattr(error, "lineno", None), f"invalid JSON: {error}") from None
    asset = document.get("asset") if isinstance(document, dict) else None
    if not isinstance(asset, dict) or not str(asset.get("version", "")).startswith("2"):
        raise FormatError(path, None, "not a glTF 2.0 document (asset.version must be 2.x)")
    return document, binary


class _Accessors:
    """Decodes accessors (vectorised numpy views over the buffers, copied)."""

    def __init__(self, path: Path, document: dict, binary: Optional[bytes]) -> None:
        self.path, self.document, self.binary = path, document, binary
        self.buffers: dict[int, bytes] = {}

    def buffer(self, index: int) -> bytes:
        if index not in self.buffers:
            spec = _item(self.document, "buffers", index, self.path)
            uri = spec.get("uri")
            if uri is None:
                if self.binary is None:
                    raise FormatError(
                        self.path, None, f"buffer {index} has no uri and the file has no GLB binary chunk"
                    )
                data = self.binary
            elif uri.startswith("data:"):
                header, _, payload = uri.partition(",")
                if not header.endswith(";base64"):
                    raise FormatError(self.path, None, f"buffer {index}: only base64 data URIs are supported")
                try:
                    data = base64.b64decode(payload, validate=True)
                except ValueError:
                    raise FormatError(self.path, None, f"buffer {index}: malformed base64 data URI") from None
            else:
                file = self.path.parent / urllib.parse.unquote(uri)
                if not file.is_file():
                    raise FormatError(self.path, None, f"buffer {index}: missing file {file.name}")
                data = file.read_bytes()
            if len(data) < int(spec.get("byteLength", 0)):
                raise FormatError(self.path, None, f"buffer {index} holds {len(data)} bytes, fewer than its byteLength")
            self.buffers[index] = data
        return self.buffers[index]

    def __call__(self, index: int) -> np.ndarray:
        """Accessor ``index`` as a (count, width) array (float64 for normalized
        integer data and floats, integers otherwise)."""
        spec = _item(self.document, "accessors", index, self.path)
        where = f"accessor {index}"
        try:
            dtype = np.dtype(_COMPONENTS[spec["componentType"]])
            width = _WIDTH[spec["type"]]
            count = int(spec["count"])
        except (KeyError, TypeError, ValueError, OverflowError):
            raise FormatError(self.path, None, f"{where}: bad componentType, type or count") from None
        if "sparse" in spec:
            raise FormatError(self.path, None, f"{where}: sparse accessors are not supported yet")
        if count < 0:
            raise FormatError(self.path, None, f"{where}: negative count")
        if "bufferView" not in spec:
            if count > _MAX_ZERO_ELEMENTS:
                raise FormatError(self.path, None, f"{where}: {count} elements without a buffer view")
            values = np.zeros((count, width), dtype)
        else:
            view = _item(self.document, "bufferViews", spec["bufferView"], self.path)
            data = self.buffer(view.get("buffer", -1))
            view_start = int(view.get("byteOffset", 0))
            view_length = int(view.get("byteLength", -1))
            start = view_start + int(spec.get("byteOffset", 0))
            element = dtype.itemsize * width
            stride = int(view.get("byteStride", 0)) or element
            end = start + (stride * (count - 1) + element if count else 0)
            if (
                view_length < 0
                or view_start + view_length > len(data)
                or start < view_start
                or end > view_start + view_length
            ):
                raise FormatError(
                    self.path, None, f"{where}: {count} elements do not fit in buffer view {spec['bufferView']}"
                )
            values = np.ndarray(
                (count, width), dtype, buffer=data, offset=start, strides=(stride, dtype.itemsize)
            ).copy()
        if spec.get("normalized") and dtype.kind in "iu":
            values = np.maximum(values / np.iinfo(dtype).max, -1.0)
        elif dtype.kind == "f":
            values = values.astype(np.float64)
            if not np.all(np.isfinite(values)):
                raise FormatError(self.path, None, f"{where}: non-finite values")
        return values


def _node_parents(path: Path, nodes: list) -> dict:
    """Child -> parent over the node tree, checked to be a forest (a node
    with two parents, or a cycle, would make the walks below loop)."""
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        raise FormatError(path, None, "nodes must be a list of objects")
    parent_of: dict = {}
    for i, node in enumerate(nodes):
        children = node.get("children", [])
        if not isinstance(children, list):
            raise FormatError(path, None, f"node {i}: children must be a list")
        for c in children:
            if not isinstance(c, int) or not 0 <= c < len(nodes) or c in parent_of:
                raise FormatError(path, None, f"node {i}: child {c!r} is not a node, or has two parents")
            parent_of[c] = i
    for start in range(len(nodes)):
        current, steps = start, 0
        while current in parent_of:
            current, steps = parent_of[current], steps + 1
            if steps > len(nodes):
                raise FormatError(path, None, f"the node hierarchy has a cycle through node {start}")
    return parent_of


def _item(document: dict, kind: str, index, path: Path) -> dict:
    items = document.get(kind, [])
    if not isinstance(index, int) or not 0 <= index < len(items) or not isinstance(items[index], dict):
        raise FormatError(path, None, f"reference to {kind}[{index}], which does not exist")
    return items[index]


# -- transforms -------------------------------------------------------------------------------------


def _rest_trs(node: dict, index: int, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A node's rest translation, xyzw rotation and scale (a matrix is split)."""
    for key, size in (("matrix", 16), ("translation", 3), ("rotation", 4), ("scale", 3)):
        value = node.get(key)
        if value is not None and not (
            isinstance(value, list)
            and len(value) == size
            and all(isinstance(v, (int, float)) and np.isfinite(v) for v in value)
        ):
            raise FormatError(path, None, f"node {index}: {key} must be {size} finite numbers")
    if "rotation" in node and not any(node["rotation"]):
        raise FormatError(path, None, f"node {index}: rotation is a zero quaternion")
    if "matrix" in node:
        m = np.array(node["matrix"], dtype=np.float64).reshape(4, 4).T  # glTF is column-major
        scale = np.linalg.norm(m[:3, :3], axis=0)
        rotation = m[:3, :3] / scale
        if np.linalg.det(rotation) < 0:  # a mirror: keep a proper rotation, flip one axis's scale
            rotation[:, 0] *= -1
            scale[0] *= -1
        return m[:3, 3], matrix_to_quat(rotation), scale
    return (
        np.array(node.get("translation", [0, 0, 0]), dtype=np.float64),
        np.array(node.get("rotation", [0, 0, 0, 1]), dtype=np.float64),
        np.array(node.get("scale", [1, 1, 1]), dtype=np.float64),
    )


def _uniform(scale: np.ndarray, what: str) -> np.ndarray:
    """(..., 3) scales -> (...) uniform scales; warns when they are not uniform."""
    mean = scale.mean(axis=-1)
    if np.any(np.abs(scale - mean[..., None]) > 1e-4 * np.maximum(1.0, np.abs(mean[..., None]))):
        warnings.warn(f"{what} has a non-uniform scale; fastkin uses its mean (fk has no scale)", stacklevel=4)
    return mean


# -- skins ------------------------------------------------------------------------------------------


def _character(path, document, reader, nodes, parent_of, skin_index, skin, fps) -> Character:
    joints = list(skin.get("joints", []))
    if not joints or len(set(joints)) != len(joints):
        raise FormatError(path, None, f"skin {skin_index}: joints must be a non-empty list of distinct nodes")
    for j in joints:
        _item(document, "nodes", j, path)
    joint_set = set(joints)

    def chain(node: int) -> list[int]:
        """Nodes from just below the nearest joint ancestor (or the scene root) down to node."""
        out, current, seen = [node], parent_of.get(node), {node}
        while current is not None and current not in joint_set:
            if current in seen:
                raise FormatError(path, None, f"the node hierarchy has a cycle at node {current}")
            seen.add(current)
            out.append(current)
            current = parent_of.get(current)
        return out[::-1]

    def joint_parent(node: int) -> Optional[int]:
        current = parent_of.get(node)
        while current is not None and current not in joint_set:
            current = parent_of.get(current)
        return current

    def depth(node: int) -> int:
        d, current = 0, joint_parent(node)
        while current is not None:
            d, current = d + 1, joint_parent(current)
        return d

    order = sorted(joints, key=depth)  # parents first; stable within a depth
    index_of = {node: k for k, node in enumerate(order)}
    parents = [index_of[joint_parent(n)] if joint_parent(n) is not None else -1 for n in order]
    chains = [chain(n) for n in order]
    names = [nodes[n].get("name") or f"node_{n}" for n in order]
    if len(set(names)) != len(names):
        names = [f"{name}_{n}" for name, n in zip(names, order)]

    rest = {n: _rest_trs(nodes[n], n, path) for c in chains for n in c}
    translations, rotations, scales = _compose(
        chains, parents, {n: (t[None], r[None], s[None]) for n, (t, r, s) in rest.items()}, names
    )
    skeleton = Skeleton(parents, translations[0], rotations[0], names)

    ibm = np.tile(np.eye(4), (len(joints), 1, 1))
    if "inverseBindMatrices" in skin:
        values = reader(skin["inverseBindMatrices"])
        if values.shape != (len(joints), 16):
            raise FormatError(path, None, f"skin {skin_index}: inverseBindMatrices must hold {len(joints)} MAT4")
        ibm = values.reshape(-1, 4, 4).transpose(0, 2, 1)
    inverse_bind = ibm[[joints.index(n) for n in order]]
    # fastkin's joint frames carry no scale; a joint's accumulated node scale
    # moves into its inverse bind matrix, so W_j · IBM_j is glTF's product.
    inverse_bind[:, :3, :] *= scales[0][:, None, None]

    meshes = _skinned_meshes(path, document, reader, nodes, skin_index, joints, index_of)
    animations = {}
    for a_index, animation in enumerate(document.get("animations", [])):
        motion = _animation(path, reader, animation, a_index, chains, parents, rest, names, skeleton, fps)
        if motion is not None:
            animations[animation.get("name") or f"animation_{a_index}"] = motion
    return Character(skin.get("name") or f"skin_{skin_index}", skeleton, tuple(order), inverse_bind, meshes, animations)


def _compose(chains, parents, trs, names):
    """Per-frame offsets (T, J, 3), local rotations (T, J, 4) and the scale
    accumulated at each joint (T, J), from per-node TRS arrays (T, ...)."""
    num_frames = max(a.shape[0] for values in trs.values() for a in values)
    count = len(chains)
    offsets = np.zeros((num_frames, count, 3))
    rotations = np.zeros((num_frames, count, 4))
    accumulated = np.ones((num_frames, count))
    for j, nodes in enumerate(chains):
        scale = accumulated[:, parents[j]].copy() if parents[j] >= 0 else np.ones(num_frames)
        frame = np.tile(np.eye(3), (num_frames, 1, 1))
        position = np.zeros((num_frames, 3))
        for n in nodes:
            t, r, s = trs[n]
            t, r, s = (
                np.broadcast_to(t, (num_frames, 3)),
                np.broadcast_to(r, (num_frames, 4)),
                np.broadcast_to(s, (num_frames, 3)),
            )
            position = position + scale[:, None] * (frame @ t[..., None])[..., 0]
            frame = frame @ quat_to_matrix(r)
            scale = scale * _uniform(s, f"node {names[j]}")
        offsets[:, j] = position
        rotations[:, j] = matrix_to_quat(frame)
        accumulated[:, j] = scale
    return offsets, rotations, accumulated


def _skinned_meshes(path, document, reader, nodes, skin_index, joints, index_of):
    remap = np.array([index_of[n] for n in joints])
    meshes = []
    for node in nodes:
        if node.get("skin") != skin_index or "mesh" not in node:
            continue
        mesh = _item(document, "meshes", node["mesh"], path)
        for p_index, primitive in enumerate(mesh.get("primitives", [])):
            attributes = primitive.get("attributes", {})
            if not {"POSITION", "JOINTS_0", "WEIGHTS_0"} <= set(attributes):
                continue
            positions = reader(attributes["POSITION"])
            joint_ids = reader(attributes["JOINTS_0"])
            weights = reader(attributes["WEIGHTS_0"]).astype(np.float64)
            if joint_ids.shape != weights.shape or len(joint_ids) != len(positions):
                raise FormatError(
                    path, None, f"mesh {node['mesh']} primitive {p_index}: JOINTS_0/WEIGHTS_0/POSITION sizes differ"
                )
            if joint_ids.size and (joint_ids.min() < 0 or joint_ids.max() >= len(remap)):
                raise FormatError(
                    path, None, f"mesh {node['mesh']} primitive {p_index}: JOINTS_0 indexes past the skin's joints"
                )
            normals = reader(attributes["NORMAL"]) if "NORMAL" in attributes else None
            faces = None
            if primitive.get("mode", 4) == 4:
                ids = (
                    reader(primitive["indices"])[:, 0].astype(np.int64)
                    if "indices" in primitive
                    else np.arange(len(positions))
                )
                if ids.size % 3 or (ids.size and (ids.min() < 0 or ids.max() >= len(positions))):
                    raise FormatError(path, None, f"mesh {node['mesh']} primitive {p_index}: bad triangle indices")
                faces = ids.reshape(-1, 3)
            name = f"{mesh.get('name') or 'mesh_' + str(node['mesh'])}[{p_index}]"
            meshes.append(SkinnedMesh(name, positions, normals, remap[joint_ids.astype(np.int64)], weights, faces))
    return meshes


# -- animations -------------------------------------------------------------------------------------


def _animation(path, reader, animation, a_index, chains, parents, rest, names, skeleton, fps) -> Optional[Motion]:
    samplers = animation.get("samplers", [])
    tracks = {}
    end = 0.0
    for channel in animation.get("channels", []):
        target = channel.get("target", {})
        node, kind = target.get("node"), target.get("path")
        if node not in rest or kind not in ("translation", "rotation", "scale"):
            continue  # morph weights, or nodes that do not move this skeleton
        if not isinstance(channel.get("sampler"), int) or not 0 <= channel["sampler"] < len(samplers):
            raise FormatError(path, None, f"animation {a_index}: channel refers to a missing sampler")
        sampler = samplers[channel["sampler"]]
        times = reader(sampler["input"])[:, 0].astype(np.float64)
        values = reader(sampler["output"]).astype(np.float64)
        interpolation = sampler.get("interpolation", "LINEAR")
        per_key = 3 if interpolation == "CUBICSPLINE" else 1
        if times.size == 0 or values.shape[0] != per_key * times.size or np.any(np.diff(times) < 0) or times[0] < 0:
            raise FormatError(path, None, f"animation {a_index}: sampler input/output sizes or key times are invalid")
        width = 4 if kind == "rotation" else 3
        if values.shape[1] != width or interpolation not in ("LINEAR", "STEP", "CUBICSPLINE"):
            raise FormatError(
                path, None, f"animation {a_index}: a {kind} sampler needs {width}-component {interpolation} output"
            )
        if kind == "rotation" and np.any(np.linalg.norm(values, axis=1) == 0):
            raise FormatError(path, None, f"animation {a_index}: zero quaternion in a rotation sampler")
        tracks[(node, kind)] = (times, values, interpolation)
        end = max(end, float(times[-1]))
    if not tracks:
        return None
    if end * fps > _MAX_SAMPLED_FRAMES:
        raise FormatError(
            path, None, f"animation {a_index}: {end:g} s at {fps:g} fps is more than {_MAX_SAMPLED_FRAMES} frames"
        )
    sample_times = np.arange(int(np.floor(end * fps + 1e-6)) + 1) / fps
    trs = {}
    for n, (t, r, s) in rest.items():
        sampled = []
        for kind, value in (("translation", t), ("rotation", r), ("scale", s)):
            track = tracks.get((n, kind))
            sampled.append(value[None] if track is None else _sample(*track, sample_times, kind == "rotation"))
        trs[n] = tuple(sampled)
    offsets, rotations, _ = _compose(chains, parents, trs, names)
    return Motion(skeleton, rotations, None, fps, offsets)


def _sample(times, values, interpolation, at, is_rotation):
    """Values of a sampler at times ``at`` (held constant outside the keys)."""
    at = np.clip(at, times[0], times[-1])
    k = np.clip(np.searchsorted(times, at, side="right") - 1, 0, times.size - 1)
    k1 = np.minimum(k + 1, times.size - 1)
    span = times[k1] - times[k]
    s = np.where(span > 0, (at - times[k]) / np.where(span > 0, span, 1.0), 0.0)
    if interpolation == "STEP":
        out = values[k]
    elif interpolation == "CUBICSPLINE":
        v = values.reshape(times.size, 3, -1)  # in-tangent, value, out-tangent
        s2, s3 = s * s, s * s * s
        h = [2 * s3 - 3 * s2 + 1, s3 - 2 * s2 + s, -2 * s3 + 3 * s2, s3 - s2]
        out = (
            h[0][:, None] * v[k, 1]
            + (h[1] * span)[:, None] * v[k, 2]
            + h[2][:, None] * v[k1, 1]
            + (h[3] * span)[:, None] * v[k1, 0]
        )
    elif is_rotation:
        out = quat_slerp(values[k], values[k1], s)
    else:
        out = values[k] + s[:, None] * (values[k1] - values[k])
    if is_rotation:
        out = out / np.linalg.norm(out, axis=-1, keepdims=True)
    return out
