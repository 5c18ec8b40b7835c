"""BVH reading and writing, and Motion, on real files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import fastkin
from conftest import bvh_test_files, shared_data
from reference import bvh_reference_positions
from scipy.spatial.transform import Rotation, Slerp


def load_quietly(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fastkin.io.load_bvh(path)


def height(positions):
    return float(np.ptp(positions[..., 1])) or 1.0


@pytest.mark.parametrize("path", bvh_test_files(), ids=lambda p: p.name)
def test_positions_match_an_independent_reader(path):
    motion = load_quietly(path)
    frames = sorted({0, len(motion) // 2, len(motion) - 1})
    expected = bvh_reference_positions(path, frames)
    actual = motion.positions()[frames]
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(actual - expected).max() <= 1e-9 * scale


@pytest.mark.parametrize("path", bvh_test_files(), ids=lambda p: p.name)
@pytest.mark.parametrize("order", ["ZYX", "XZY"])
def test_save_load_round_trip(path, order, tmp_path):
    motion = load_quietly(path)
    out = tmp_path / "out.bvh"
    fastkin.io.save_bvh(out, motion, euler_order=order)
    again = fastkin.io.load_bvh(out)
    assert again.skeleton.names == motion.skeleton.names
    assert len(again) == len(motion) and again.fps == pytest.approx(motion.fps, rel=1e-8)
    a, b = motion.positions(), again.positions()
    assert np.abs(a - b).max() <= 1e-6 * max(1.0, float(np.abs(a).max()))
    assert not [p for p in tmp_path.iterdir() if p.name != "out.bvh"], "temporary files left behind"


def test_frame_count_mismatch_warns_with_both_numbers():
    path = shared_data() / "test" / "bvh" / "assimp_boxing_toes.bvh"
    if not path.exists():
        pytest.skip("shared data not found")
    with pytest.warns(UserWarning, match="3069 frames but 3070 rows"):
        motion = fastkin.io.load_bvh(path)
    assert len(motion) == 3070


TINY = """HIERARCHY
ROOT Hips
{
\tOFFSET 1 2 3
\tCHANNELS 6 Zrotation Xposition Yposition Zposition Xrotation Yrotation
\tJOINT Arm
\t{
\t\tOFFSET 0 10 0
\t\tCHANNELS 6 Xposition Yposition Zposition Yrotation Zrotation Xrotation
\t\tEnd Site
\t\t{
\t\t\tOFFSET 5 0 0
\t\t}
\t}
}
MOTION
Frames: 2
Frame Time: 0.04
30 1e1 2E+0 -3.5e-1 10 20 0 12 0 45 0 0
-30 0 0 0 0 0 1 12 0 0 90 0
"""


def test_crlf_tabs_scientific_and_interleaved_channels(tmp_path):
    unix = tmp_path / "unix.bvh"
    unix.write_text(TINY)
    dos = tmp_path / "dos.bvh"
    dos.write_bytes(TINY.replace("\n", "\r\n").encode())
    a, b = fastkin.io.load_bvh(unix), fastkin.io.load_bvh(dos)
    assert a.skeleton.names == ("Hips", "Arm", "Arm_End")
    assert a.fps == pytest.approx(25.0)
    np.testing.assert_allclose(a.positions(), b.positions())
    np.testing.assert_allclose(a.positions(), bvh_reference_positions(unix, [0, 1]), atol=1e-12)
    np.testing.assert_allclose(a.root_translation[0], [10 - 1, 2 - 2, -0.35 - 3])
    assert a.joint_translations is not None  # Arm animates its translation
    np.testing.assert_allclose(a.joint_translations[1, 1], [1, 12, 0])


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda t: t.replace("MOTION", "MOTIONLESS").replace("Frames", "X"), "Frames"),
        (lambda t: t.split("MOTION")[0], "no MOTION section"),
        (lambda t: t.replace("OFFSET 0 10 0", "OFFSET 0 ten 0"), r"bad.bvh:8: OFFSET must be a number"),
        (lambda t: t.replace("Yrotation Zrotation", "Yrotation Wrotation"), r"bad.bvh:9: unknown channel 'Wrotation'"),
        (lambda t: t.replace("CHANNELS 6 Xposition", "CHANNELS 999999999 Xposition"), r"bad.bvh:9: CHANNELS count"),
        (lambda t: t.replace("Frames: 2", "Frames: -2"), r"bad.bvh:17: Frames must be a whole number"),
        (lambda t: t.replace("Frames: 2", "Frames: 99999999999999"), r"header says 99999999999999 frames"),
        (lambda t: t.rsplit("}", 2)[0] + "MOTION\nFrames: 1\nFrame Time: 0.1\n" + "0 " * 12, "truncated"),
        (lambda t: t[: t.rindex(" 0")], "truncated motion data"),
        (lambda t: t.replace("-30 0", "-30 zero"), r"bad.bvh:20: malformed or non-finite number 'zero'"),
        (lambda t: t.replace("Frame Time: 0.04", "Frame Time: 0"), "Frame Time must be positive"),
        (lambda t: t.replace("-30 0 0", "-30 nan 0"), r"bad.bvh:20: malformed or non-finite number 'nan'"),
        (lambda t: t.replace("-30 0 0", "-30 0 1e400"), r"bad.bvh:20: malformed or non-finite number '1e400'"),
        (lambda t: t.replace("JOINT Arm", "JOINT Hips"), "unique"),
        (
            lambda t: t.replace("ROOT Hips\n{", "ROOT Hips\n").replace("}\nMOTION", "MOTION"),
            "outside any joint|unexpected token",
        ),
    ],
)
def test_malformed_files_raise_clear_errors(mutate, match, tmp_path):
    path = tmp_path / "bad.bvh"
    path.write_text(mutate(TINY))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a frame-count warning becomes the error to match
        with pytest.raises((fastkin.io.FormatError, UserWarning), match=match):
            fastkin.io.load_bvh(path)


def test_failed_save_leaves_existing_file_and_no_temporaries(tmp_path, monkeypatch):
    path = tmp_path / "keep.bvh"
    path.write_text(TINY)
    motion = fastkin.io.load_bvh(path)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savetxt", boom)
    with pytest.raises(OSError, match="disk full"):
        fastkin.io.save_bvh(path, motion)
    assert path.read_text() == TINY
    assert [p.name for p in tmp_path.iterdir()] == ["keep.bvh"]


def test_save_rejects_bad_arguments(tmp_path):
    motion = fastkin.io.load_bvh(write(tmp_path, TINY))
    with pytest.raises(ValueError, match="euler_order"):
        fastkin.io.save_bvh(tmp_path / "x.bvh", motion, euler_order="XXY")
    with pytest.raises(TypeError, match="motion must be a fastkin.Motion"):
        fastkin.io.save_bvh(tmp_path / "x.bvh", "not a motion")


def write(folder: Path, text: str) -> Path:
    path = folder / "tiny.bvh"
    path.write_text(text)
    return path


# -- Motion ----------------------------------------------------------------------------------------


def test_motion_slicing_resampling_and_concatenation(tmp_path):
    motion = fastkin.io.load_bvh(write(tmp_path, TINY))
    assert len(motion[1:]) == 1 and len(motion[0]) == 1 and len(motion[::2]) == 1
    assert motion[::2].fps == pytest.approx(motion.fps / 2)
    both = fastkin.Motion.concatenate([motion, motion[::-1]])
    assert len(both) == 4
    np.testing.assert_allclose(both.positions()[2:], motion.positions()[::-1])
    fine = motion.resample(4 * motion.fps)
    assert len(fine) == 5
    times = np.linspace(0, 1, 5)
    for j in range(motion.skeleton.num_joints):
        expected = Slerp([0, 1], Rotation.from_quat(motion.rotations[:, j]))(times)
        angle = (expected.inv() * Rotation.from_quat(fine.rotations[:, j])).magnitude()
        assert angle.max() < 1e-9
    np.testing.assert_allclose(fine.root_translation[2], motion.root_translation.mean(axis=0))


def test_motion_rejects_bad_input():
    sk = fastkin.Skeleton([-1, 0], np.zeros((2, 3)))
    good = np.tile([0.0, 0, 0, 1], (3, 2, 1))
    with pytest.raises(ValueError, match="rotations must have shape"):
        fastkin.Motion(sk, good[:, :1])
    with pytest.raises(ValueError, match="root_translation must have shape"):
        fastkin.Motion(sk, good, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="fps"):
        fastkin.Motion(sk, good, fps=0)
    with pytest.raises(ValueError, match="zero quaternion"):
        fastkin.Motion(sk, np.zeros((3, 2, 4)))
    with pytest.raises(ValueError, match="finite"):
        fastkin.Motion(sk, good, np.full((3, 3), np.nan))
    other = fastkin.Motion(fastkin.Skeleton([-1], np.zeros((1, 3))), np.tile([0.0, 0, 0, 1], (3, 1, 1)))
    with pytest.raises(ValueError, match="share one skeleton"):
        fastkin.Motion.concatenate([fastkin.Motion(sk, good), other])
