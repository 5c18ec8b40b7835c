"""fastkin is a typed package: every public function is annotated, the
compiled module ships a generated stub, and mypy run on a user's script
finds both."""

from __future__ import annotations

import importlib.util
import inspect
import pydoc
import subprocess
import sys
import types
from pathlib import Path

import pytest

import fastkin

HERE = Path(__file__).resolve().parent
# torch's own annotations take mypy ~20 s to analyse; what is checked here is
# fastkin's, so torch is treated as untyped.
MYPY_CONFIG = "[mypy]\n[mypy-torch.*]\nfollow_imports = skip\n"


def public_functions() -> list[tuple[str, object]]:
    """(qualified name, function) for every public function and public
    method of a public class, in fastkin and its public subpackages."""
    modules = [fastkin] + [
        v
        for v in vars(fastkin).values()
        if isinstance(v, types.ModuleType) and v.__name__ in {f"fastkin.{n}" for n in fastkin.__all__}
    ]
    found = []
    for module in modules:
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value):
                for attr, member in vars(value).items():
                    function = getattr(member, "__func__", member)
                    if (attr == "__init__" or not attr.startswith("_")) and inspect.isfunction(function):
                        found.append((f"{module.__name__}.{name}.{attr}", function))
            elif inspect.isfunction(value):
                found.append((f"{module.__name__}.{name}", value))
    return found


def test_every_public_function_is_annotated():
    unannotated = []
    for name, function in public_functions():
        signature = inspect.signature(function)
        params = [p for p in signature.parameters.values() if p.name not in ("self", "cls")]
        if signature.return_annotation is inspect.Signature.empty or any(
            p.annotation is inspect.Parameter.empty for p in params
        ):
            unannotated.append(name)
    assert not unannotated, f"missing annotations: {unannotated}"


def test_help_shows_typed_signatures():
    text = pydoc.render_doc(fastkin.fk_batch, renderer=pydoc.plaintext)
    assert "fk_batch(skeleton: 'Skeleton', rotations:" in text and "-> 'tuple[" in text
    # The compiled functions carry their signatures too (nanobind).
    assert "-> tuple[bool," in pydoc.render_doc(fastkin._core.fk_skeleton, renderer=pydoc.plaintext)


def test_stub_sits_next_to_the_compiled_module():
    stub = Path(fastkin._core.__file__).with_name("_core.pyi")
    assert stub.is_file(), f"no generated stub beside {fastkin._core.__file__}"
    text = stub.read_text()
    assert "def fk_skeleton(" in text and "class SkeletonData" in text
    assert (Path(fastkin.__file__).parent / "py.typed").is_file()


def run_mypy(script: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    config = tmp_path / "mypy.ini"
    config.write_text(MYPY_CONFIG)
    # Run outside the checkout so that the project's own mypy settings and
    # cache are not used: this is what a user's project sees.
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            str(script),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_mypy_accepts_a_user_script(tmp_path):
    result = run_mypy(HERE / "typing_user_script.py", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_mypy_sees_the_types(tmp_path):
    """Wrong uses are reported, so mypy really reads the annotations and the
    stub (an untyped module would accept anything)."""
    script = tmp_path / "wrong.py"
    script.write_text(
        "import fastkin\n"
        "from fastkin import _core\n"
        "threads: str = fastkin.get_num_threads()\n"
        "isa: int = _core.isa()\n"
        "fastkin.set_num_threads('four')\n"
    )
    result = run_mypy(script, tmp_path)
    lines = result.stdout.splitlines()
    assert any("wrong.py:3:" in line and '"int"' in line for line in lines), result.stdout
    assert any("wrong.py:4:" in line and '"str"' in line for line in lines), result.stdout
    assert any("wrong.py:5:" in line and "set_num_threads" in line for line in lines), result.stdout
