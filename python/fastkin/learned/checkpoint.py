"""Saving and loading learned models safely: weights as a torch
``state_dict`` read with ``weights_only=True`` (no pickled code runs), and
everything else (architecture, skeleton, training record) as JSON."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..skeleton import Skeleton

__all__ = ["save_model", "load_model", "load_weights", "write_atomically", "skeleton_to_json", "skeleton_from_json"]

PathLike = Union[str, "os.PathLike[str]"]


def save_model(model: Any, path: PathLike, record: dict | None = None) -> None:
    """Writes ``path.pt`` (the ``state_dict``) and ``path.json`` (model
    kind, configuration, skeleton and ``record``), each atomically.

    Example:
        >>> import tempfile, fastkin
        >>> from fastkin.learned import IKGAT, save_model, load_model
        >>> model = IKGAT(fastkin.data.default_motion().skeleton, width=8, layers=1)
        >>> path = tempfile.mkdtemp() + "/tiny"
        >>> save_model(model, path, {"note": "untrained"})
        >>> load_model(path).config == model.config
        True
    """
    import torch

    path = Path(path)
    skeleton = getattr(model, "skeleton", None)  # None for skeleton-agnostic models
    description = {"kind": type(model).__name__, "config": model.config,
                   "skeleton": None if skeleton is None else skeleton_to_json(skeleton), "record": record or {}}
    write_atomically(path.with_suffix(".pt"), lambda f: torch.save(model.state_dict(), f))
    write_atomically(path.with_suffix(".json"), lambda f: f.write(json.dumps(description, indent=1).encode()))


def load_model(path: PathLike) -> Any:
    """The model saved by :func:`save_model` at ``path`` (with or without
    suffix), in evaluation mode. Its training record is ``model.record``.

    Example:
        >>> from fastkin.learned import load_model
        >>> load_model("no/such/model")
        Traceback (most recent call last):
        FileNotFoundError: no model description no/such/model.json
    """
    from .ikgat import IKGAT
    from .pose_to_rotation import PoseToRotation

    path = Path(path)
    if path.suffix in (".pt", ".json"):
        path = path.with_suffix("")
    try:
        description = json.loads(path.with_suffix(".json").read_text())
        kind, config = description["kind"], description["config"]
        skeleton = None if description["skeleton"] is None else skeleton_from_json(description["skeleton"])
    except FileNotFoundError:
        raise FileNotFoundError(f"no model description {path.with_suffix('.json')}") from None
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path.with_suffix('.json')}: not a fastkin model description ({error})") from None
    kinds: dict = {"IKGAT": IKGAT, "PoseToRotation": PoseToRotation}
    if kind not in kinds:
        raise ValueError(f"{path.with_suffix('.json')}: unknown model kind {kind!r}; known: {sorted(kinds)}")
    if (skeleton is None) != (kind == "PoseToRotation"):
        raise ValueError(f"{path.with_suffix('.json')}: a {kind} model {'needs' if skeleton is None else 'has no'} "
                         "skeleton")
    model = kinds[kind](**config) if skeleton is None else kinds[kind](skeleton, **config)
    model.load_state_dict(load_weights(path.with_suffix(".pt")))
    model.record = description.get("record", {})
    return model.eval()


def load_weights(path: PathLike) -> dict:
    """A checkpoint's tensors, read with ``torch.load(weights_only=True)``:
    a file holding pickled code or objects is refused with a ValueError.

    Example:
        >>> import tempfile, torch
        >>> from fastkin.learned import load_weights
        >>> path = tempfile.mkdtemp() + "/w.pt"
        >>> torch.save({"w": torch.ones(2)}, path)
        >>> load_weights(path)
        {'w': tensor([1., 1.])}
    """
    import pickle

    import torch

    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path}: refused: the file holds more than tensors and plain data "
                         f"(weights_only loading failed: {str(error).splitlines()[0]})") from None
    except (RuntimeError, EOFError) as error:
        raise ValueError(f"{path}: not a readable torch checkpoint ({str(error).splitlines()[0]})") from None


def write_atomically(path: PathLike, write: Any) -> None:
    """Calls ``write(file)`` on a temporary file beside ``path``, then
    renames it over ``path``: a crash never leaves a half-written file.

    Example:
        >>> import tempfile, pathlib
        >>> from fastkin.learned.checkpoint import write_atomically
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
        >>> write_atomically(path, lambda f: f.write(b"done"))
        >>> path.read_text()
        'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def skeleton_to_json(skeleton: Skeleton) -> dict:
    """A skeleton as plain JSON data (see :func:`skeleton_from_json`).

    Example:
        >>> import fastkin
        >>> from fastkin.learned import skeleton_to_json
        >>> sorted(skeleton_to_json(fastkin.Skeleton([-1], [[0, 0, 0]])))
        ['names', 'offsets', 'parents', 'rest_rotations']
    """
    return {"parents": skeleton.parents.tolist(), "offsets": skeleton.offsets.tolist(),
            "rest_rotations": skeleton.rest_rotations.tolist(), "names": list(skeleton.names)}


def skeleton_from_json(data: dict) -> Skeleton:
    """The skeleton :func:`skeleton_to_json` wrote.

    Example:
        >>> import fastkin
        >>> from fastkin.learned import skeleton_from_json, skeleton_to_json
        >>> s = fastkin.data.default_motion().skeleton
        >>> skeleton_from_json(skeleton_to_json(s)) == s
        True
    """
    return Skeleton(np.array(data["parents"]), np.array(data["offsets"], dtype=np.float64),
                    np.array(data["rest_rotations"], dtype=np.float64), names=data["names"])
