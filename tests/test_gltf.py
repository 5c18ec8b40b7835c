"""glTF skins and animations against an independent node-tree composition."""

from __future__ import annotations

import numpy as np
import pytest

import fastkin
from conftest import shared_data
from reference import gltf_accessor, gltf_document, gltf_world_matrices

ASSETS = [
    "SimpleSkin.gltf",
    "RiggedSimple/RiggedSimple.gltf",
    "RiggedFigure/RiggedFigure.gltf",
    "CesiumMan.glb",
    "Fox.glb",
    "RobotExpressive.glb",
]


def asset(name):
    path = shared_data() / "test" / "gltf" / name
    if not path.exists():
        pytest.skip("shared data not found")
    return path


@pytest.mark.parametrize("name", ASSETS)
def test_skins_load_with_their_joints_and_meshes(name):
    path = asset(name)
    document, buffers = gltf_document(path)
    characters = fastkin.io.load_gltf(path)
    assert len(characters) == len(document["skins"])
    for skin, character in zip(document["skins"], characters):
        assert character.skeleton.num_joints == len(skin["joints"])
        assert sorted(character.joint_nodes) == sorted(skin["joints"])
        parents = character.skeleton.parents
        assert all(p < j for j, p in enumerate(parents))
        for mesh in character.meshes:
            assert mesh.positions.shape[1] == 3 and mesh.joints.shape == mesh.weights.shape
            assert mesh.joints.max() < character.skeleton.num_joints
            assert mesh.weights.min() >= 0  # (not all exporters normalise the sums)


@pytest.mark.parametrize("name", ASSETS)
def test_rest_pose_matches_node_tree(name):
    path = asset(name)
    document, buffers = gltf_document(path)
    world = gltf_world_matrices(document, buffers, None, np.zeros(1))[0]
    for character in fastkin.io.load_gltf(path):
        rotations, positions = fastkin.fk_batch(character.skeleton, character.skeleton.rest_pose())
        nodes = list(character.joint_nodes)
        expected = world[nodes, :3, 3]
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(positions - expected).max() <= 1e-6 * scale
        frames = world[nodes, :3, :3] / np.linalg.norm(world[nodes, :3, :3], axis=1, keepdims=True)
        np.testing.assert_allclose(rotations, frames, atol=1e-5)  # float32 data


@pytest.mark.parametrize("name", ASSETS)
def test_sampled_animations_match_node_tree(name):
    """fk of every sampled animation equals the world matrices composed from
    the glTF node TRS at the same times (1e-5 of the figure's size)."""
    path = asset(name)
    document, buffers = gltf_document(path)
    character = fastkin.io.load_gltf(path, fps=30)[0]
    nodes = list(character.joint_nodes)
    checked = 0
    for a_index, animation in enumerate(document.get("animations", [])):
        key = animation.get("name") or f"animation_{a_index}"
        if key not in character.animations:
            continue
        motion = character.animations[key]
        times = np.arange(len(motion)) / motion.fps
        world = gltf_world_matrices(document, buffers, animation, times)
        expected = world[:, nodes][:, :, :3, 3]
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(motion.positions() - expected).max() <= 1e-5 * scale, key
        checked += 1
    assert checked >= 1


def test_inverse_bind_matrices_invert_the_bind_pose():
    """Fox: the bind pose is the rest pose, so W_j * IBM_j is the identity."""
    path = asset("Fox.glb")
    fox = fastkin.io.load_gltf(path)[0]
    rotations, positions = fastkin.fk_batch(fox.skeleton, fox.skeleton.rest_pose())
    world = np.tile(np.eye(4), (fox.skeleton.num_joints, 1, 1))
    world[:, :3, :3], world[:, :3, 3] = rotations, positions
    np.testing.assert_allclose(world @ fox.inverse_bind_matrices, np.tile(np.eye(4), (len(world), 1, 1)), atol=1e-4)


def test_mesh_positions_are_the_accessor_values():
    path = asset("CesiumMan.glb")
    document, buffers = gltf_document(path)
    mesh = fastkin.io.load_gltf(path)[0].meshes[0]
    primitive = document["meshes"][0]["primitives"][0]
    np.testing.assert_array_equal(mesh.positions, gltf_accessor(document, buffers, primitive["attributes"]["POSITION"]))


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d["buffers"][0].update(uri="missing.bin"), "missing file missing.bin"),
        (lambda d: d["buffers"][0].update(uri="data:application/octet-stream;base64,@@@"), "malformed base64"),
        (lambda d: d["accessors"][0].update(count=10**9), "accessor 0: 1000000000 elements do not fit"),
        (lambda d: d["accessors"][0].update(componentType=7), "accessor 0: bad componentType"),
        (lambda d: d["skins"][0].update(joints=[999]), r"nodes\[999\]"),
        (lambda d: d["asset"].update(version="1.0"), "not a glTF 2.0"),
    ],
)
def test_malformed_documents_raise_format_errors(tmp_path, edit, match):
    import json

    document = json.loads(asset("SimpleSkin.gltf").read_text())
    edit(document)
    path = tmp_path / "bad.gltf"
    path.write_text(json.dumps(document))
    with pytest.raises(fastkin.io.FormatError, match=match):
        fastkin.io.load_gltf(path)


def test_truncated_glb_raises(tmp_path):
    raw = asset("Fox.glb").read_bytes()
    for cut in (10, 100, len(raw) // 2):
        path = tmp_path / "cut.glb"
        path.write_bytes(raw[:cut])
        with pytest.raises(fastkin.io.FormatError):
            fastkin.io.load_gltf(path)


def test_step_and_cubic_spline_sampling_follow_the_spec():
    """STEP holds the previous key; CUBICSPLINE is the spec's Hermite form
    p(s) = (2s^3-3s^2+1) v0 + (s^3-2s^2+s) d b0 + (-2s^3+3s^2) v1 + (s^3-s^2) d a1."""
    from fastkin.io.gltf import _sample

    times = np.array([0.0, 1.0, 3.0])
    values = np.array([[0.0, 0, 0], [1.0, 2, 3], [5.0, 5, 5]])
    at = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 2.999, 9.0])
    step = _sample(times, values, "STEP", at, False)
    np.testing.assert_array_equal(step, values[[0, 0, 0, 1, 1, 1, 2]])
    rng = np.random.default_rng(5)
    keys = rng.normal(size=(3, 3, 3))  # key, (in-tangent, value, out-tangent), xyz
    cubic = _sample(times, keys.reshape(9, 3), "CUBICSPLINE", at, False)
    for t, got in zip(at, cubic):
        t = min(max(t, 0.0), 3.0)
        k = 0 if t < 1.0 else 1
        if t == 3.0:
            np.testing.assert_allclose(got, keys[2, 1])
            continue
        d = times[k + 1] - times[k]
        s = (t - times[k]) / d
        expected = (
            (2 * s**3 - 3 * s**2 + 1) * keys[k, 1]
            + (s**3 - 2 * s**2 + s) * d * keys[k, 2]
            + (-2 * s**3 + 3 * s**2) * keys[k + 1, 1]
            + (s**3 - s**2) * d * keys[k + 1, 0]
        )
        np.testing.assert_allclose(got, expected, atol=1e-12)
