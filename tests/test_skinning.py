"""lbs, dqs, skinning_transforms and top_k_weights against slow references,
on random rigs and on the bind pose of every skinned glTF asset."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastkin
from conftest import REPO, SMPL_PARENTS, shared_data
from reference import (
    dqs_reference,
    gltf_accessor,
    gltf_document,
    gltf_world_matrices,
    lbs_reference,
    random_quaternions,
    random_rigid_transforms,
)

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def random_rig(rng, batch=(3,), num_joints=24, num_vertices=200, k=4, dtype=np.float64):
    transforms = random_rigid_transforms(rng, batch + (num_joints,)).astype(dtype)
    vertices = rng.normal(size=(num_vertices, 3)).astype(dtype)
    joints = rng.integers(0, num_joints, size=(num_vertices, k)).astype(np.int32)
    weights = rng.random((num_vertices, k)) + 0.01
    weights = (weights / weights.sum(axis=1, keepdims=True)).astype(dtype)
    return transforms, vertices, joints, weights


def assert_relative(actual, expected, tolerance):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [(), (1,), (5,), (2, 3)])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8])
def test_lbs_matches_reference(dtype, batch, k, rng):
    transforms, vertices, joints, weights = random_rig(rng, batch, k=k, dtype=dtype)
    out = fastkin.lbs(transforms, vertices, joints, weights)
    assert out.dtype == dtype and out.shape == batch + (200, 3)
    assert_relative(out, lbs_reference(transforms, vertices, joints, weights), TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [(), (4,), (2, 2)])
@pytest.mark.parametrize("k", [1, 3, 4])
def test_dqs_matches_reference(dtype, batch, k, rng):
    transforms, vertices, joints, weights = random_rig(rng, batch, num_vertices=37, k=k, dtype=dtype)
    out = fastkin.dqs(transforms, vertices, joints, weights)
    assert out.dtype == dtype and out.shape == batch + (37, 3)
    assert_relative(out, dqs_reference(transforms, vertices, joints, weights), TOLERANCE[dtype])


@pytest.mark.parametrize("skin", [fastkin.lbs, fastkin.dqs])
def test_batched_vertices_and_normals(skin, rng):
    transforms, _, joints, weights = random_rig(rng, (2, 3), num_vertices=50)
    vertices = rng.normal(size=(2, 3, 50, 3))
    normals = rng.normal(size=(50, 3))
    reference = lbs_reference if skin is fastkin.lbs else dqs_reference
    moved, turned = skin(transforms, vertices, joints, weights, normals=normals)
    expected = np.stack(
        [reference(transforms[i, j], vertices[i, j], joints, weights) for i in range(2) for j in range(3)]
    )
    assert_relative(moved, expected.reshape(moved.shape), 1e-12)
    directions = reference(transforms, normals, joints, weights, points=False)
    expected_normals = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    assert_relative(turned, expected_normals, 1e-12)


def test_one_joint_is_a_rigid_motion_for_both(rng):
    transforms, vertices, _, _ = random_rig(rng, (4,), num_joints=3, num_vertices=30, k=2)
    joints = np.full((30, 2), 2, np.int32)
    weights = np.full((30, 2), 0.5)
    expected = vertices @ transforms[:, 2, :, :3].transpose(0, 2, 1) + transforms[:, 2, None, :, 3]
    for skin in (fastkin.lbs, fastkin.dqs):
        assert_relative(skin(transforms, vertices, joints, weights), expected, 1e-12)


def test_dqs_keeps_distance_to_a_twisting_joint(rng):
    # Two joints at the origin twisting in opposite directions about x: LBS
    # pulls a point halfway between towards the axis, DQS keeps its radius.
    angles = np.array([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0]])
    rotation = fastkin.rotations.axis_angle_to_matrix(angles)
    transforms = np.concatenate([rotation, np.zeros((2, 3, 1))], axis=-1)
    point = [[0.0, 1.0, 0.0]]
    joints, weights = [[0, 1]], [[0.5, 0.5]]
    assert np.linalg.norm(fastkin.dqs(transforms, point, joints, weights)) == pytest.approx(1.0, abs=1e-12)
    assert np.linalg.norm(fastkin.lbs(transforms, point, joints, weights)) < 0.5


def test_unnormalised_weights_warn_and_are_divided_by_their_sum(rng):
    transforms, vertices, joints, weights = random_rig(rng, (2,))
    scaled = weights * rng.uniform(0.5, 2.0, size=(200, 1))
    for skin in (fastkin.lbs, fastkin.dqs):
        with pytest.warns(RuntimeWarning, match=r"weights of \d+ vertices do not sum to 1"):
            out = skin(transforms, vertices, joints, scaled)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert_relative(out, skin(transforms, vertices, joints, weights), 1e-12)


def test_int64_and_uint8_indices_are_accepted(rng):
    transforms, vertices, joints, weights = random_rig(rng, (2,))
    expected = fastkin.lbs(transforms, vertices, joints, weights)
    for dtype in (np.int64, np.uint8):
        np.testing.assert_array_equal(fastkin.lbs(transforms, vertices, joints.astype(dtype), weights), expected)


def test_threads_split_batch_and_vertices_alike(rng):
    transforms, vertices, joints, weights = random_rig(rng, (3,), num_vertices=40000)
    before = fastkin.get_num_threads()
    try:
        fastkin.set_num_threads(1)
        single = [
            fastkin.lbs(transforms, vertices, joints, weights),
            fastkin.dqs(transforms, vertices, joints, weights),
        ]
        fastkin.set_num_threads(2)
        pooled = [
            fastkin.lbs(transforms, vertices, joints, weights),
            fastkin.dqs(transforms, vertices, joints, weights),
        ]
    finally:
        fastkin.set_num_threads(before)
    for a, b in zip(single, pooled):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("isa", ["scalar", "avx2"])
def test_every_instruction_set_path(isa):
    """The narrower kernels, in a subprocess with FASTKIN_ISA capping the choice."""
    code = (
        "import numpy as np, fastkin, sys; sys.path.insert(0, 'tests');"
        "from reference import lbs_reference, dqs_reference, random_rigid_transforms;"
        "rng = np.random.default_rng(3);"
        "t = random_rigid_transforms(rng, (3, 10));"
        "v = rng.normal(size=(61, 3)); j = rng.integers(0, 10, (61, 4)).astype(np.int32);"
        "w = rng.random((61, 4)) + 0.1; w /= w.sum(1, keepdims=True);"
        "assert np.abs(fastkin.lbs(t, v, j, w) - lbs_reference(t, v, j, w)).max() < 1e-12;"
        "assert np.abs(fastkin.dqs(t, v, j, w) - dqs_reference(t, v, j, w)).max() < 1e-12;"
        "print(fastkin.build_info()['isa'])"
    )
    env = dict(os.environ, FASTKIN_ISA=isa)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] in (isa, "scalar")


def test_skinning_transforms_default_bind_is_the_rest_pose(rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)), rest_rotations=random_quaternions(rng, (24,)))
    rest = fastkin.fk_batch(skeleton, skeleton.rest_rotations)
    identity = np.tile(np.eye(3, 4), (24, 1, 1))
    assert_relative(fastkin.skinning_transforms(skeleton, *rest), identity, 1e-12)
    # Posed: W_j [R0_j | p0_j]^-1, checked on a point carried rigidly by a joint.
    pose = random_quaternions(rng, (2, 24))
    world_r, world_p = fastkin.fk_batch(skeleton, pose)
    transforms = fastkin.skinning_transforms(skeleton, world_r, world_p)
    offset = rng.normal(size=3)
    rest_point = rest[1][5] + rest[0][5] @ offset
    posed_point = world_p[:, 5] + world_r[:, 5] @ offset
    assert_relative(transforms[:, 5, :, :3] @ rest_point + transforms[:, 5, :, 3], posed_point, 1e-12)


def test_top_k_weights_keeps_the_largest(rng):
    dense = rng.random((50, 24)) ** 4
    joints, weights = fastkin.top_k_weights(dense, k=4)
    assert joints.dtype == np.int32 and joints.shape == (50, 4)
    for v in range(50):
        expected = np.sort(np.argsort(-dense[v])[:4])
        np.testing.assert_array_equal(np.sort(joints[v]), expected)
        np.testing.assert_allclose(weights[v], dense[v, joints[v]] / dense[v, joints[v]].sum(), rtol=1e-12)


def skinned_gltf_meshes():
    folder = shared_data() / "test" / "gltf"
    found = []
    for path in sorted(folder.rglob("*.gl*")) if folder.is_dir() else []:
        if path.suffix not in (".gltf", ".glb"):
            continue
        for c, character in enumerate(fastkin.io.load_gltf(path)):
            for m, mesh in enumerate(character.meshes):
                found.append(pytest.param(path, c, m, id=f"{path.name}-{c}-{m}"))
    return found


# Assets whose nodes rest in the bind pose (SimpleSkin and RobotExpressive rest elsewhere).
RESTING_AT_BIND_POSE = {"CesiumMan.glb", "Fox.glb", "RiggedFigure.gltf", "RiggedSimple.gltf"}


def gltf_skin_reference(path, c):
    """From the document alone (tests/reference.py): every node's rest world
    matrix, skin c's joints and inverse bind matrices, and the world matrix
    of the node that carries its mesh."""
    document, buffers = gltf_document(path)
    world = gltf_world_matrices(document, buffers, None, np.zeros(1))[0]
    skin = document["skins"][c]
    inverse_bind = np.tile(np.eye(4), (len(skin["joints"]), 1, 1))
    if "inverseBindMatrices" in skin:
        inverse_bind = (
            gltf_accessor(document, buffers, skin["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1)
        )
    mesh_node = next(n for n, node in enumerate(document["nodes"]) if node.get("skin") == c and "mesh" in node)
    return world, skin["joints"], inverse_bind, world[mesh_node]


@pytest.mark.parametrize("path, c, m", skinned_gltf_meshes())
def test_gltf_rest_pose_skinning_matches_the_gltf_rules(path, c, m):
    """At the file's rest pose, fk + skinning_transforms (with the skin's
    inverse bind matrices) + lbs give glTF's skinned mesh: joint world
    matrices (composed independently by tests/reference.py) times inverse
    bind matrices, blended. Where the rest pose is the bind pose, that
    reproduces the mesh placed by its node's world transform."""
    character = fastkin.io.load_gltf(path)[c]
    mesh = character.meshes[m]
    skeleton = character.skeleton
    rest = fastkin.fk_batch(skeleton, skeleton.rest_rotations.astype(np.float32))
    transforms = fastkin.skinning_transforms(skeleton, *rest, inverse_bind=character.inverse_bind_matrices)
    positions = mesh.positions.astype(np.float32)
    weights = mesh.weights.astype(np.float32)
    world, joint_nodes, inverse_bind, mesh_world = gltf_skin_reference(path, c)
    gltf_transforms = (world[joint_nodes] @ inverse_bind)[:, :3, :]
    remap = [joint_nodes.index(n) for n in character.joint_nodes]
    placed = mesh.positions @ mesh_world[:3, :3].T + mesh_world[:3, 3]
    size = float(np.ptp(placed, axis=0).max())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # some assets' weights do not sum to 1
        moved = fastkin.lbs(transforms, positions, mesh.joints, weights)
        np.testing.assert_allclose(
            moved, lbs_reference(transforms, positions, mesh.joints, weights), rtol=0, atol=1e-5 * size
        )
        expected = lbs_reference(gltf_transforms[remap], mesh.positions, mesh.joints, mesh.weights)
        np.testing.assert_allclose(moved, expected, rtol=0, atol=1e-5 * size)
        if path.name in RESTING_AT_BIND_POSE:
            np.testing.assert_allclose(moved, placed, rtol=0, atol=1e-4 * size)
        if np.abs(transforms[..., :3] @ np.swapaxes(transforms[..., :3], -1, -2) - np.eye(3)).max() < 1e-4:
            dual = fastkin.dqs(transforms, positions, mesh.joints, weights)
            np.testing.assert_allclose(
                dual, dqs_reference(transforms, positions, mesh.joints, weights), rtol=0, atol=1e-5 * size
            )


@pytest.mark.parametrize("path, c, m", skinned_gltf_meshes())
def test_gltf_bind_pose_reproduces_the_stored_mesh(path, c, m):
    """The bind pose glTF's inverse bind matrices define (joint j's world
    matrix is the mesh node's world matrix times IBM_j^-1, read from the
    document), posed through fk_batch as local rotations and offsets and
    skinned with lbs and dqs, gives back the stored positions (placed by
    the mesh node)."""
    character = fastkin.io.load_gltf(path)[c]
    mesh = character.meshes[m]
    skeleton = character.skeleton
    _, joint_nodes, inverse_bind, mesh_world = gltf_skin_reference(path, c)
    bind_world = (mesh_world @ np.linalg.inv(inverse_bind))[[joint_nodes.index(n) for n in character.joint_nodes]]
    scale = np.cbrt(np.linalg.det(bind_world[:, :3, :3]))  # fastkin's joint frames carry no scale
    world_r, world_p = bind_world[:, :3, :3] / scale[:, None, None], bind_world[:, :3, 3]
    local = np.empty_like(world_r)
    offsets = np.empty_like(world_p)
    for j, parent in enumerate(skeleton.parents):
        if parent < 0:
            local[j], offsets[j] = world_r[j], world_p[j]
        else:
            local[j] = world_r[parent].T @ world_r[j]
            offsets[j] = world_r[parent].T @ (world_p[j] - world_p[parent])
    posed = fastkin.fk_batch(skeleton, local, offsets=offsets)
    transforms = fastkin.skinning_transforms(skeleton, *posed, inverse_bind=character.inverse_bind_matrices)
    placed = mesh.positions @ mesh_world[:3, :3].T + mesh_world[:3, 3]
    size = float(np.ptp(placed, axis=0).max())
    rigid = np.abs(transforms[..., :3] @ np.swapaxes(transforms[..., :3], -1, -2) - np.eye(3)).max() < 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # some assets' weights do not sum to 1
        for skin in (fastkin.lbs, fastkin.dqs) if rigid else (fastkin.lbs,):
            moved = skin(
                transforms.astype(np.float32),
                mesh.positions.astype(np.float32),
                mesh.joints,
                mesh.weights.astype(np.float32),
            )
            np.testing.assert_allclose(moved, placed, rtol=0, atol=1e-4 * size)


def test_skinned_gltf_assets_are_present():
    if not (shared_data() / "test" / "gltf").is_dir():
        pytest.skip("shared data not found (set FASTKIN_SHARED_DATA)")
    assert len(skinned_gltf_meshes()) >= 6


@pytest.mark.parametrize("skin", [fastkin.lbs, fastkin.dqs], ids=["lbs", "dqs"])
@pytest.mark.parametrize("batched_vertices", [False, True])
def test_torch_gradcheck_transforms_vertices_weights(skin, batched_vertices, rng):
    """The C++ backward through the torch op (regression: the binding once
    checked the transforms' shape against a dangling initializer_list)."""
    torch = pytest.importorskip("torch")
    transforms, vertices, joints, weights = random_rig(rng, (2,), num_joints=5, num_vertices=7, k=3)
    if batched_vertices:
        vertices = np.stack([vertices, vertices + 0.1])
    inputs = [torch.tensor(a, requires_grad=True) for a in (transforms, vertices, weights)]

    def f(t, v, w):
        if skin is fastkin.dqs:  # keep the transforms rigid: perturb a rotation and a translation
            t = torch.cat(
                [fastkin.rotations.rot6d_to_matrix(fastkin.rotations.matrix_to_rot6d(t[..., :3])), t[..., 3:]], -1
            )
        return skin(t, v, joints, w)

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7)
