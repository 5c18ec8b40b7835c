"""The examples in docstrings and docs/*.md run, so they cannot rot; every
public name has one; the docs figure can be redrawn."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import inspect
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import fastkin

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def public_modules() -> list[types.ModuleType]:
    """fastkin and every module under it whose dotted name has no private
    (underscore) part, found by walking the package, so a new module is
    doctested without being listed here."""
    names = [info.name for info in pkgutil.walk_packages(fastkin.__path__, "fastkin.")]
    public = [n for n in names if not any(part.startswith("_") for part in n.split("."))]
    return [fastkin] + [importlib.import_module(n) for n in sorted(public)]


@pytest.mark.parametrize("module", public_modules(), ids=lambda m: m.__name__)
def test_docstring_examples(module):
    globs = {"np": np, "fastkin": fastkin, **vars(module)}
    globs.pop("__builtins__", None)
    result = doctest.testmod(module, globs=globs, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_docs_examples(page):
    result = doctest.testfile(str(page), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def documented_names() -> list[tuple[str, object]]:
    """(qualified name, object) for each name in ``fastkin.__all__`` and in
    the ``__all__`` of the subpackages it lists, plus the public methods of
    public classes. Plain values (``__version__``, ``data.MOTIONS``) have
    no docstring of their own and are left out."""
    modules = [fastkin] + [
        getattr(fastkin, n) for n in fastkin.__all__ if isinstance(getattr(fastkin, n), types.ModuleType)
    ]
    found = []
    for module in modules:
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, (str, int, float, dict, list, tuple)):
                continue
            found.append((f"{module.__name__}.{name}", value))
            if inspect.isclass(value):
                for attr, member in vars(value).items():
                    function = getattr(member, "__func__", member)
                    if not attr.startswith("_") and inspect.isfunction(function):
                        found.append((f"{module.__name__}.{name}.{attr}", function))
    return found


def test_every_public_name_has_an_example():
    """Each has an ``Example:`` section with a doctest (which
    test_docstring_examples runs, as every module defining one is public)."""
    names = documented_names()
    assert len(names) > 50
    missing = [n for n, value in names if not ("Example" in (value.__doc__ or "") and ">>>" in (value.__doc__ or ""))]
    assert not missing, f"no Example in the docstring of {missing}"
    doctested = {m.__name__ for m in public_modules()}
    undoctested = [n for n, value in names if getattr(inspect.getmodule(value), "__name__", "fastkin") not in doctested]
    assert not undoctested, f"defined in a module whose examples no test runs: {undoctested}"


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed")
def test_bone_frames_figure_redraws(tmp_path):
    out = tmp_path / "bone_frames.svg"
    subprocess.run([sys.executable, str(DOCS / "figures" / "bone_frames.py"), str(out)], check=True, timeout=300)
    assert out.read_text().lstrip().startswith("<?xml") and "<svg" in out.read_text()
