"""Parametric body models of the SMPL family (SMPL, SMPL+H, SMPL-X, MANO and
other models with the same arrays), built from arrays the user supplies:
fastkin ships no model weights. See docs/body_model.md for the file layout
and how to convert a model distributed as a pickle.

For shape coefficients ``betas``, local joint rotations ``R`` and a
translation ``t`` the forward pass is:

1. shaped rest mesh ``v_shaped = v_template + shapedirs · betas``;
2. rest joints ``J_rest = J_regressor · v_shaped``, computed as
   ``J_regressor · v_template + (J_regressor · shapedirs) · betas`` with
   both products precomputed, so it costs O(J·S) per call;
3. pose correctives ``v_posed = v_shaped + posedirs · f(R)``, where
   ``f(R)`` concatenates the row-major ``R_j - I`` of joints 1..J-1;
4. world transforms ``W_j`` from :func:`fastkin.fk_batch`, with offsets
   ``J_rest[j] - J_rest[parent(j)]`` (a root: ``J_rest[root]``) and the
   root translation ``t``;
5. vertices from :func:`fastkin.lbs` with the skinning transforms
   ``W_j · [I | -J_rest[j]]``; joints are the posed joint positions
   (``t`` included).

Example:
    >>> import numpy as np, fastkin
    >>> model = fastkin.BodyModel(
    ...     v_template=[[0, 0, 0], [0, 1, 0], [0, 2, 0]], shapedirs=np.zeros((3, 3, 1)),
    ...     posedirs=np.zeros((3, 3, 9)), J_regressor=[[1, 0, 0], [0, 1, 0]],
    ...     weights=[[1, 0], [0, 1], [0, 1]], parents=[-1, 0])
    >>> model
    BodyModel(V=3, J=2, S=1)
"""

from __future__ import annotations

import os
import zipfile
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ._backend import is_torch, read_only

if TYPE_CHECKING:  # torch is optional at run time
    import torch
from .kinematics import fk_batch
from .rotations import axis_angle_to_matrix, quat_to_matrix
from .skeleton import Skeleton
from .skinning import lbs, top_k_weights

__all__ = ["BodyModel", "BodyModelOutput"]

POSE_FORMS = ("axis_angle", "quaternion", "matrix")

CONVERT_HELP = (
    "fastkin never unpickles (a pickle can run arbitrary code). Convert the model once, in an environment you "
    "trust, with the model's official code: load it there and np.savez its arrays (v_template, shapedirs, "
    "posedirs, J_regressor as a dense array, weights, kintree_table, f) to an .npz; docs/body_model.md shows how"
)


class BodyModelOutput(NamedTuple):
    """What :class:`BodyModel` returns: ``vertices (..., V, 3)`` and the
    posed joint positions ``joints (..., J, 3)``, translation included."""

    vertices: Any
    joints: Any


class BodyModel:
    """A body model of the SMPL family: blend shapes, pose correctives, a
    joint regressor and linear blend skinning over a skeleton.

    Args (keyword only; the names are the keys of the usual ``.npz``):
        v_template: ``(V, 3)`` template mesh.
        shapedirs: ``(V, 3, S)`` shape blend directions.
        posedirs: pose-corrective directions for the ``P = 9 (J - 1)`` pose
            features, as ``(V, 3, P)``, ``(V*3, P)`` or ``(P, V*3)`` (read
            as ``(V*3, P)`` in the rare square case ``P = V*3``).
        J_regressor: ``(J, V)`` dense joint regressor (a scipy sparse
            matrix is densified).
        weights: ``(V, J)`` dense skinning weights, ``>= 0``, each row
            summing to 1 (within 1e-3).
        parents: ``(J,)`` parent of each joint (-1 for the root), or
        kintree_table: ``(2, J)`` with the parents in row 0 (the root's is
            -1 or a huge unsigned value) and the joint ids in row 1.
        faces: optional ``(F, 3)`` triangle vertex indices (key ``f``).

    Joints must be in topological order (``parents[j] < j``). All arrays
    are validated once and kept read-only, in float64; per-dtype (and
    per-device) copies are made on first use and cached.

    Calling the model (see :meth:`__call__`) with ``betas``, ``pose`` and
    ``translation`` gives a :class:`BodyModelOutput`.

    Example:
        >>> import numpy as np, fastkin
        >>> model = fastkin.BodyModel(  # a two-joint "arm" of three vertices
        ...     v_template=[[0, 0, 0], [0, 1, 0], [0, 2, 0]],
        ...     shapedirs=np.zeros((3, 3, 1)), posedirs=np.zeros((3, 3, 9)),
        ...     J_regressor=[[1, 0, 0], [0, 1, 0]], weights=[[1, 0], [0, 1], [0, 1]],
        ...     parents=[-1, 0])
        >>> model.num_vertices, model.num_joints, model.num_betas
        (3, 2, 1)
        >>> pose = np.array([[0, 0, 0], [0, 0, np.pi / 2]])  # bend joint 1 about z
        >>> model(pose=pose).vertices.round(6)
        array([[ 0.,  0.,  0.],
               [ 0.,  1.,  0.],
               [-1.,  1.,  0.]])
    """

    __slots__ = (
        "_J_regressor",
        "_cache",
        "_faces",
        "_joint_indices",
        "_joint_shape_basis",
        "_joint_template",
        "_parents",
        "_pose_basis",
        "_shape_basis",
        "_skeleton",
        "_skin_weights",
        "_v_template",
        "_weights",
    )

    def __init__(
        self,
        *,
        v_template: Any,
        shapedirs: Any,
        posedirs: Any,
        J_regressor: Any,
        weights: Any,
        parents: Any | None = None,
        kintree_table: Any | None = None,
        faces: Any | None = None,
    ) -> None:
        parent_array = _parents_from(parents, kintree_table)
        num_joints = len(parent_array)
        v_template = _real_array(v_template, "v_template")
        if v_template.ndim != 2 or v_template.shape[1] != 3 or v_template.shape[0] < 1:
            raise ValueError(f"v_template must have shape (V, 3), got {v_template.shape}")
        num_vertices = v_template.shape[0]
        shapedirs = _real_array(shapedirs, "shapedirs")
        if shapedirs.ndim != 3 or shapedirs.shape[:2] != (num_vertices, 3):
            raise ValueError(f"shapedirs must have shape (V, 3, S) = ({num_vertices}, 3, S), got {shapedirs.shape}")
        num_betas = shapedirs.shape[2]
        pose_basis = _pose_basis(_real_array(posedirs, "posedirs"), num_vertices, num_joints)
        J_regressor = _real_array(J_regressor, "J_regressor")
        if J_regressor.shape != (num_joints, num_vertices):
            raise ValueError(
                f"J_regressor must have shape (J, V) = ({num_joints}, {num_vertices}) (J from the parents, V from "
                f"v_template), got {J_regressor.shape}"
            )
        weights = _real_array(weights, "weights")
        joint_indices, skin_weights = _sparse_weights(weights, num_vertices, num_joints)

        self._v_template = read_only(v_template)
        self._shape_basis = read_only(shapedirs.reshape(num_vertices * 3, num_betas).T)  # (S, V*3)
        self._pose_basis = read_only(pose_basis)  # (P, V*3)
        self._J_regressor = read_only(J_regressor)
        self._weights = read_only(weights)
        joint_template = J_regressor @ v_template
        self._joint_template = read_only(joint_template)  # (J, 3)
        joint_shape = np.einsum("jv,vcs->sjc", J_regressor, shapedirs).reshape(num_betas, num_joints * 3)
        self._joint_shape_basis = read_only(joint_shape)  # (S, J*3)
        self._joint_indices = read_only(joint_indices)
        self._skin_weights = read_only(skin_weights)
        self._parents = read_only(parent_array)
        self._faces = None if faces is None else read_only(_faces(faces, num_vertices))
        self._skeleton = Skeleton(parent_array, _offsets(joint_template, parent_array))
        self._cache: dict = {}

    @classmethod
    def from_npz(cls, path: str | os.PathLike) -> BodyModel:
        """Reads a model from an ``.npz`` holding ``v_template``,
        ``shapedirs``, ``posedirs``, ``J_regressor``, ``weights``,
        ``kintree_table`` or ``parents``, and optionally ``f`` (other keys
        are ignored). The file is read with ``allow_pickle=False``: a
        ``.pkl`` file, or an npz whose arrays need unpickling (a sparse
        ``J_regressor`` saved as an object), raises a ``ValueError`` that
        explains how to convert it.

        Example:
            >>> import os, tempfile, numpy as np, fastkin
            >>> path = os.path.join(tempfile.mkdtemp(), "arm.npz")
            >>> np.savez(path, v_template=np.eye(4, 3), shapedirs=np.zeros((4, 3, 2)),
            ...          posedirs=np.zeros((4, 3, 9)), J_regressor=[[1.0, 0, 0, 0], [0, 1, 0, 0]],
            ...          weights=[[1.0, 0], [0, 1], [0, 1], [1, 0]], kintree_table=[[2**32 - 1, 0], [0, 1]])
            >>> fastkin.BodyModel.from_npz(path)
            BodyModel(V=4, J=2, S=2)
        """
        name = os.fspath(path)
        if isinstance(name, bytes):
            name = os.fsdecode(name)
        if name.lower().endswith((".pkl", ".pickle")):
            raise ValueError(f"{name} is a pickle file. {CONVERT_HELP}")
        with open(name, "rb") as file:
            magic = file.read(6)
        if not magic.startswith(b"PK"):
            if magic.startswith(b"\x93NUMPY"):
                raise ValueError(f"{name} is a single .npy array; a body model is an .npz archive of several arrays")
            if magic[:1] == b"\x80":
                raise ValueError(f"{name} holds pickled data, not an .npz archive. {CONVERT_HELP}")
            raise ValueError(f"{name} is not an .npz archive (it does not start as a zip file)")
        arrays: dict[str, np.ndarray] = {}
        try:
            with np.load(name, allow_pickle=False) as archive:
                keys = set(archive.files)
                missing = [k for k in _REQUIRED_KEYS if k not in keys]
                if "kintree_table" not in keys and "parents" not in keys:
                    missing.append("kintree_table (or parents)")
                if missing:
                    raise ValueError(
                        f"{name} has no {', '.join(repr(k) for k in missing)}; a body model .npz holds "
                        f"{', '.join(_REQUIRED_KEYS)}, kintree_table or parents, and optionally f. "
                        f"It holds {sorted(keys)}"
                    )
                for key in _REQUIRED_KEYS + ("kintree_table", "parents", "f"):
                    if key in keys:
                        arrays[key] = _read_key(archive, key, name)
        except (zipfile.BadZipFile, EOFError) as error:
            raise ValueError(f"{name} is not a readable .npz archive (truncated or corrupt?): {error}") from None
        if "f" in arrays:
            arrays["faces"] = arrays.pop("f")
        try:
            return cls(**arrays)
        except (ValueError, TypeError) as error:
            raise type(error)(f"{name}: {error}") from None

    # -- the forward pass ------------------------------------------------------------------------

    def __call__(
        self,
        betas: Any | None = None,
        pose: Any | None = None,
        translation: Any | None = None,
        *,
        pose_form: str | None = None,
    ) -> BodyModelOutput:
        """Posed vertices and joints.

        Args:
            betas: ``(..., n)`` shape coefficients, ``n <= S`` (the first
                ``n`` directions are used); zeros when omitted.
            pose: local joint rotations: axis-angle ``(..., J, 3)``, xyzw
                quaternions ``(..., J, 4)`` (used as ``q / |q|``) or
                matrices ``(..., J, 3, 3)`` (used as given); the rest pose
                when omitted. The form is read from the trailing shape, or
                from ``pose_form``.
            translation: ``(..., 3)`` added to the root; zeros when omitted.
            pose_form: ``"axis_angle"``, ``"quaternion"`` or ``"matrix"``,
                needed only when the shape is ambiguous (J = 3).

        The leading batch shapes of the arguments broadcast together.
        numpy arrays give numpy arrays; torch tensors give tensors (on the
        tensors' device) that are differentiable with respect to ``betas``,
        ``pose`` and ``translation``. Output dtype = input dtype (float32 or
        float64; lists and integer arrays are float64).

        Returns:
            ``BodyModelOutput(vertices (..., V, 3), joints (..., J, 3))``.

        Example:
            >>> import numpy as np, fastkin
            >>> model = fastkin.BodyModel(v_template=[[0, 0, 0], [0, 1, 0], [0, 2, 0]],
            ...     shapedirs=[[[0], [0], [0]], [[0], [1], [0]], [[0], [2], [0]]],  # betas scale along y
            ...     posedirs=np.zeros((3, 3, 9)), J_regressor=[[1, 0, 0], [0, 1, 0]],
            ...     weights=[[1, 0], [0, 1], [0, 1]], parents=[-1, 0])
            >>> out = model(betas=np.array([[0.5], [1.0]]), translation=[1, 0, 0])  # a batch of 2
            >>> out.vertices.shape, out.joints[1].round(6)
            ((2, 3, 3), array([[1., 0., 0.],
                   [1., 2., 0.]]))
        """
        xp, data, betas, rotations, translation, batch = self._checked_arguments(betas, pose, translation, pose_form)
        num_joints, num_vertices = self.num_joints, self.num_vertices

        # Blend shapes and rest joints: (V, 3) and (J, 3), or batched by betas.
        if betas is None:
            v_posed, rest_joints, offsets = data["v_template"], data["joint_template"], None
        else:
            count = betas.shape[-1]
            shape_batch = tuple(betas.shape[:-1])
            v_posed = data["v_template"] + (betas @ data["shape_basis"][:count]).reshape(
                shape_batch + (num_vertices, 3)
            )
            rest_joints = data["joint_template"] + (betas @ data["joint_shape_basis"][:count]).reshape(
                shape_batch + (num_joints, 3)
            )
            offsets = xp.broadcast(
                rest_joints - rest_joints[..., data["parent_or_self"], :] * data["has_parent"], batch, 2
            )
        if rotations is None:  # the rest pose
            rotations = xp.identity(data, batch + (num_joints, 3, 3))
        else:
            if num_joints > 1:
                features = (rotations[..., 1:, :, :] - data["identity"]).reshape(tuple(rotations.shape[:-3]) + (-1,))
                v_posed = v_posed + (features @ data["pose_basis"]).reshape(
                    tuple(rotations.shape[:-3]) + (num_vertices, 3)
                )
            rotations = xp.broadcast(rotations, batch, 3)
        if translation is not None:
            translation = xp.broadcast(translation, batch, 1)

        world_rotations, world_positions = fk_batch(self._skeleton, rotations, translation, offsets=offsets)
        # W_j · [I | -J_rest_j] = [R_j | p_j - R_j J_rest_j]
        shift = world_positions - (world_rotations @ rest_joints[..., None])[..., 0]
        transforms = xp.concat([world_rotations, shift[..., None]], -1)
        if v_posed.ndim > 2:
            v_posed = xp.broadcast(v_posed, batch, 2)
        vertices = lbs(transforms, v_posed, data["joint_indices"], data["skin_weights"])
        return BodyModelOutput(vertices, world_positions)

    # -- read-only data ---------------------------------------------------------------------------

    @property
    def num_vertices(self) -> int:
        """Number of vertices V."""
        return self._v_template.shape[0]

    @property
    def num_joints(self) -> int:
        """Number of joints J."""
        return len(self._parents)

    @property
    def num_betas(self) -> int:
        """Number of shape directions S (the most ``betas`` a call takes)."""
        return self._shape_basis.shape[0]

    @property
    def parents(self) -> np.ndarray:
        """``(J,)`` int32 parent of each joint (-1 for the root)."""
        return self._parents

    @property
    def skeleton(self) -> Skeleton:
        """The :class:`fastkin.Skeleton` of the template (rest joints of
        zero betas, identity rest rotations)."""
        return self._skeleton

    @property
    def faces(self) -> np.ndarray | None:
        """``(F, 3)`` int32 triangles, or None when the model has none."""
        return self._faces

    @property
    def v_template(self) -> np.ndarray:
        """``(V, 3)`` float64 template mesh."""
        return self._v_template

    @property
    def rest_joints(self) -> np.ndarray:
        """``(J, 3)`` float64 rest joint positions of the template
        (``J_regressor @ v_template``)."""
        return self._joint_template

    @property
    def J_regressor(self) -> np.ndarray:
        """``(J, V)`` float64 joint regressor."""
        return self._J_regressor

    @property
    def weights(self) -> np.ndarray:
        """``(V, J)`` float64 dense skinning weights as given."""
        return self._weights

    @property
    def influences(self) -> tuple[np.ndarray, np.ndarray]:
        """The sparse skinning influences used by :func:`fastkin.lbs`:
        ``(joint_indices (V, K) int32, weights (V, K))`` with K the largest
        number of nonzero weights of a vertex (so no weight is dropped)."""
        return self._joint_indices, self._skin_weights

    def __repr__(self) -> str:
        return f"BodyModel(V={self.num_vertices}, J={self.num_joints}, S={self.num_betas})"

    # -- private ----------------------------------------------------------------------------------

    def _checked_arguments(self, betas, pose, translation, pose_form):
        """The call's arguments checked and converted: (array ops, constants
        in the call's dtype, betas, local rotation matrices or None,
        translation, broadcast batch shape)."""
        if any(is_torch(a) for a in (betas, pose, translation)):
            import torch

            betas, pose, translation = _torch_inputs(betas, pose, translation)
            xp: Any = _TorchOps(torch)
            reference = next(a for a in (betas, pose, translation) if a is not None)
            data = self._data(reference.dtype, reference.device)
        else:
            betas, pose, translation = _numpy_inputs(betas, pose, translation)
            xp = _NumpyOps
            reference = next((a for a in (betas, pose, translation) if a is not None), None)
            data = self._data(np.dtype(np.float64) if reference is None else reference.dtype, None)
        num_joints = self.num_joints
        rotations = None
        batch_shapes = []
        if betas is not None:
            if betas.ndim < 1 or betas.shape[-1] > self.num_betas:
                raise ValueError(
                    f"betas must have shape (..., n) with n <= {self.num_betas} (the model's shape directions), "
                    f"got {tuple(betas.shape)}"
                )
            xp.check_finite(betas, "betas")
            batch_shapes.append(tuple(betas.shape[:-1]))
        if pose is not None:
            form = _pose_form(pose, num_joints, pose_form)
            xp.check_finite(pose, "pose")
            if form == "axis_angle":
                rotations = axis_angle_to_matrix(pose)
            elif form == "quaternion":
                if not xp.all_true((pose * pose).sum(-1) > 0):
                    raise ValueError("pose holds a zero quaternion, which is no rotation")
                rotations = quat_to_matrix(pose)
            else:
                rotations = pose
            batch_shapes.append(tuple(rotations.shape[:-3]))
        elif pose_form is not None and pose_form not in POSE_FORMS:
            raise ValueError(f"pose_form must be one of {POSE_FORMS} or None, got {pose_form!r}")
        if translation is not None:
            if translation.ndim < 1 or translation.shape[-1] != 3:
                raise ValueError(f"translation must have shape (..., 3), got {tuple(translation.shape)}")
            xp.check_finite(translation, "translation")
            batch_shapes.append(tuple(translation.shape[:-1]))
        try:
            batch = tuple(np.broadcast_shapes(*batch_shapes))
        except ValueError:
            names = [n for n, a in (("betas", betas), ("pose", pose), ("translation", translation)) if a is not None]
            raise ValueError(
                f"the batch shapes of {', '.join(names)} ({', '.join(map(str, batch_shapes))}) do not broadcast"
            ) from None
        return xp, data, betas, rotations, translation, batch

    def _data(self, dtype: Any, device: Any) -> dict:
        """The per-call constants in ``dtype`` (numpy dtype, device None; or
        torch dtype and device), converted once and cached."""
        key = (dtype, device)
        data = self._cache.get(key)
        if data is not None:
            return data
        parents = self._parents.astype(np.int64)
        source = {
            "v_template": self._v_template,
            "shape_basis": self._shape_basis,
            "joint_template": self._joint_template,
            "joint_shape_basis": self._joint_shape_basis,
            "pose_basis": self._pose_basis,
            "skin_weights": self._skin_weights,
            "has_parent": (parents >= 0).astype(np.float64)[:, None],
            "identity": np.eye(3),
        }
        if device is None:
            data = {k: v if v.dtype == dtype else read_only(v.astype(dtype)) for k, v in source.items()}
            data["parent_or_self"] = np.where(parents >= 0, parents, np.arange(len(parents)))
            data["joint_indices"] = self._joint_indices
        else:
            import torch

            data = {k: torch.as_tensor(np.array(v)).to(dtype=dtype, device=device) for k, v in source.items()}
            parent_or_self = np.where(parents >= 0, parents, np.arange(len(parents)))
            data["parent_or_self"] = torch.as_tensor(parent_or_self, device=device)
            data["joint_indices"] = torch.as_tensor(np.array(self._joint_indices))  # lbs moves it to the device
        self._cache[key] = data
        return data


# -- private helpers ------------------------------------------------------------------------------

_REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights")


def _read_key(archive: Any, key: str, name: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as error:
        if "pickle" not in str(error):
            raise ValueError(f"{name}: cannot read {key!r}: {error}") from None
        what = " (usually a scipy sparse matrix)" if key == "J_regressor" else ""
        raise ValueError(
            f"{name}: {key!r} is stored as a Python object{what}, which only unpickling could read. "
            f"{CONVERT_HELP}; save J_regressor dense (J_regressor.toarray())"
        ) from None


def _real_array(value: Any, name: str) -> np.ndarray:
    """A float64 copy of a real numeric array (torch tensors and scipy
    sparse matrices accepted), finite, else an error naming ``name``."""
    if is_torch(value):
        value = value.detach().cpu().numpy()
    elif not isinstance(value, np.ndarray) and hasattr(value, "toarray"):
        value = value.toarray()  # scipy sparse
    array = np.asarray(value)
    if array.dtype == object:
        raise TypeError(
            f"{name} holds Python objects, not numbers (a sparse matrix or chumpy array saved as an object?); "
            "pass a dense numeric array"
        )
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    array = np.array(array, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError(
            f"{name} must be finite; entry {tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])} is not"
        )
    return array


def _parents_from(parents: Any, kintree_table: Any) -> np.ndarray:
    """(J,) int32 parents from ``parents`` or ``kintree_table`` (they must
    agree when both are given), checked to be in topological order."""
    if parents is None and kintree_table is None:
        raise ValueError("pass parents (J,) or kintree_table (2, J) to give the joint hierarchy")
    from_table = None if kintree_table is None else _table_parents(kintree_table)
    if parents is not None:
        if is_torch(parents):
            parents = parents.detach().cpu().numpy()
        array = np.asarray(parents)
        if array.ndim != 1 or array.size == 0:
            raise ValueError(f"parents must have shape (J,) with J >= 1, got {array.shape}")
        if array.dtype.kind == "f" and np.isfinite(array).all() and (array == np.round(array)).all():
            array = array.astype(np.int64)
        if array.dtype.kind not in "iu":
            raise TypeError(f"parents must hold integers, got dtype {array.dtype}")
        array = array.astype(np.int64)
        bad = np.flatnonzero((array < -1) | (array >= len(array)))
        if bad.size:
            raise ValueError(f"parents[{int(bad[0])}] = {int(array[bad[0]])} is not a joint index or -1")
        if from_table is not None and not np.array_equal(array, from_table):
            raise ValueError("parents and kintree_table disagree; pass one of them")
        source = "parents"
    else:
        assert from_table is not None  # parents is None, so kintree_table was given
        array, source = from_table, "kintree_table"
    late = np.flatnonzero(array >= np.arange(len(array)))
    if late.size:
        j = int(late[0])
        raise ValueError(
            f"{source}: the joints are not in topological order (each parent before its children): joint {j} has "
            f"parent {int(array[j])}. Reorder the joints (and J_regressor rows, weights columns, posedirs blocks) "
            "so that parents[j] < j"
        )
    return array.astype(np.int32)


def _table_parents(kintree_table: Any) -> np.ndarray:
    if is_torch(kintree_table):
        kintree_table = kintree_table.detach().cpu().numpy()
    table = np.asarray(kintree_table)
    if table.ndim != 2 or table.shape[0] != 2 or table.shape[1] < 1:
        raise ValueError(f"kintree_table must have shape (2, J), got {table.shape}")
    if table.dtype.kind not in "iuf":
        raise TypeError(f"kintree_table must hold integers, got dtype {table.dtype}")
    values = table.astype(np.float64)  # exact for joint ids; the root marker (2**32 - 1, ...) stays huge
    if not np.isfinite(values).all() or (values != np.round(values)).any():
        raise ValueError("kintree_table must hold integers")
    num_joints = table.shape[1]
    ids = values[1]
    if sorted(ids.tolist()) != list(range(num_joints)):
        raise ValueError(
            f"kintree_table row 1 must list the joint ids 0..{num_joints - 1}, got {ids.astype(np.int64).tolist()}"
        )
    root = (values[0] == -1) | (values[0] >= np.iinfo(np.int32).max)
    bad = np.flatnonzero(~root & ((values[0] < 0) | (values[0] >= num_joints)))
    if bad.size:
        raise ValueError(
            f"kintree_table[0, {int(bad[0])}] = {values[0, bad[0]]:.0f} is not a joint id, -1 or a root marker"
        )
    parents = np.empty(num_joints, np.int64)
    parents[ids.astype(np.int64)] = np.where(root, -1, values[0]).astype(np.int64)
    return parents


def _pose_basis(posedirs: np.ndarray, num_vertices: int, num_joints: int) -> np.ndarray:
    """posedirs in any of the three layouts as (P, V*3)."""
    count = 9 * (num_joints - 1)
    flat = 3 * num_vertices
    if posedirs.shape == (num_vertices, 3, count):
        return posedirs.reshape(flat, count).T
    if posedirs.shape == (flat, count):
        return posedirs.T
    if posedirs.shape == (count, flat):
        return posedirs
    raise ValueError(
        f"posedirs must have shape (V, 3, P), (V*3, P) or (P, V*3) with V = {num_vertices} and P = 9 (J - 1) = {count}, "
        f"got {posedirs.shape}"
    )


def _sparse_weights(weights: np.ndarray, num_vertices: int, num_joints: int) -> tuple[np.ndarray, np.ndarray]:
    if weights.shape != (num_vertices, num_joints):
        raise ValueError(f"weights must have shape (V, J) = ({num_vertices}, {num_joints}), got {weights.shape}")
    if (weights < 0).any():
        v = int(np.argwhere(weights < 0)[0, 0])
        raise ValueError(f"weights must be >= 0; row {v} has a negative weight")
    sums = weights.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1.0) > 1e-3)
    if off.size:
        raise ValueError(
            f"weights rows must sum to 1 (within 1e-3); {off.size} do not, e.g. row {int(off[0])} sums to {sums[off[0]]:.6g}"
        )
    k = max(1, int((weights > 0).sum(axis=1).max()))
    return top_k_weights(weights, k)


def _faces(faces: Any, num_vertices: int) -> np.ndarray:
    if is_torch(faces):
        faces = faces.detach().cpu().numpy()
    array = np.asarray(faces)
    if array.dtype.kind not in "iu":
        raise TypeError(f"faces must hold integers, got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= num_vertices):
        raise ValueError(
            f"faces must index vertices in [0, {num_vertices}); found {int(array.min())}..{int(array.max())}"
        )
    return array.astype(np.int32)


def _offsets(rest_joints: np.ndarray, parents: np.ndarray) -> np.ndarray:
    offsets = rest_joints.copy()
    child = parents >= 0
    offsets[child] -= rest_joints[parents[child]]
    return offsets


def _pose_form(pose: Any, num_joints: int, pose_form: str | None) -> str:
    shape = tuple(pose.shape)
    fits = {
        "axis_angle": len(shape) >= 2 and shape[-2:] == (num_joints, 3),
        "quaternion": len(shape) >= 2 and shape[-2:] == (num_joints, 4),
        "matrix": len(shape) >= 3 and shape[-3:] == (num_joints, 3, 3),
    }
    wanted = {"axis_angle": "(..., J, 3)", "quaternion": "(..., J, 4)", "matrix": "(..., J, 3, 3)"}
    if pose_form is not None:
        if pose_form not in POSE_FORMS:
            raise ValueError(f"pose_form must be one of {POSE_FORMS} or None, got {pose_form!r}")
        if not fits[pose_form]:
            raise ValueError(
                f"pose as {pose_form} must have shape {wanted[pose_form].replace('J', str(num_joints))}, got {shape}"
            )
        return pose_form
    forms = [f for f in POSE_FORMS if fits[f]]
    if len(forms) == 1:
        return forms[0]
    if len(forms) > 1:
        raise ValueError(f"pose of shape {shape} could be {' or '.join(forms)}: pass pose_form")
    hint = ""
    if shape and shape[-1] == 3 * num_joints:
        hint = f" (a flat (..., {3 * num_joints}) axis-angle vector? reshape it to (..., {num_joints}, 3))"
    raise ValueError(
        f"pose must have shape (..., {num_joints}, 3) axis-angle, (..., {num_joints}, 4) xyzw quaternions or "
        f"(..., {num_joints}, 3, 3) matrices, got {shape}{hint}"
    )


def _numpy_inputs(betas: Any, pose: Any, translation: Any) -> list[np.ndarray | None]:
    """The arguments as C-contiguous float arrays of one dtype: that of the
    first float32/float64 array among them (float64 when none is)."""
    named = (("betas", betas), ("pose", pose), ("translation", translation))
    dtype = next(
        (a.dtype for _, a in named if isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64)),
        np.dtype(np.float64),
    )
    out: list[np.ndarray | None] = []
    for name, value in named:
        if value is None:
            out.append(None)
            continue
        array = np.asarray(value)
        if array.dtype.kind == "f" and array.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} must be float32 or float64, got dtype {array.dtype}")
        if isinstance(value, np.ndarray) and array.dtype.kind == "f" and array.dtype != dtype:
            other = next(n for n, a in named if isinstance(a, np.ndarray) and a.dtype == dtype)
            raise TypeError(f"{name} has dtype {array.dtype} but {other} is {dtype}: pass matching dtypes")
        if array.dtype.kind not in "iuf":
            raise TypeError(f"{name} must be a real numeric array, got dtype {array.dtype}")
        out.append(np.ascontiguousarray(array, dtype=dtype))
    return out


def _torch_inputs(betas: Any, pose: Any, translation: Any) -> list[torch.Tensor | None]:
    """The arguments as tensors of the first tensor's dtype and device
    (non-tensors converted; a tensor that differs is an error)."""
    import torch

    named = (("betas", betas), ("pose", pose), ("translation", translation))
    ref_name, reference = next((n, a) for n, a in named if is_torch(a))
    if reference.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{ref_name} must be float32 or float64, got {reference.dtype}")
    out: list[torch.Tensor | None] = []
    for name, value in named:
        if value is None:
            out.append(None)
        elif not is_torch(value):
            array = np.asarray(value)
            if array.dtype.kind not in "iuf":
                raise TypeError(f"{name} must be a real numeric array, got dtype {array.dtype}")
            out.append(torch.as_tensor(array, dtype=reference.dtype, device=reference.device))
        elif value.dtype != reference.dtype:
            raise TypeError(f"{name} has dtype {value.dtype} but {ref_name} is {reference.dtype}: pass matching dtypes")
        elif value.device != reference.device:
            raise ValueError(f"{name} is on {value.device} but {ref_name} is on {reference.device}")
        else:
            out.append(value)
    return out


class _NumpyOps:
    @staticmethod
    def broadcast(x, batch, core):
        """x with batch shape ``batch`` in front of its ``core`` trailing dims."""
        full = tuple(batch) + tuple(x.shape[x.ndim - core :])
        return x if x.shape == full else np.broadcast_to(x, full)

    @staticmethod
    def identity(data, shape):
        return np.broadcast_to(data["identity"], shape)

    @staticmethod
    def concat(xs, axis):
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def all_true(x) -> bool:
        return bool(np.all(x))

    @staticmethod
    def check_finite(x, name):
        if not np.isfinite(x).all():
            raise ValueError(f"{name} must be finite (it holds NaN or infinity)")


class _TorchOps:
    def __init__(self, torch):
        self.torch = torch

    def broadcast(self, x, batch, core):
        full = tuple(batch) + tuple(x.shape[x.dim() - core :])
        return x if tuple(x.shape) == full else x.expand(full)

    def identity(self, data, shape):
        return data["identity"].expand(shape)

    def concat(self, xs, axis):
        return self.torch.cat(xs, dim=axis)

    def all_true(self, x) -> bool:
        return self.torch.compiler.is_compiling() or bool(x.all())

    def check_finite(self, x, name):
        if not self.torch.compiler.is_compiling() and not bool(self.torch.isfinite(x).all()):
            raise ValueError(f"{name} must be finite (it holds NaN or infinity)")
