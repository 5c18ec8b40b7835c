"""Which channels a motion file animates, per joint (for `fastkin info`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from .asf import _parse_asf
from .bvh import _parse_hierarchy
from .errors import FormatError

PathLike = Union[str, "os.PathLike[str]"]


def channel_layout(path: PathLike, asf: Optional[PathLike] = None) -> dict[str, list[str]]:
    """Joint name -> the channels the file stores for it, in file order:
    BVH channel names (``Xposition``, ``Zrotation``...) for ``.bvh``, ASF dof
    names (``rx``, ``tx``...) for an ``.asf`` file or an ``.amc`` with its
    ``asf``. Joints without channels (end sites) map to an empty list.

    Example:
        >>> import fastkin, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "t.bvh")
        >>> _ = open(path, "w").write("HIERARCHY ROOT a { OFFSET 0 0 0 CHANNELS 1 Zrotation } MOTION Frames: 0 Frame Time: 1")
        >>> fastkin.io.channel_layout(path)
        {'a': ['Zrotation']}
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".bvh":
        raw = path.read_bytes()
        head = raw.split(b"MOTION", 1)[0].decode("utf-8", errors="replace")
        return {j.name: list(j.channels) for j in _parse_hierarchy(head, path)}
    if suffix in (".asf", ".amc"):
        skeleton_file = path if suffix == ".asf" else (Path(asf) if asf else None)
        if skeleton_file is None:
            raise ValueError("asf: an .amc file needs its .asf skeleton (asf=...)")
        bones, root, _ = _parse_asf(skeleton_file)
        return {"root": list(root["order"]), **{b["name"]: list(b["dof"]) for b in bones}}
    raise FormatError(path, None, "unknown format: expected .bvh, .asf or .amc")
