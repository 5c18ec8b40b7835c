"""CMU ASF (skeleton) / AMC (motion) reading.

ASF describes bones in the global rest frame: a unit ``direction``, a
``length``, an ``axis`` (Euler angles giving the bone's local frame C) and
the ``dof`` it animates. AMC lists, per frame, each bone's dof values. The
bone's world rotation is ``W = W_parent C M C^-1`` where M composes the
frame's dof rotations in their listed order about fixed axes; a bone ends at
``its start + W (length * direction)``.

fastkin joints sit at bone *starts* (the root, then one joint per bone, at
its parent bone's end), plus a ``<bone>_end`` joint at the end of every leaf
bone; each joint carries its bone's rotation. Rest rotations are identity,
so the rest pose is the ASF's rest pose. Lengths stay in the file's units
(CMU: multiply by 0.056444 for metres); nothing is rescaled.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..motion import Motion
from ..rotations import euler_to_quat, quat_multiply
from ..skeleton import Skeleton
from ._text import number, read_numbers
from .errors import FormatError, line_of

__all__ = ["load_asf_amc"]

PathLike = Union[str, "os.PathLike[str]"]
_END_SUFFIX = "_end"
_DOFS = {"rx", "ry", "rz", "tx", "ty", "tz"}
_NAME_AT_LINE_START = re.compile(rb"(?m)^[ \t]*[A-Za-z_][^\s]*")


def load_asf_amc(asf: PathLike, amc: PathLike, fps: float = 120.0) -> Motion:
    r"""Reads a CMU ASF skeleton and an AMC motion into a :class:`fastkin.Motion`.

    Args:
        asf: the skeleton file (``.asf``).
        amc: the motion file (``.amc``); every frame must list the same bones.
        fps: the frame rate (AMC files do not store it; CMU captures at 120).

    Example (a one-bone skeleton; CMU files work the same way):
        >>> import fastkin, os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> asf, amc = os.path.join(folder, "t.asf"), os.path.join(folder, "t.amc")
        >>> _ = open(asf, "w").write(
        ...     ":units\n angle deg\n:root\n order TX TY TZ RX RY RZ\n axis XYZ\n"
        ...     ":bonedata\n begin\n name arm\n direction 1 0 0\n length 2\n axis 0 0 0 XYZ\n dof rz\n end\n"
        ...     ":hierarchy\n begin\n root arm\n end\n")
        >>> _ = open(amc, "w").write(":DEGREES\n1\nroot 0 0 0 0 0 0\narm 90\n")
        >>> motion = fastkin.io.load_asf_amc(asf, amc)
        >>> motion.skeleton.names, motion.positions()[0, -1].round(6)
        (('root', 'arm', 'arm_end'), array([0., 2., 0.]))
    """
    asf, amc = Path(asf), Path(amc)
    bones, root, to_radians = _parse_asf(asf)
    names = ["root"] + [b["name"] for b in bones]
    index = {n: i for i, n in enumerate(names)}
    parents = [-1] + [index[b["parent"]] for b in bones]
    end_of = {n: np.zeros(3) for n in names}  # bone vector (length * direction) of each joint's bone
    for b in bones:
        end_of[b["name"]] = b["length"] * b["direction"]
    offsets = [root["position"]] + [end_of[b["parent"]] for b in bones]
    children = {n: 0 for n in names}
    for b in bones:
        children[b["parent"]] += 1
    leaves = [b for b in bones if children[b["name"]] == 0]
    names += [b["name"] + _END_SUFFIX for b in leaves]
    parents += [index[b["name"]] for b in leaves]
    offsets += [end_of[b["name"]] for b in leaves]
    try:
        skeleton = Skeleton(parents, np.array(offsets), names=names)
    except ValueError as error:  # e.g. two bones with one name
        raise FormatError(asf, None, str(error)) from None

    layout, frames = _parse_amc(amc, names[: len(bones) + 1])
    dof_of = {"root": root["order"], **{b["name"]: b["dof"] for b in bones}}
    axis_of = {"root": root["axis"], **{b["name"]: b["axis"] for b in bones}}
    num_frames = frames.shape[0]
    rotations = np.zeros((num_frames, skeleton.num_joints, 4))
    rotations[..., 3] = 1.0
    root_translation = np.zeros((num_frames, 3))
    column = 0
    for name, count in layout:
        dofs = dof_of[name]
        if len(dofs) != count:
            raise FormatError(amc, None, f"bone {name} has {count} values per frame but {len(dofs)} dof in {asf.name}")
        values = frames[:, column : column + count]
        column += count
        motion = np.zeros((num_frames, 4))
        motion[:, 3] = 1.0
        for k, dof in enumerate(dofs):
            if dof.startswith("t"):
                root_translation[:, "xyz".index(dof[1])] = values[:, k]
            elif dof.startswith("r"):
                # Fixed axes in listed order: each new rotation multiplies on the left.
                step = euler_to_quat(_single_axis(dof[1], values[:, k] * to_radians), "xyz")
                motion = quat_multiply(step, motion)
        frame = axis_of[name]  # C, as a unit quaternion
        rotations[:, index[name]] = quat_multiply(quat_multiply(frame, motion), frame * [-1.0, -1.0, -1.0, 1.0])
    # AMC root values are absolute positions; fk adds the root offset.
    return Motion(skeleton, rotations, root_translation - root["position"], fps)


def _single_axis(axis: str, angles: np.ndarray) -> np.ndarray:
    out = np.zeros(angles.shape + (3,))
    out[..., "xyz".index(axis)] = angles
    return out


def _parse_asf(path: Path) -> tuple[list[dict], dict, float]:
    text = path.read_text(errors="replace")
    starts = [0] + [m.end() for m in re.finditer(r"(?m)^\s*:", text)]
    sections = [(text[a:b], line_of(text, a)) for a, b in zip(starts, starts[1:] + [len(text)])]
    to_radians = np.pi / 180.0
    root: dict[str, Any] = {"order": [], "axis": np.array([0.0, 0.0, 0.0, 1.0]), "position": np.zeros(3)}
    bones: list[dict] = []
    hierarchy: dict[str, str] = {}
    for section, first_line in sections:
        lines = section.split("\n")
        keyword = lines[0].split()[0].lower() if lines and lines[0].split() else ""
        if keyword == "units":
            for line in lines[1:]:
                words = line.split()
                if len(words) >= 2 and words[0] == "angle":
                    to_radians = np.pi / 180.0 if words[1].lower().startswith("deg") else 1.0
        elif keyword == "root":
            for k, line in enumerate(lines[1:], first_line + 1):
                words = line.split()
                if not words:
                    continue
                if words[0] == "order":
                    root["order"] = [w.lower() for w in words[1:]]
                    bad = [d for d in root["order"] if d not in _DOFS]
                    if bad:
                        raise FormatError(path, k, f"unknown root channel {bad[0]!r}")
                elif words[0] == "position":
                    root["position"] = _floats(words[1:4], path, k, "root position")
                elif words[0] == "orientation":
                    root["orientation"] = _floats(words[1:4], path, k, "root orientation")
                elif words[0] == "axis":
                    root["axis_order"] = _axis_order(words[1:2], path, k)
            order = root.get("axis_order", "xyz")
            root["axis"] = euler_to_quat(root.get("orientation", np.zeros(3)) * to_radians, order)
        elif keyword == "bonedata":
            bones = _parse_bones(section, first_line, path, to_radians)
        elif keyword == "hierarchy":
            for line in lines[1:]:
                words = line.split()
                if words and words[0] not in ("begin", "end"):
                    for child in words[1:]:
                        hierarchy[child] = words[0]
    if not bones:
        raise FormatError(path, None, "no :bonedata section with bones")
    by_name = {b["name"]: b for b in bones}
    for b in bones:
        if b["name"] not in hierarchy:
            raise FormatError(path, b["line"], f"bone {b['name']} is not in the :hierarchy")
        b["parent"] = hierarchy[b["name"]]
    # Topological order: parents before children (the file may list them otherwise).
    ordered: list[dict] = []
    placed = {"root"}
    pending = list(bones)
    while pending:
        ready = [b for b in pending if b["parent"] in placed]
        if not ready:
            raise FormatError(
                path, None, f"the :hierarchy has a cycle or names unknown bones {[b['parent'] for b in pending][:3]}"
            )
        for b in ready:
            ordered.append(b)
            placed.add(b["name"])
        pending = [b for b in pending if b["name"] not in placed]
    missing = set(hierarchy.values()) - set(by_name) - {"root"}
    if missing:
        raise FormatError(path, None, f"the :hierarchy names bones that are not defined: {sorted(missing)}")
    return ordered, root, to_radians


def _parse_bones(section: str, first_line: int, path: Path, to_radians: float) -> list[dict]:
    bones = []
    for block in re.finditer(r"(?ms)^\s*begin\s*$(.*?)^\s*end\s*$", section):
        block_line = first_line + section.count("\n", 0, block.start(1))
        bone: dict = {"dof": [], "line": block_line}
        for k, line in enumerate(block.group(1).split("\n"), block_line):
            words = line.split()
            if not words:
                continue
            key = words[0]
            if key == "name" and len(words) > 1:
                bone["name"] = words[1]
            elif key == "direction":
                bone["direction"] = _floats(words[1:4], path, k, "direction", 3)
            elif key == "length":
                bone["length"] = _floats(words[1:2], path, k, "length", 1)[0]
            elif key == "axis":
                angles = _floats(words[1:4], path, k, "axis", 3)
                order = _axis_order(words[4:5], path, k)  # fixed axes, as the root's
                bone["axis"] = euler_to_quat(angles * to_radians, order)
            elif key == "dof":
                bone["dof"] = [w.lower() for w in words[1:]]
                bad = [d for d in bone["dof"] if d not in _DOFS]
                if bad:
                    raise FormatError(path, k, f"unknown dof {bad[0]!r}")
        for field in ("name", "direction", "length", "axis"):
            if field not in bone:
                raise FormatError(path, block_line, f"a bone in :bonedata lacks '{field}'")
        bones.append(bone)
    return bones


def _parse_amc(path: Path, bone_names: list[str]) -> tuple[list[tuple[str, int]], np.ndarray]:
    """The per-frame layout [(bone, value count)] and a (T, values) table."""
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    start = 0
    while start < len(lines) and (not lines[start].strip() or lines[start].lstrip()[:1] in (b"#", b":")):
        start += 1
    body_offset = sum(len(line) + 1 for line in lines[:start])
    body = raw[body_offset:]
    # The first frame fixes the layout: its frame number, then "bone values..." lines.
    layout: list[tuple[str, int]] = []
    first = body.split(b"\n")
    row = 1
    while row < len(first) and first[row].split() and not first[row].split()[0].isdigit():
        words = first[row].split()
        layout.append((words[0].decode(errors="replace"), len(words) - 1))
        row += 1
    if not layout:
        raise FormatError(path, start + 1, "no frames of motion data")
    unknown = [n for n, _ in layout if n not in bone_names]
    if unknown:
        raise FormatError(path, start + 2, f"bones {unknown[:3]} are not in the skeleton")
    per_frame = len(layout)
    expected = [n.encode() for n, _ in layout]
    for k, found in enumerate(_NAME_AT_LINE_START.finditer(body)):
        if found.group().strip() != expected[k % per_frame]:
            raise FormatError(
                path,
                start + line_of(body, found.start()),
                f"every frame must list the bones {[n for n, _ in layout]} in order",
            )
    stripped = _NAME_AT_LINE_START.sub(lambda m: b" " * len(m.group()), body)  # same offsets, same lines
    numbers = read_numbers(raw[:body_offset] + stripped, body_offset, path)
    width = 1 + sum(c for _, c in layout)
    if numbers.size % width:
        raise FormatError(
            path, start + line_of(body, len(body)), f"truncated motion data ({numbers.size} values, {width} per frame)"
        )
    table = numbers.reshape(-1, width)
    broken = np.flatnonzero(table[:, 0] != table[0, 0] + np.arange(table.shape[0]))
    if broken.size:
        raise FormatError(
            path,
            None,
            f"frame numbers are not consecutive (frame {int(broken[0])} is numbered {table[broken[0], 0]:g})",
        )
    return layout, table[:, 1:]


def _axis_order(words: list[str], path: Path, line: int) -> str:
    """The lowercase (fixed-axes) Euler order of an ``axis`` line; XYZ if absent."""
    order = words[0].lower() if words else "xyz"
    if sorted(order) != ["x", "y", "z"]:
        raise FormatError(path, line, f"axis order must be a permutation of XYZ, got {words[0]!r}")
    return order


def _floats(words: list[str], path: Path, line: int, what: str, count: int = 3) -> np.ndarray:
    if len(words) != count:
        raise FormatError(path, line, f"{what} needs {count} numbers, got {' '.join(words)!r}")
    return np.array([number(w, path, line, what) for w in words], dtype=np.float64)
