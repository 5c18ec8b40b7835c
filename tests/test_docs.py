"""The examples in docstrings and docs/*.md run, so they cannot rot."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import numpy as np
import pytest

import fastkin
from fastkin import body_model, cli, data, kinematics, motion, rotations, skeleton, skinning
from fastkin.ik import chains
from fastkin.io import asf, bvh, errors, gltf, layout

DOCS = Path(__file__).resolve().parents[1] / "docs"
# The module, not the function fastkin.bone_frames that shadows it.
bone_frames = importlib.import_module("fastkin.bone_frames")
ik_solve = importlib.import_module("fastkin.ik.solve")  # likewise fastkin.ik.solve
ik_analytic = importlib.import_module("fastkin.ik.analytic")  # and fastkin.ik.analytic


@pytest.mark.parametrize(
    "module",
    [fastkin, kinematics, bone_frames, rotations, skeleton, motion, body_model, skinning, ik_solve, cli, data, asf, bvh, errors, gltf, layout, chains,
     ik_analytic],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module):
    globs = {"np": np, "fastkin": fastkin, **vars(module)}
    globs.pop("__builtins__", None)
    result = doctest.testmod(module, globs=globs, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_docs_examples(page):
    result = doctest.testfile(str(page), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_every_public_function_has_an_example():
    public = [getattr(fastkin, n) for n in fastkin.__all__ if callable(getattr(fastkin, n))]
    public += [getattr(fastkin.io, n) for n in fastkin.io.__all__]
    public += [getattr(fastkin.data, n) for n in fastkin.data.__all__ if callable(getattr(fastkin.data, n))]
    public += [getattr(rotations, n) for n in rotations.__all__]
    public += [getattr(fastkin.ik, n) for n in fastkin.ik.__all__]
    missing = [f.__name__ for f in public if ">>>" not in (f.__doc__ or "")]
    assert not missing, f"no example in the docstring of {missing}"
