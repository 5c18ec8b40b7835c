"""BVH (Biovision hierarchy) reading and writing.

Conventions (docs/io.md): every ``ROOT``/``JOINT`` and every ``End Site``
becomes a joint (end sites are named ``<parent>_End``, with no channels);
rotation channels compose in the listed order about moving axes (so
``Zrotation Xrotation Yrotation`` is the intrinsic sequence ``"ZXY"``),
in degrees; position channels replace the joint's offset. A single root's
position becomes ``root_translation`` (position minus offset); position
channels of other joints become ``joint_translations``. Units are the
file's (often centimetres) and are never rescaled.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from ..motion import Motion
from ..rotations import euler_to_quat, quat_multiply, quat_to_euler
from ..skeleton import Skeleton
from ._text import number, read_numbers
from .errors import FormatError, line_of

__all__ = ["load_bvh", "save_bvh"]

PathLike = Union[str, "os.PathLike[str]"]

_END_SUFFIX = "_End"
_AXES = "XYZ"
_TOKEN = re.compile(r"[{}]|[^\s{}]+")
_MOTION_HEADER = re.compile(rb"\s*Frames:\s*(\S+)\s+Frame\s+Time:\s*(\S+)")


def load_bvh(path: PathLike) -> Motion:
    """Reads a BVH file into a :class:`fastkin.Motion`.

    Any channel order and count per joint (including 6-channel joints that
    animate translation), end sites, tabs, CRLF line ends and scientific
    notation are accepted. A ``Frames:`` header that disagrees with the
    number of rows loads the rows that are there, with a warning naming both
    numbers. A malformed or truncated file raises
    :class:`fastkin.io.FormatError` (a ValueError) naming the file, the line
    and what is wrong.

    Example:
        >>> import fastkin, tempfile, os
        >>> text = '''HIERARCHY
        ... ROOT Hips
        ... {
        ...   OFFSET 0 0 0
        ...   CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
        ...   End Site
        ...   {
        ...     OFFSET 0 10 0
        ...   }
        ... }
        ... MOTION
        ... Frames: 2
        ... Frame Time: 0.5
        ... 0 0 0 0 0 0
        ... 1 2 3 90 0 0
        ... '''
        >>> path = os.path.join(tempfile.mkdtemp(), "tiny.bvh")
        >>> _ = open(path, "w").write(text)
        >>> motion = fastkin.io.load_bvh(path)
        >>> motion.skeleton.names, motion.fps, motion.positions()[1].round(6)
        (('Hips', 'Hips_End'), 2.0, array([[ 1.,  2.,  3.],
               [-9.,  2.,  3.]]))
    """
    path = Path(path)
    raw = path.read_bytes()
    split = raw.find(b"MOTION")
    if split < 0:
        raise FormatError(path, None, "not a BVH file (no MOTION section)")
    joints = _parse_hierarchy(raw[:split].decode("utf-8", errors="replace"), path)
    if not joints:
        raise FormatError(path, None, "the HIERARCHY section defines no joints")
    frames, frame_time, table_start = _parse_motion_header(raw, split + len(b"MOTION"), path)
    num_channels = sum(len(j.channels) for j in joints)
    data = read_numbers(raw, table_start, path)  # the bulk of the file, parsed in C++
    if num_channels == 0:
        rows = frames
        data = np.zeros((frames, 0))
    else:
        if data.size % num_channels:
            raise FormatError(
                path,
                line_of(raw, len(raw)),
                f"truncated motion data: {data.size} values is not a whole number of {num_channels}-channel frames",
            )
        rows = data.size // num_channels
        data = data.reshape(rows, num_channels)
    if rows != frames:
        warnings.warn(f"{path}: the header says {frames} frames but {rows} rows follow; loading {rows}", stacklevel=2)
    if rows == 0:
        raise FormatError(path, None, "no frames of motion data")
    return _motion(joints, data, frame_time, path)


def save_bvh(path: PathLike, motion: Motion, euler_order: str = "ZYX") -> None:
    """Writes ``motion`` as a BVH file that Blender and other tools open.

    Rotations are written as Euler angles in degrees for the intrinsic
    ``euler_order`` (e.g. ``"ZYX"`` gives ``Zrotation Yrotation Xrotation``);
    roots get position channels, and so does every joint whose
    ``joint_translations`` differ from its offset. Leaf joints named
    ``*_End`` are written as ``End Site``. The file is written to a temporary
    file in the same folder and renamed, so it is never left half-written.

    Example:
        >>> import fastkin, numpy as np, tempfile, os
        >>> sk = fastkin.Skeleton([-1, 0], [[0, 0, 0], [0, 1, 0]], names=["Hips", "Hips_End"])
        >>> motion = fastkin.Motion(sk, np.tile([0.0, 0, 0, 1], (3, 2, 1)), fps=30)
        >>> path = os.path.join(tempfile.mkdtemp(), "out.bvh")
        >>> fastkin.io.save_bvh(path, motion)
        >>> len(fastkin.io.load_bvh(path))
        3
    """
    if not isinstance(motion, Motion):
        raise TypeError(f"motion must be a fastkin.Motion, got {type(motion).__name__}")
    if not (isinstance(euler_order, str) and len(euler_order) == 3 and sorted(euler_order.upper()) == ["X", "Y", "Z"]):
        raise ValueError(f"euler_order must be a permutation of 'XYZ' such as 'ZYX', got {euler_order!r}")
    order = euler_order.upper()
    skeleton = motion.skeleton
    offsets = skeleton.offsets
    parents = skeleton.parents
    translations = motion.joint_translations
    moving = set()
    if translations is not None:
        moving = {int(j) for j in np.flatnonzero(np.any(np.abs(translations - offsets) > 0, axis=(0, 2)))}
    children: list[list[int]] = [[] for _ in range(skeleton.num_joints)]
    for j, p in enumerate(parents):
        if p >= 0:
            children[p].append(j)
    end_sites = {
        j
        for j in range(skeleton.num_joints)
        if not children[j] and skeleton.names[j].endswith(_END_SUFFIX) and parents[j] >= 0
    }
    angles = np.degrees(quat_to_euler(motion.rotations, order))  # (T, J, 3)
    columns = []
    lines = ["HIERARCHY"]

    def write(j: int, depth: int) -> None:
        pad = "\t" * depth
        if j in end_sites:
            lines.extend([f"{pad}End Site", f"{pad}{{", f"{pad}\tOFFSET {_fmt(offsets[j])}", f"{pad}}}"])
            return
        lines.append(f"{pad}{'ROOT' if parents[j] < 0 else 'JOINT'} {skeleton.names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}\tOFFSET {_fmt(offsets[j])}")
        rotation_channels = " ".join(f"{axis}rotation" for axis in order)
        if parents[j] < 0 or j in moving:
            lines.append(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition {rotation_channels}")
            if translations is not None:
                position = translations[:, j] + (motion.root_translation if parents[j] < 0 else 0.0)
            else:
                position = offsets[j] + motion.root_translation
            columns.append(position)
        else:
            lines.append(f"{pad}\tCHANNELS 3 {rotation_channels}")
        columns.append(angles[:, j])
        for c in children[j]:
            write(c, depth + 1)
        lines.append(f"{pad}}}")

    for root in np.flatnonzero(parents < 0):
        write(int(root), 0)
    data = np.concatenate(columns, axis=1) if columns else np.zeros((len(motion), 0))
    lines += ["MOTION", f"Frames: {len(motion)}", f"Frame Time: {1.0 / motion.fps:.10g}"]
    _write_atomically(Path(path), "\n".join(lines) + "\n", data)


# -- reading ---------------------------------------------------------------------------------------


@dataclass
class _Joint:
    name: str
    parent: int
    offset: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    channels: list = field(default_factory=list)


_CHANNELS = {f"{a}{kind}" for a in _AXES for kind in ("position", "rotation")}


def _parse_hierarchy(head: str, path: Path) -> list[_Joint]:
    matches = list(_TOKEN.finditer(head))
    tokens = [m.group() for m in matches]
    joints: list[_Joint] = []
    stack: list[int] = []
    pending: _Joint | None = None
    i = 0

    def fail(message: str, at: int | None = None) -> FormatError:
        at = min(i if at is None else at, len(matches) - 1)
        return FormatError(path, line_of(head, matches[at].start()) if matches else None, message)

    def need(count: int, what: str) -> list[str]:
        if i + count > len(tokens):
            raise fail(f"the hierarchy ends inside {what}")
        return tokens[i : i + count]

    while i < len(tokens):
        token = tokens[i]
        if token == "HIERARCHY":
            i += 1
        elif token in ("ROOT", "JOINT"):
            (name,) = need(2, token)[1:]
            if token == "JOINT" and not stack:
                raise fail(f"JOINT {name} outside any ROOT")
            pending = _Joint(name, stack[-1] if stack else -1)
            i += 2
        elif token == "End":
            if not stack:
                raise fail("End Site outside any joint")
            pending = _Joint(joints[stack[-1]].name + _END_SUFFIX, stack[-1])
            i += 2  # "End Site"
        elif token == "{":
            if pending is None:
                raise fail("'{' without a ROOT, JOINT or End Site before it")
            joints.append(pending)
            stack.append(len(joints) - 1)
            pending = None
            i += 1
        elif token == "}":
            if not stack:
                raise fail("unbalanced '}' in the hierarchy")
            stack.pop()
            i += 1
        elif token == "OFFSET":
            values = need(4, "an OFFSET")[1:]
            if not stack:
                raise fail("OFFSET outside any joint")
            line = line_of(head, matches[i].start())
            joints[stack[-1]].offset = [number(v, path, line, "OFFSET") for v in values]
            i += 4
        elif token == "CHANNELS":
            count = number(need(2, "CHANNELS")[1], path, line_of(head, matches[i].start()), "CHANNELS count")
            if count < 0 or count != int(count) or count > 6:
                raise fail(f"CHANNELS count must be 0 to 6, got {tokens[i + 1]}")
            names = need(2 + int(count), "CHANNELS")[2:]
            bad = [n for n in names if n not in _CHANNELS]
            if bad:
                raise fail(f"unknown channel {bad[0]!r}")
            if not stack:
                raise fail("CHANNELS outside any joint")
            joints[stack[-1]].channels = names
            i += 2 + int(count)
        else:
            raise fail(f"unexpected token {token!r} in the hierarchy")
    if stack:
        raise fail(f"the hierarchy is truncated ({len(stack)} unclosed braces)", len(matches) - 1)
    return joints


def _parse_motion_header(raw: bytes, start: int, path: Path) -> tuple[int, float, int]:
    """Frame count, frame time and the byte offset where the number table starts."""
    match = _MOTION_HEADER.match(raw, start)
    line = line_of(raw, start)
    if not match:
        raise FormatError(path, line, "the MOTION section lacks 'Frames:' and 'Frame Time:' lines")
    frames_text, time_text = match.group(1).decode(errors="replace"), match.group(2).decode(errors="replace")
    frames = number(frames_text, path, line + 1, "Frames")
    frame_time = number(time_text, path, line + 2, "Frame Time")
    if frames < 0 or frames != int(frames):
        raise FormatError(path, line + 1, f"Frames must be a whole number >= 0, got {frames_text}")
    if not frame_time > 0:
        raise FormatError(path, line + 2, f"Frame Time must be positive, got {time_text}")
    return int(frames), frame_time, match.end()


def _motion(joints: list[_Joint], data: np.ndarray, frame_time: float, path: Path) -> Motion:
    num_frames, num_joints = data.shape[0], len(joints)
    parents = [j.parent for j in joints]
    offsets = np.array([j.offset for j in joints], dtype=np.float64)
    try:
        skeleton = Skeleton(parents, offsets, names=[j.name for j in joints])
    except ValueError as error:  # e.g. two joints with one name
        raise FormatError(path, None, str(error)) from None
    rotations = np.zeros((num_frames, num_joints, 4))
    rotations[..., 3] = 1.0
    translations = np.broadcast_to(offsets, (num_frames, num_joints, 3)).copy()
    animated = np.zeros(num_joints, dtype=bool)
    by_order: dict[str, tuple[list[int], list[list[int]]]] = {}
    column = 0
    for index, joint in enumerate(joints):
        rotation_columns: list[int] = []
        order = ""
        for name in joint.channels:
            if name.endswith("position"):
                translations[:, index, _AXES.index(name[0])] = data[:, column]
                animated[index] = True
            else:
                rotation_columns.append(column)
                order += name[0]
            column += 1
        if len(order) == 3 and len(set(order)) == 3:
            group = by_order.setdefault(order, ([], []))
            group[0].append(index)
            group[1].append(rotation_columns)
        else:  # fewer (or repeated) rotation channels: compose one by one
            for axis, c in zip(order, rotation_columns):
                rotations[:, index] = quat_multiply(rotations[:, index], _axis_quat(axis, np.radians(data[:, c])))
    for order, (indices, columns) in by_order.items():
        angles = np.radians(data[:, np.array(columns)])  # (T, n, 3)
        rotations[:, indices] = euler_to_quat(angles, order)
    roots = [j for j, p in enumerate(parents) if p < 0]
    root_translation = np.zeros((num_frames, 3))
    if len(roots) == 1 and animated[roots[0]]:
        root_translation = translations[:, roots[0]] - offsets[roots[0]]
        animated[roots[0]] = False
        translations[:, roots[0]] = offsets[roots[0]]
    joint_translations = translations if animated.any() else None
    return Motion(skeleton, rotations, root_translation, 1.0 / frame_time, joint_translations)


def _axis_quat(axis: str, angle: np.ndarray) -> np.ndarray:
    q = np.zeros(angle.shape + (4,))
    q[..., _AXES.index(axis)] = np.sin(angle / 2)
    q[..., 3] = np.cos(angle / 2)
    return q


# -- writing ---------------------------------------------------------------------------------------


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:.9g}" for v in values)


def _write_atomically(path: Path, header: str, data: np.ndarray) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    handle = tempfile.NamedTemporaryFile("w", dir=folder, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(header)
            np.savetxt(handle, data, fmt="%.9g", delimiter=" ")
        os.replace(handle.name, path)
    except BaseException:
        if os.path.exists(handle.name):
            os.unlink(handle.name)
        raise
