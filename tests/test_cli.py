"""The fastkin command line, run as a user would (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import shared_data


def run(*args):
    result = subprocess.run([sys.executable, "-m", "fastkin", *args], capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout.split("RESULT")[-1], result.stderr


def test_info_without_a_file_prints_build_info():
    code, out, _ = run("info")
    assert code == 0
    info = json.loads(out[out.index("{") :])
    assert info["isa"] in ("scalar", "avx2", "avx512") and info["num_threads"] >= 1


def test_info_on_a_bvh_file(tmp_path):
    path = shared_data() / "test" / "bvh" / "pybvh_cmu_12_01_walk.bvh"
    if not path.exists():
        pytest.skip("shared data not found")
    text = path.read_text()
    frames = int(text.split("Frames:")[1].split()[0])
    joints = text.count("JOINT") + text.count("ROOT") + text.count("End Site")
    code, out, err = run("info", str(path))
    assert code == 0, err
    assert f"{frames} frames at 120 fps" in out and f"{joints} joints" in out
    assert "Xposition Yposition Zposition" in out


def test_info_on_an_amc_file_finds_its_asf():
    path = shared_data() / "train" / "cmu-asfamc" / "subjects" / "02" / "02_01.amc"
    if not path.exists():
        pytest.skip("shared data not found")
    code, out, err = run("info", str(path))
    assert code == 0, err
    assert "02_01.amc:" in out and "lfemur  [rx ry rz]" in out


def test_info_reports_bad_files(tmp_path):
    bad = tmp_path / "bad.bvh"
    bad.write_text("HIERARCHY ROOT a { OFFSET 0 0 zero } MOTION Frames: 1 Frame Time: 1 0")
    code, _, err = run("info", str(bad))
    assert code == 1 and "bad.bvh:1: OFFSET must be a number" in err
    code, _, err = run("info", str(tmp_path / "missing.bvh"))
    assert code == 1 and "No such file" in err


def test_info_on_a_gltf_file():
    path = shared_data() / "test" / "gltf" / "Fox.glb"
    if not path.exists():
        pytest.skip("shared data not found")
    code, out, err = run("info", str(path))
    assert code == 0, err
    assert "24 joints" in out and "animation Walk" in out


def test_ik_solves_positions_into_a_bvh(tmp_path):
    import numpy as np

    import fastkin

    walk = fastkin.data.default_motion()[:150]
    np.save(tmp_path / "walk.npy", walk.positions())
    code, out, err = run(
        "ik",
        str(tmp_path / "walk.npy"),
        "--skeleton",
        str(fastkin.data.path("cmu_12_01_walk.bvh")),
        "-o",
        str(tmp_path / "out.bvh"),
        "--smoothness",
        "0",
    )
    assert code == 0, err
    assert "converged 150/150" in out and "150/150 frames" in err  # summary and progress bar
    solved = fastkin.io.load_bvh(tmp_path / "out.bvh")
    height = np.ptp(walk.positions()[0], axis=0).max()
    # BVH stores degrees with limited digits: the written motion is close, not exact.
    assert np.abs(solved.positions() - walk.positions()).max() < 1e-3 * height


def test_ik_rejects_positions_of_the_wrong_shape(tmp_path):
    import numpy as np

    import fastkin

    np.save(tmp_path / "bad.npy", np.zeros((5, 3, 3)))
    code, _, err = run(
        "ik",
        str(tmp_path / "bad.npy"),
        "--skeleton",
        str(fastkin.data.path("cmu_12_01_walk.bvh")),
        "-o",
        str(tmp_path / "out.bvh"),
    )
    assert code == 1 and "positions must have shape (frames, 38, 3)" in err
    assert not (tmp_path / "out.bvh").exists()
