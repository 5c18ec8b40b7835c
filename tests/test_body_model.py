"""fastkin.BodyModel against a slow float64 reference (tests/reference.py)
and against smplx's lbs, on synthetic SMPL-layout models (fastkin ships no
model weights): numpy and torch, batches, the three pose forms, gradients,
files and bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import fastkin
from conftest import SMPL_PARENTS
from reference import body_model_reference, random_quaternions

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}
POSE_FORMS = ["axis_angle", "quaternion", "matrix"]
BATCHES = [(), (4,), (2, 3)]


def synthetic_arrays(rng, num_vertices=200, parents=SMPL_PARENTS, num_betas=10, max_influences=4) -> dict:
    """A random model in the usual npz layout (posedirs (V, 3, P)): each
    joint regressed from 8 vertices with convex weights, each vertex skinned
    to 1..max_influences joints, small blend directions."""
    num_joints = len(parents)
    v_template = rng.normal(size=(num_vertices, 3)) * 0.3
    regressor = np.zeros((num_joints, num_vertices))
    for j in range(num_joints):
        picked = rng.choice(num_vertices, 8, replace=False)
        w = rng.random(8) + 0.1
        regressor[j, picked] = w / w.sum()
    weights = np.zeros((num_vertices, num_joints))
    for v in range(num_vertices):
        count = rng.integers(1, max_influences + 1)
        picked = rng.choice(num_joints, count, replace=False)
        w = rng.random(count) + 0.05
        weights[v, picked] = w / w.sum()
    weights[0, :max_influences] = 1.0 / max_influences  # at least one vertex with all influences
    weights[0, max_influences:] = 0.0
    table = np.array([[2**32 - 1] + list(parents[1:]), list(range(num_joints))], dtype=np.uint32)
    return {
        "v_template": v_template,
        "shapedirs": rng.normal(size=(num_vertices, 3, num_betas)) * 0.03,
        "posedirs": rng.normal(size=(num_vertices, 3, 9 * (num_joints - 1))) * 0.01,
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": table,
        "f": rng.integers(0, num_vertices, size=(300, 3)).astype(np.int32),
    }


def reference_arrays(arrays: dict) -> dict:
    return {**arrays, "parents": SMPL_PARENTS}


@pytest.fixture(scope="module")
def arrays() -> dict:
    return synthetic_arrays(np.random.default_rng(7))


@pytest.fixture(scope="module")
def model_path(arrays, tmp_path_factory):
    path = tmp_path_factory.mktemp("body") / "synthetic_smpl.npz"
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def model(model_path):
    return fastkin.BodyModel.from_npz(model_path)


def random_pose(rng, batch, form, num_joints=24):
    axis_angle = rng.normal(size=batch + (num_joints, 3)) * 0.6
    if form == "axis_angle":
        return axis_angle
    if form == "quaternion":  # not unit: the model uses q / |q|, as scipy does
        return random_quaternions(rng, batch + (num_joints,)) * rng.uniform(0.5, 2.0, size=batch + (num_joints, 1))
    return Rotation.from_rotvec(axis_angle.reshape(-1, 3)).as_matrix().reshape(batch + (num_joints, 3, 3))


def random_inputs(rng, batch, form, num_betas=10):
    return rng.normal(size=batch + (num_betas,)), random_pose(rng, batch, form), rng.normal(size=batch + (3,))


def assert_relative(actual, expected, tolerance):
    actual = actual.detach().cpu().numpy() if hasattr(actual, "detach") else actual
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance * scale)


# -- against the reference ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", BATCHES, ids=str)
@pytest.mark.parametrize("form", POSE_FORMS)
def test_numpy_matches_reference(model, arrays, dtype, batch, form, rng):
    betas, pose, translation = random_inputs(rng, batch, form)
    out = model(betas.astype(dtype), pose.astype(dtype), translation.astype(dtype))
    vertices, joints = body_model_reference(reference_arrays(arrays), betas, pose, translation, form)
    assert out.vertices.dtype == dtype and out.vertices.shape == batch + (200, 3)
    assert out.joints.dtype == dtype and out.joints.shape == batch + (24, 3)
    assert_relative(out.vertices, vertices, TOLERANCE[dtype])
    assert_relative(out.joints, joints, TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", BATCHES, ids=str)
@pytest.mark.parametrize("form", POSE_FORMS)
def test_torch_matches_reference(model, arrays, dtype, batch, form, rng):
    torch = pytest.importorskip("torch")
    betas, pose, translation = random_inputs(rng, batch, form)
    tensors = [torch.as_tensor(a.astype(dtype)) for a in (betas, pose, translation)]
    out = model(*tensors, pose_form=form)
    vertices, joints = body_model_reference(reference_arrays(arrays), betas, pose, translation, form)
    assert isinstance(out.vertices, torch.Tensor) and out.vertices.dtype == tensors[0].dtype
    assert tuple(out.vertices.shape) == batch + (200, 3) and tuple(out.joints.shape) == batch + (24, 3)
    assert_relative(out.vertices, vertices, TOLERANCE[dtype])
    assert_relative(out.joints, joints, TOLERANCE[dtype])


@pytest.mark.parametrize(
    "betas_shape, pose_batch, translation_shape",
    [
        (None, (3,), None),  # default betas: zeros
        ((10,), (4,), None),  # one body shape, many poses
        ((5,), (2,), (3,)),  # fewer betas than S; one translation for all
        ((2, 1, 10), (3,), (2, 3, 3)),  # batch shapes broadcast to (2, 3)
        ((4, 10), None, (4, 3)),  # default pose: rest
        (None, None, (2, 3)),  # only a translation
    ],
)
def test_defaults_and_broadcasting(model, arrays, betas_shape, pose_batch, translation_shape, rng):
    betas = None if betas_shape is None else rng.normal(size=betas_shape)
    pose = None if pose_batch is None else random_pose(rng, pose_batch, "axis_angle")
    translation = None if translation_shape is None else rng.normal(size=translation_shape)
    out = model(betas=betas, pose=pose, translation=translation)
    padded = (
        None if betas is None else np.concatenate([betas, np.zeros(betas.shape[:-1] + (10 - betas.shape[-1],))], -1)
    )
    vertices, joints = body_model_reference(reference_arrays(arrays), padded, pose, translation, "axis_angle")
    assert out.vertices.shape == vertices.shape and out.joints.shape == joints.shape
    assert_relative(out.vertices, vertices, 1e-10)
    assert_relative(out.joints, joints, 1e-10)


def test_rest_pose_of_zero_betas_is_the_template(model, arrays):
    out = model()
    np.testing.assert_allclose(out.vertices, arrays["v_template"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.joints, arrays["J_regressor"] @ arrays["v_template"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.rest_joints, out.joints, rtol=0, atol=1e-12)


def test_all_three_forms_agree(model, rng):
    axis_angle = random_pose(rng, (5,), "axis_angle")
    quaternions = fastkin.rotations.axis_angle_to_quat(axis_angle)
    matrices = fastkin.rotations.axis_angle_to_matrix(axis_angle)
    betas = rng.normal(size=(5, 10))
    expected = model(betas, axis_angle).vertices
    for pose in (quaternions, matrices):
        np.testing.assert_allclose(model(betas, pose).vertices, expected, rtol=0, atol=1e-12)


def test_lists_and_integer_arrays_are_float64(model):
    out = model(betas=[0] * 10, pose=np.zeros((24, 3), dtype=np.int64), translation=[1, 2, 3])
    assert out.vertices.dtype == np.float64 and out.vertices.shape == (200, 3)
    np.testing.assert_allclose(out.joints - [1, 2, 3], model.rest_joints, atol=1e-12)


# -- files and construction ------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["V,3,P", "V*3,P", "P,V*3"])
def test_posedirs_layouts_and_parents_key_give_the_same_model(model, arrays, layout, tmp_path, rng):
    posedirs = arrays["posedirs"]
    flat = posedirs.reshape(-1, posedirs.shape[-1])
    converted = {"V,3,P": posedirs, "V*3,P": flat, "P,V*3": flat.T.copy()}[layout]
    keys = {k: v for k, v in arrays.items() if k != "kintree_table"}
    path = tmp_path / "layout.npz"
    np.savez(path, **{**keys, "posedirs": converted, "parents": np.array(SMPL_PARENTS, np.int64)})
    other = fastkin.BodyModel.from_npz(path)
    betas, pose, translation = random_inputs(rng, (3,), "axis_angle")
    np.testing.assert_array_equal(other(betas, pose, translation).vertices, model(betas, pose, translation).vertices)
    np.testing.assert_array_equal(other.parents, SMPL_PARENTS)


def test_constructor_from_arrays_and_properties(model, arrays):
    direct = fastkin.BodyModel(
        v_template=arrays["v_template"],
        shapedirs=arrays["shapedirs"],
        posedirs=arrays["posedirs"],
        J_regressor=arrays["J_regressor"],
        weights=arrays["weights"],
        parents=SMPL_PARENTS,
        faces=arrays["f"],
    )
    assert repr(direct) == repr(model) == "BodyModel(V=200, J=24, S=10)"
    assert (direct.num_vertices, direct.num_joints, direct.num_betas) == (200, 24, 10)
    np.testing.assert_array_equal(direct.faces, arrays["f"])
    assert direct.faces.dtype == np.int32 and model.faces is not None
    np.testing.assert_array_equal(direct.parents, model.parents)
    assert direct.skeleton.num_joints == 24
    np.testing.assert_allclose(
        fastkin.fk_batch(direct.skeleton, direct.skeleton.rest_pose())[1], direct.rest_joints, atol=1e-12
    )
    joint_indices, weights = direct.influences
    assert joint_indices.shape == (200, 4)  # the most nonzeros of a row: nothing is dropped
    dense = np.zeros((200, 24))
    np.put_along_axis(dense, joint_indices.astype(np.int64), weights, axis=1)
    np.testing.assert_allclose(dense, arrays["weights"], atol=1e-15)


def test_a_scipy_sparse_regressor_is_densified(arrays):
    sparse = pytest.importorskip("scipy.sparse")
    keys = {k: v for k, v in arrays.items() if k not in ("f", "J_regressor")}
    model = fastkin.BodyModel(**keys, J_regressor=sparse.csc_matrix(arrays["J_regressor"]))
    np.testing.assert_allclose(model.rest_joints, arrays["J_regressor"] @ arrays["v_template"], atol=1e-12)


def test_model_data_is_immutable(model):
    for array in (
        model.v_template,
        model.J_regressor,
        model.weights,
        model.parents,
        model.rest_joints,
        *model.influences,
    ):
        assert not array.flags.writeable
    with pytest.raises(AttributeError):
        model.v_template = np.zeros((200, 3))
    with pytest.raises(AttributeError):
        model.extra = 1


# -- peer: smplx ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("form", ["axis_angle", "matrix"])
def test_matches_smplx_lbs(model, arrays, dtype, form, rng):
    """The same arrays through smplx.lbs.lbs. smplx's Rodrigues adds 1e-8 to
    the axis-angle vector before taking its norm, so with axis-angle input
    the peers differ by ~1e-8 even in float64; with matrices they agree to
    rounding."""
    torch = pytest.importorskip("torch")
    smplx_lbs = pytest.importorskip("smplx.lbs")
    dt = getattr(torch, dtype)
    count, num_betas = 6, 7  # fewer betas than the model's 10
    betas = torch.as_tensor(rng.normal(size=(count, num_betas)), dtype=dt)
    pose = torch.as_tensor(random_pose(rng, (count,), form), dtype=dt)
    num_vertices = arrays["v_template"].shape[0]

    def as_t(array):
        return torch.as_tensor(np.asarray(array), dtype=dt)

    peer_vertices, peer_joints = smplx_lbs.lbs(
        betas,
        pose.reshape(count, -1) if form == "axis_angle" else pose,
        as_t(arrays["v_template"]),
        as_t(arrays["shapedirs"][:, :, :num_betas]),
        as_t(arrays["posedirs"].reshape(num_vertices * 3, -1).T),
        as_t(arrays["J_regressor"]),
        torch.as_tensor(SMPL_PARENTS, dtype=torch.long),
        as_t(arrays["weights"]),
        pose2rot=form == "axis_angle",
    )
    out = model(betas, pose)
    tolerance = {"float32": 1e-5, "float64": 1e-7 if form == "axis_angle" else 1e-12}[dtype]
    assert_relative(out.vertices, peer_vertices.numpy(), tolerance)
    assert_relative(out.joints, peer_joints.numpy(), tolerance)


# -- gradients --------------------------------------------------------------------------------------


def test_gradcheck_betas_pose_translation():
    torch = pytest.importorskip("torch")
    small = synthetic_arrays(np.random.default_rng(3), num_vertices=30, num_betas=4)
    model = fastkin.BodyModel(**{k: v for k, v in small.items() if k != "f"})
    rng = np.random.default_rng(4)
    betas = torch.tensor(rng.normal(size=(2, 4)), requires_grad=True)
    pose = torch.tensor(rng.normal(size=(2, 24, 3)) * 0.6, requires_grad=True)
    translation = torch.tensor(rng.normal(size=(2, 3)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda b, p, t: tuple(model(b, p, t)), (betas, pose, translation))


@pytest.mark.parametrize("form", ["quaternion", "matrix"])
def test_gradients_flow_through_other_pose_forms(model, form, rng):
    torch = pytest.importorskip("torch")
    pose = torch.tensor(random_pose(rng, (2,), form), requires_grad=True)
    betas = torch.tensor(rng.normal(size=(2, 10)), requires_grad=True)
    out = model(betas, pose)
    (out.vertices.square().sum() + out.joints.sum()).backward()
    assert torch.isfinite(pose.grad).all() and pose.grad.abs().sum() > 0 and betas.grad.abs().sum() > 0


# -- bad input ----------------------------------------------------------------------------------------


def test_a_pickle_file_is_refused_with_a_way_out(tmp_path):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))}))
    with pytest.raises(ValueError, match=r"pickle.*np\.savez"):
        fastkin.BodyModel.from_npz(path)
    disguised = tmp_path / "model.npz"
    disguised.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))}))
    with pytest.raises(ValueError, match="pickled data"):
        fastkin.BodyModel.from_npz(disguised)


def test_a_sparse_regressor_stored_as_an_object_is_refused(arrays, tmp_path):
    sparse = pytest.importorskip("scipy.sparse")
    path = tmp_path / "sparse.npz"
    boxed = np.empty((), dtype=object)
    boxed[()] = sparse.csc_matrix(arrays["J_regressor"])
    np.savez(path, **{**arrays, "J_regressor": boxed})  # what np.savez does with a sparse matrix
    with pytest.raises(ValueError, match=r"'J_regressor' is stored as a Python object.*toarray"):
        fastkin.BodyModel.from_npz(path)


@pytest.mark.parametrize("key", ["v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table"])
def test_a_missing_key_is_named(arrays, key, tmp_path):
    path = tmp_path / "missing.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if k != key})
    with pytest.raises(ValueError, match=f"has no '{key}"):
        fastkin.BodyModel.from_npz(path)


@pytest.mark.parametrize(
    "key, bad",
    [
        ("v_template", lambda a: a["v_template"][:, :2]),
        ("shapedirs", lambda a: a["shapedirs"][:-1]),
        ("posedirs", lambda a: a["posedirs"][..., :-9]),
        ("J_regressor", lambda a: a["J_regressor"][:-1]),
        ("J_regressor", lambda a: a["J_regressor"].astype(str)),
        ("weights", lambda a: a["weights"][:, :-1]),
        ("weights", lambda a: a["weights"] * 0.5),
        ("weights", lambda a: a["weights"] - 0.01),
        ("kintree_table", lambda a: a["kintree_table"][:1]),
        ("kintree_table", lambda a: np.where(np.arange(24) == 5, 30, a["kintree_table"]).astype(np.uint32)),
        ("f", lambda a: a["f"] + 1000),
        ("f", lambda a: a["f"][:, :2]),
    ],
)
def test_a_bad_array_is_named(arrays, key, bad, tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, **{**arrays, key: bad(arrays)})
    name = "faces" if key == "f" else key
    with pytest.raises((ValueError, TypeError), match=f"bad.npz: {name}"):
        fastkin.BodyModel.from_npz(path)


@pytest.mark.parametrize("key", ["v_template", "shapedirs", "posedirs", "J_regressor", "weights"])
def test_non_finite_model_arrays_are_named(arrays, key):
    broken = {k: v for k, v in arrays.items() if k != "f"}
    broken[key] = broken[key].copy()
    broken[key].flat[5] = np.nan
    with pytest.raises(ValueError, match=f"{key} must be finite"):
        fastkin.BodyModel(**broken)


def test_joints_out_of_topological_order_are_refused(arrays):
    keys = {k: v for k, v in arrays.items() if k not in ("f", "kintree_table")}
    parents = list(SMPL_PARENTS)
    parents[3] = 5  # joint 3 after its child's sibling
    with pytest.raises(ValueError, match=r"parents: the joints are not in topological order.*joint 3 has parent 5"):
        fastkin.BodyModel(**keys, parents=parents)
    table = arrays["kintree_table"].copy()
    table[0, 3] = 5
    with pytest.raises(ValueError, match=r"kintree_table: the joints are not in topological order"):
        fastkin.BodyModel(**keys, kintree_table=table)
    with pytest.raises(ValueError, match="disagree"):
        fastkin.BodyModel(**keys, kintree_table=arrays["kintree_table"], parents=[-1] + SMPL_PARENTS[:-1])
    with pytest.raises(ValueError, match="pass parents"):
        fastkin.BodyModel(**keys)


def test_truncated_and_foreign_files(model_path, tmp_path):
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(model_path.read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated"):
        fastkin.BodyModel.from_npz(truncated)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match="single .npy array"):
        fastkin.BodyModel.from_npz(single)
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not an .npz archive"):
        fastkin.BodyModel.from_npz(text)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"betas": np.zeros(11)}, ValueError, r"betas must have shape \(\.\.\., n\) with n <= 10"),
        ({"betas": np.full(10, np.nan)}, ValueError, "betas must be finite"),
        ({"pose": np.full((24, 3), np.inf)}, ValueError, "pose must be finite"),
        ({"translation": [0, np.nan, 0]}, ValueError, "translation must be finite"),
        ({"pose": np.zeros(72)}, ValueError, r"pose must have shape.*reshape it to \(\.\.\., 24, 3\)"),
        ({"pose": np.zeros((23, 3))}, ValueError, "pose must have shape"),
        ({"pose": np.zeros((24, 3)), "pose_form": "euler"}, ValueError, "pose_form must be one of"),
        (
            {"pose": np.zeros((24, 3)), "pose_form": "matrix"},
            ValueError,
            r"pose as matrix must have shape \(\.\.\., 24, 3, 3\)",
        ),
        ({"pose": np.zeros((24, 4))}, ValueError, "zero quaternion"),
        ({"translation": np.zeros(2)}, ValueError, r"translation must have shape \(\.\.\., 3\)"),
        ({"betas": np.zeros((2, 10)), "pose": np.zeros((3, 24, 3))}, ValueError, "do not broadcast"),
        (
            {"betas": np.zeros(10, np.float32), "pose": np.zeros((24, 3))},
            TypeError,
            "pose has dtype float64 but betas is float32",
        ),
        ({"betas": np.zeros(10, np.float16)}, TypeError, "betas must be float32 or float64"),
        ({"betas": np.array(["a"] * 10)}, TypeError, "betas must be a real numeric array"),
    ],
)
def test_bad_call_arguments_are_named(model, kwargs, error, message):
    with pytest.raises(error, match=message):
        model(**kwargs)


def test_bad_torch_arguments_are_named(model):
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="pose has dtype torch.float32 but betas is torch.float64"):
        model(torch.zeros(10, dtype=torch.float64), torch.zeros(24, 3, dtype=torch.float32))
    with pytest.raises(TypeError, match="betas must be float32 or float64"):
        model(torch.zeros(10, dtype=torch.int64))
    with pytest.raises(ValueError, match="pose must be finite"):
        model(pose=torch.full((24, 3), float("nan")))


def test_three_joint_models_need_pose_form_for_matrices():
    model = fastkin.BodyModel(
        v_template=np.eye(4, 3), shapedirs=np.zeros((4, 3, 1)), posedirs=np.zeros((4, 3, 18)),
        J_regressor=np.eye(3, 4), weights=[[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], parents=[-1, 0, 1],
    )  # fmt: skip
    identity = np.tile(np.eye(3), (3, 1, 1))
    with pytest.raises(ValueError, match="could be axis_angle or matrix: pass pose_form"):
        model(pose=identity)
    np.testing.assert_allclose(model(pose=identity, pose_form="matrix").vertices, np.eye(4, 3), atol=1e-15)
    assert model(pose=identity, pose_form="axis_angle").vertices.shape == (3, 4, 3)
