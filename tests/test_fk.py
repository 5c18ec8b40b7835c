"""fk_batch (numpy front door) against the slow reference."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastkin
from conftest import SMPL_PARENTS, bvh_test_files
from reference import bvh_hierarchy, fk_reference, random_quaternions


def assert_close(actual, expected, rel):
    """max |actual - expected| <= rel * max(1, max |expected|)."""
    scale = max(1.0, float(np.max(np.abs(expected))) if np.size(expected) else 1.0)
    err = float(np.max(np.abs(np.asarray(actual, np.float64) - expected))) if np.size(expected) else 0.0
    assert err <= rel * scale, f"max error {err:.3g} exceeds {rel:g} x {scale:.3g}"


TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


@st.composite
def skeletons(draw, max_joints=200):
    num_joints = draw(st.integers(1, max_joints))
    kind = draw(st.sampled_from(["chain", "wide", "tree", "forest"]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    if kind == "chain":
        parents = np.arange(num_joints) - 1
    elif kind == "wide":
        parents = np.where(np.arange(num_joints) == 0, -1, 0)
    else:
        parents = np.array([-1] + [int(rng.integers(0, j)) for j in range(1, num_joints)])
        if kind == "forest":
            parents[rng.random(num_joints) < 0.1] = -1
    offsets = rng.normal(size=(num_joints, 3)) * rng.uniform(0.1, 10.0)
    return fastkin.Skeleton(parents, offsets), rng


@settings(max_examples=60, deadline=None)
@given(
    skeletons(),
    st.sampled_from([(), (1,), (5,), (2, 3), (37,)]),
    st.sampled_from([np.float32, np.float64]),
    st.sampled_from(["quat", "matrix"]),
    st.booleans(),
)
def test_fk_matches_reference_on_random_skeletons(case, batch, dtype, form, with_root):
    skeleton, rng = case
    quats = random_quaternions(rng, batch + (skeleton.num_joints,))
    rotations = quats if form == "quat" else fk_reference_matrices(quats)
    root = rng.normal(size=batch + (3,)) if with_root else None
    expected_r, expected_p = fk_reference(
        skeleton.parents,
        skeleton.offsets.astype(dtype),
        rotations.astype(dtype),
        root if root is None else root.astype(dtype),
    )
    world_r, world_p = fastkin.fk_batch(skeleton, rotations.astype(dtype), None if root is None else root.astype(dtype))
    assert world_r.dtype == dtype and world_p.dtype == dtype
    assert world_r.shape == batch + (skeleton.num_joints, 3, 3)
    assert world_p.shape == batch + (skeleton.num_joints, 3)
    assert_close(world_r, expected_r, TOLERANCE[dtype])
    assert_close(world_p, expected_p, TOLERANCE[dtype])


def fk_reference_matrices(quats):
    from scipy.spatial.transform import Rotation

    return Rotation.from_quat(quats.reshape(-1, 4)).as_matrix().reshape(quats.shape[:-1] + (3, 3))


@pytest.mark.parametrize("path", bvh_test_files(), ids=lambda p: p.name)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fk_on_real_bvh_skeletons(path, dtype, rng):
    parents, offsets, names = bvh_hierarchy(path)
    skeleton = fastkin.Skeleton(parents, offsets, names=names)
    quats = random_quaternions(rng, (7, len(parents))).astype(dtype)
    quats[0] = [0, 0, 0, 1]  # the rest pose
    expected_r, expected_p = fk_reference(parents, offsets.astype(dtype), quats)
    world_r, world_p = fastkin.fk_batch(skeleton, quats)
    assert_close(world_r, expected_r, TOLERANCE[dtype])
    assert_close(world_p, expected_p, TOLERANCE[dtype])


def test_real_bvh_skeletons_are_present():
    if not bvh_test_files():
        pytest.skip("shared data not found (set FASTKIN_SHARED_DATA)")
    assert len(bvh_test_files()) >= 10


def test_unnormalised_quaternions_mean_their_direction(rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    quats = random_quaternions(rng, (9, 24))
    scaled = quats * rng.uniform(0.01, 100.0, size=(9, 24, 1))
    for a, b in zip(fastkin.fk_batch(skeleton, quats), fastkin.fk_batch(skeleton, scaled)):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_batched_offsets_and_root_translation(rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    quats = random_quaternions(rng, (4, 5, 24))
    offsets = rng.normal(size=(4, 5, 24, 3))
    root = rng.normal(size=(4, 5, 3))
    expected = fk_reference(SMPL_PARENTS, offsets, quats, root)
    actual = fastkin.fk_batch(skeleton, quats, root, offsets=offsets)
    for a, e in zip(actual, expected):
        assert_close(a, e, 1e-12)
    shared = rng.normal(size=(24, 3))
    expected = fk_reference(SMPL_PARENTS, shared, quats)
    for a, e in zip(fastkin.fk_batch(skeleton, quats, offsets=shared), expected):
        assert_close(a, e, 1e-12)


def test_non_contiguous_input_is_accepted_and_correct(rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    quats = random_quaternions(rng, (24, 10))  # pose-major after the transpose below
    strided = np.swapaxes(quats, 0, 1)
    assert not strided.flags.c_contiguous
    expected = fk_reference(SMPL_PARENTS, skeleton.offsets, strided)
    for a, e in zip(fastkin.fk_batch(skeleton, strided), expected):
        assert_close(a, e, 1e-12)


def test_large_batch_threads_agree_with_single_thread(rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    quats = random_quaternions(rng, (5003, 24)).astype(np.float32)
    before = fastkin.get_num_threads()
    try:
        fastkin.set_num_threads(1)
        single = fastkin.fk_batch(skeleton, quats)
        fastkin.set_num_threads(3)
        multi = fastkin.fk_batch(skeleton, quats)
    finally:
        fastkin.set_num_threads(before)
    for a, b in zip(single, multi):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    expected = fk_reference(SMPL_PARENTS, skeleton.offsets.astype(np.float32), quats[::97])
    for a, e in zip(multi, expected):
        assert_close(a[::97], e, 1e-5)


@pytest.mark.parametrize("num_joints", [1, 5, 24])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("form", ["quaternion", "matrix"])
def test_outputs_over_the_streaming_size_match_small_calls(num_joints, dtype, form, rng):
    """Outputs over 2 MB take the non-temporal streaming path; they must equal
    the same poses computed in small calls (which write directly), with a
    ragged last block, and match the reference on a sample."""
    parents = np.arange(num_joints) - 1
    skeleton = fastkin.Skeleton(parents, rng.normal(size=(num_joints, 3)))
    batch = (5 << 19) // (num_joints * 12 * np.dtype(dtype).itemsize) + 3  # 2.5 MB of output, plus 3 poses
    quats = random_quaternions(rng, (batch, num_joints))
    rotations = quats if form == "quaternion" else fastkin.rotations.quat_to_matrix(quats)
    rotations = rotations.astype(dtype)
    world_r, world_p = fastkin.fk_batch(skeleton, rotations)
    for start in range(0, batch, 997):
        chunk_r, chunk_p = fastkin.fk_batch(skeleton, rotations[start : start + 997])
        np.testing.assert_allclose(world_r[start : start + 997], chunk_r, rtol=0, atol=1e-6)
        np.testing.assert_allclose(world_p[start : start + 997], chunk_p, rtol=0, atol=1e-5)
    sample = slice(None, None, 1009)
    expected = fk_reference(parents, skeleton.offsets.astype(dtype), rotations[sample])
    for actual, e in zip((world_r[sample], world_p[sample]), expected):
        assert_close(actual, e, TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 37, 20000])  # 20000 poses: over the streaming size
def test_out_arrays_are_filled_and_returned(dtype, batch, rng):
    """out= writes into the given arrays (returned as the result) exactly what
    new outputs get, call after call, and batched offsets and a root go through."""
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    out = (np.full((batch, 24, 3, 3), np.nan, dtype), np.full((batch, 24, 3), np.nan, dtype))
    for _ in range(2):
        quats = random_quaternions(rng, (batch, 24)).astype(dtype)
        offsets = rng.normal(size=(batch, 24, 3)).astype(dtype)
        root = rng.normal(size=(batch, 3)).astype(dtype)
        result = fastkin.fk_batch(skeleton, quats, root, offsets=offsets, out=out)
        assert result[0] is out[0] and result[1] is out[1]
        fresh = fastkin.fk_batch(skeleton, quats, root, offsets=offsets)
        np.testing.assert_array_equal(out[0], fresh[0])
        np.testing.assert_array_equal(out[1], fresh[1])
    sample = slice(None, None, 997)
    expected = fk_reference(SMPL_PARENTS, offsets[sample], quats[sample], root[sample])
    for actual, e in zip((out[0][sample], out[1][sample]), expected):
        assert_close(actual, e, TOLERANCE[dtype])


def _at_byte_offset(shape, dtype, offset):
    """An empty C-contiguous array whose data starts `offset` bytes past a 64-byte boundary."""
    count = int(np.prod(shape))
    raw = np.empty(count * np.dtype(dtype).itemsize + 128, np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    return raw[start : start + count * np.dtype(dtype).itemsize].view(dtype).reshape(shape)


@pytest.mark.parametrize("num_joints", [5, 8, 12, 22, 24, 31, 32, 55])
@pytest.mark.parametrize("offset", [0, 16, 32])
@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_alignment_does_not_change_the_result(num_joints, offset, streamed, dtype, rng):
    """Full blocks write 32-byte half rows where every pose row is 32-byte
    aligned (8k joints, aligned start) and 16-byte pieces otherwise; outputs
    over the streaming size go out as whole lines straight from the tiles
    where the arrays start on a line (rows starting anywhere in a line),
    through the block buffer otherwise.
    Each against the reference, with full blocks and a ragged end."""
    parents = np.array([-1] + [int(rng.integers(0, j)) for j in range(1, num_joints)])
    skeleton = fastkin.Skeleton(parents, rng.normal(size=(num_joints, 3)))
    size = np.dtype(dtype).itemsize
    batch = (5 << 19) // (num_joints * 12 * size) + 5 if streamed else 37  # 2.5 MB of output: streamed
    quats = random_quaternions(rng, (batch, num_joints)).astype(dtype)
    out = (
        _at_byte_offset((batch, num_joints, 3, 3), dtype, offset),
        _at_byte_offset((batch, num_joints, 3), dtype, offset),
    )
    fastkin.fk_batch(skeleton, quats, out=out)
    expected = fk_reference(parents, skeleton.offsets.astype(dtype), quats)
    for actual, e in zip(out, expected):
        assert_close(actual, e, TOLERANCE[dtype])


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
def test_every_instruction_set_path_matches_reference(isa, tmp_path):
    """Each compiled kernel variant (capped with FASTKIN_ISA) against the reference, for a
    small batch and for one whose output is large enough to be streamed."""
    script = tmp_path / "run.py"
    script.write_text(
        "import numpy as np, fastkin, sys\n"
        "rng = np.random.default_rng(3)\n"
        "sk = fastkin.Skeleton(%r, rng.normal(size=(24, 3)))\n"
        "q = rng.normal(size=(53, 24, 4))\n"
        "m = np.linalg.qr(rng.normal(size=(53, 24, 3, 3)))[0]\n"
        "out = {}\n"
        "for name, x in (('q64', q), ('q32', q.astype(np.float32)), ('m64', m), ('m32', m.astype(np.float32))):\n"
        "    out[name + 'r'], out[name + 'p'] = fastkin.fk_batch(sk, x)\n"
        "    # 47 copies: over 2 MB of output, the streamed path\n"
        "    out[name + 'R'], out[name + 'P'] = fastkin.fk_batch(sk, np.tile(x, (47,) + (1,) * (x.ndim - 1)))\n"
        "np.savez(sys.argv[1], isa=fastkin.build_info()['isa'], **out)\n" % (SMPL_PARENTS,)
    )
    result_file = tmp_path / "out.npz"
    env = dict(os.environ, FASTKIN_ISA=isa)
    subprocess.run([sys.executable, str(script), str(result_file)], check=True, env=env)
    result = np.load(result_file)
    if str(result["isa"]) != isa:
        pytest.skip(f"this CPU does not support {isa}")
    rng = np.random.default_rng(3)
    offsets = rng.normal(size=(24, 3))
    q = rng.normal(size=(53, 24, 4))
    m = np.linalg.qr(rng.normal(size=(53, 24, 3, 3)))[0]
    for name, x in (("q64", q), ("m64", m)):
        expected_r, expected_p = fk_reference(SMPL_PARENTS, offsets, x)
        assert_close(result[name + "r"], expected_r, 1e-12)
        assert_close(result[name + "p"], expected_p, 1e-12)
    for name, x in (("q32", q), ("m32", m)):
        expected_r, expected_p = fk_reference(SMPL_PARENTS, offsets.astype(np.float32), x.astype(np.float32))
        assert_close(result[name + "r"], expected_r, 1e-5)
        assert_close(result[name + "p"], expected_p, 1e-5)
    for name in ("q64", "q32", "m64", "m32"):  # the streamed copies equal the small call's poses
        np.testing.assert_allclose(result[name + "R"], np.tile(result[name + "r"], (47, 1, 1, 1)), rtol=0, atol=1e-6)
        np.testing.assert_allclose(result[name + "P"], np.tile(result[name + "p"], (47, 1, 1)), rtol=0, atol=1e-5)


def test_read_only_input_is_accepted_and_left_untouched(rng):
    """The kernel reads the caller's buffer: a read-only contiguous array works
    and fk never writes to it."""
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    quats = random_quaternions(rng, (8, 24))
    quats.setflags(write=False)
    before = quats.copy()
    fastkin.fk_batch(skeleton, quats)
    np.testing.assert_array_equal(quats, before)
