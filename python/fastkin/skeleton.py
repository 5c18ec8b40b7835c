"""The Skeleton: an immutable, validated description of a joint hierarchy."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from . import _core
from ._backend import read_only
from .rotations import quat_to_matrix

__all__ = ["Skeleton"]


class Skeleton:
    """A joint hierarchy in topological order (``parents[j] < j``; roots are
    -1; several roots form a forest).

    Args:
        parents: ``(J,)`` integers, the parent of each joint or -1.
        offsets: ``(J, 3)`` rest local translation of each joint in its
            parent's frame (for a root: its rest position), in the source's
            units (never rescaled).
        rest_rotations: ``(J, 4)`` xyzw rest local rotations (BVH/glTF joint
            orients); identity when omitted. Stored normalised.
        names: ``J`` unique joint names; ``"joint_<j>"`` when omitted.

    A Skeleton is immutable and validated once, so it is cheap to pass to
    every call; its arrays are read-only views.

    Example:
        >>> import fastkin
        >>> arm = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [1, 0, 0], [1, 0, 0]],
        ...                        names=["shoulder", "elbow", "wrist"])
        >>> arm.num_joints, arm.children(0), arm.index("wrist")
        (3, (1,), 2)
    """

    __slots__ = ("_parents", "_offsets", "_rest_rotations", "_names", "_index", "_torch_cache", "_kernel_data")

    def __init__(
        self,
        parents: Any,
        offsets: Any,
        rest_rotations: Any | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        parents = _validated_parents(parents)
        num_joints = len(parents)
        offsets = _validated_floats(offsets, "offsets", (num_joints, 3))
        if rest_rotations is None:
            rest = np.zeros((num_joints, 4))
            rest[:, 3] = 1.0
        else:
            rest = _validated_floats(rest_rotations, "rest_rotations", (num_joints, 4))
            norms = np.linalg.norm(rest, axis=1)
            if np.any(norms < 1e-12):
                raise ValueError(f"rest_rotations[{int(np.argmin(norms))}] is a zero quaternion")
            rest = rest / norms[:, None]
        if names is None:
            names = [f"joint_{j}" for j in range(num_joints)]
        names = tuple(names)
        if len(names) != num_joints or not all(isinstance(n, str) for n in names):
            raise ValueError(f"names must be {num_joints} strings, one per joint")
        if len(set(names)) != num_joints:
            seen: set[str] = set()
            duplicate = next(n for n in names if n in seen or seen.add(n))  # type: ignore[func-returns-value]
            raise ValueError(f"names must be unique; {duplicate!r} appears twice")
        self._parents = read_only(parents)
        self._offsets = read_only(offsets)
        self._rest_rotations = read_only(rest)
        self._names = names
        self._index = {n: j for j, n in enumerate(names)}
        self._torch_cache: dict = {}
        self._kernel_data = _core.SkeletonData(self._parents, self._offsets, quat_to_matrix(self._rest_rotations))

    # -- read-only data ---------------------------------------------------------------------------

    @property
    def parents(self) -> np.ndarray:
        """``(J,)`` int32 parent index of each joint (-1 for roots)."""
        return self._parents

    @property
    def offsets(self) -> np.ndarray:
        """``(J, 3)`` float64 rest local translations."""
        return self._offsets

    @property
    def rest_rotations(self) -> np.ndarray:
        """``(J, 4)`` float64 unit xyzw rest local rotations."""
        return self._rest_rotations

    @property
    def names(self) -> tuple[str, ...]:
        """Joint names, in joint order."""
        return self._names

    @property
    def num_joints(self) -> int:
        """Number of joints J."""
        return len(self._names)

    @property
    def roots(self) -> tuple[int, ...]:
        """Indices of the root joints (one per tree of the forest)."""
        return tuple(int(j) for j in np.flatnonzero(self._parents < 0))

    # -- helpers ----------------------------------------------------------------------------------

    def children(self, joint: int | str) -> tuple[int, ...]:
        """Indices of the direct children of ``joint`` (an index or a name).

        Example:
            >>> Skeleton([-1, 0, 0], np.zeros((3, 3))).children(0)
            (1, 2)
        """
        j = self._joint_index(joint, "joint")
        return tuple(int(c) for c in np.flatnonzero(self._parents == j))

    def index(self, name: str) -> int:
        """Index of the joint called ``name``.

        Example:
            >>> Skeleton([-1, 0], np.zeros((2, 3)), names=["hips", "spine"]).index("spine")
            1
        """
        try:
            return self._index[name]
        except KeyError:
            raise ValueError(f"no joint named {name!r}; joints are {list(self._names)}") from None

    def rest_pose(self) -> np.ndarray:
        """The rest pose as local rotations ``(J, 4)`` xyzw (a copy of
        ``rest_rotations``), ready for :func:`fastkin.fk_batch`.

        Example:
            >>> Skeleton([-1], np.zeros((1, 3))).rest_pose()
            array([[0., 0., 0., 1.]])
        """
        return self._rest_rotations.copy()

    def subset(self, joints: Iterable[int | str]) -> "Skeleton":
        """A skeleton of only ``joints`` (indices or names), in their
        original order. A kept joint's parent becomes its nearest kept
        ancestor, and its offset and rest rotation are re-expressed in that
        ancestor's rest frame, so rest-pose world positions are unchanged.

        Example:
            >>> arm = Skeleton([-1, 0, 1], [[0, 0, 0], [1, 0, 0], [1, 0, 0]])
            >>> arm.subset([0, 2]).offsets
            array([[0., 0., 0.],
                   [2., 0., 0.]])
        """
        keep = sorted({self._joint_index(j, "joints") for j in joints})
        if not keep:
            raise ValueError("joints must name at least one joint")
        from .kinematics import fk_batch  # the subset's offsets come from rest-pose fk

        world_rot, world_pos = fk_batch(self, self._rest_rotations)
        new_index = {old: new for new, old in enumerate(keep)}
        parents, offsets, rests = [], [], []
        for old in keep:
            ancestor = int(self._parents[old])
            while ancestor >= 0 and ancestor not in new_index:
                ancestor = int(self._parents[ancestor])
            if ancestor < 0:
                parents.append(-1)
                offsets.append(world_pos[old])
                rests.append(world_rot[old])
            else:
                frame = world_rot[ancestor]
                parents.append(new_index[ancestor])
                offsets.append(frame.T @ (world_pos[old] - world_pos[ancestor]))
                rests.append(frame.T @ world_rot[old])
        from .rotations import matrix_to_quat

        return Skeleton(parents, np.array(offsets), matrix_to_quat(np.array(rests)), [self._names[j] for j in keep])

    def __repr__(self) -> str:
        roots = ", ".join(self._names[r] for r in self.roots)
        return f"Skeleton({self.num_joints} joints, roots: {roots})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Skeleton):
            return NotImplemented
        return (
            self._names == other._names
            and np.array_equal(self._parents, other._parents)
            and np.array_equal(self._offsets, other._offsets)
            and np.array_equal(self._rest_rotations, other._rest_rotations)
        )

    __hash__ = None  # type: ignore[assignment]

    def _joint_index(self, joint: int | str, argument: str) -> int:
        if isinstance(joint, str):
            return self.index(joint)
        if isinstance(joint, (int, np.integer)) and not isinstance(joint, bool):
            if 0 <= joint < self.num_joints:
                return int(joint)
            raise ValueError(f"{argument}: joint index {joint} is out of range for {self.num_joints} joints")
        raise TypeError(f"{argument}: a joint is an int index or a str name, got {type(joint).__name__}")


def _validated_parents(parents: Any) -> np.ndarray:
    array = np.asarray(parents)
    if array.ndim != 1:
        raise ValueError(f"parents must be a 1-D array of joint indices, got shape {array.shape}")
    if array.size == 0:
        raise ValueError("parents must list at least one joint")
    if array.dtype.kind not in "iu":
        if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            array = array.astype(np.int64)  # e.g. parents read from a float table
        else:
            raise TypeError(f"parents must hold integers, got dtype {array.dtype}")
    bad = np.flatnonzero((array < -1) | (array >= np.arange(len(array))))
    if bad.size:
        j = int(bad[0])
        raise ValueError(
            f"parents must be in topological order with roots -1 (parents[j] < j, which also rules out "
            f"cycles); parents[{j}] = {int(array[j])}"
        )
    return array.astype(np.int32)


def _validated_floats(values: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite; row {int(np.argwhere(~np.isfinite(array))[0, 0])} is not")
    return array
