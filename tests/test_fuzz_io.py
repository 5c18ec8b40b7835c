"""Byte mutations of real files: a reader either loads the result or raises
fastkin.io.FormatError. Any other exception (or a crash or hang) is a bug.
FUZZ_EXAMPLES=5000 in the environment runs a longer campaign."""

from __future__ import annotations

import os
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastkin
from conftest import shared_data
from test_asf import TINY_AMC, TINY_ASF
from test_bvh import TINY


def seed_bvh() -> bytes:
    path = shared_data() / "test" / "bvh" / "bvhio_example.bvh"
    return path.read_bytes() if path.exists() else TINY.encode()


@st.composite
def mutated(draw, original: bytes):
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] = draw(st.sampled_from(list(b"0123456789-+.eE{} \n\tXYZabc:#")))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif kind == "insert":
            data[at:at] = draw(
                st.sampled_from(
                    [
                        b"nan",
                        b" nan ",
                        b" inf ",
                        b"1e400",
                        b"{",
                        b"}",
                        b" CHANNELS 3 ",
                        b"\x00\xff",
                        b"End Site",
                        b"\nroot 1 2 3\n",
                    ]
                )
            )
        elif kind == "truncate":
            del data[at:]
        elif kind == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 200))]
    return bytes(data)


FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 150)),
    deadline=int(os.environ.get("FUZZ_DEADLINE_MS", 0)) or None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def loads_or_format_error(load, *paths) -> None:
    """Runs a reader on mutated files: success or FormatError, nothing else."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            load(*paths)
        except fastkin.io.FormatError:
            pass


@FUZZ
@given(mutated(seed_bvh()))
def test_bvh_mutations(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "m.bvh"
    path.write_bytes(data)
    loads_or_format_error(fastkin.io.load_bvh, path)


@FUZZ
@given(st.sampled_from(["asf", "amc"]), st.data())
def test_asf_amc_mutations(tmp_path_factory, which, data):
    folder = tmp_path_factory.mktemp("fuzz")
    asf, amc = TINY_ASF.encode(), TINY_AMC.encode()
    if which == "asf":
        asf = data.draw(mutated(asf))
    else:
        amc = data.draw(mutated(amc))
    (folder / "t.asf").write_bytes(asf)
    (folder / "t.amc").write_bytes(amc)
    loads_or_format_error(fastkin.io.load_asf_amc, folder / "t.asf", folder / "t.amc")


def seed_gltf() -> bytes:
    path = shared_data() / "test" / "gltf" / "SimpleSkin.gltf"
    return path.read_bytes() if path.exists() else b"{}"


@FUZZ
@given(mutated(seed_gltf()))
def test_gltf_mutations(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "m.gltf"
    path.write_bytes(data)
    loads_or_format_error(fastkin.io.load_gltf, path)
