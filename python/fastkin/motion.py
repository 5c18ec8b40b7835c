"""Motion: a skeleton and per-frame local rotations, as whole arrays."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._backend import read_only
from .kinematics import fk_batch
from .rotations import quat_slerp
from .skeleton import Skeleton

__all__ = ["Motion"]


class Motion:
    """An animation of one skeleton: ``T`` frames of local rotations.

    Args:
        skeleton: the :class:`fastkin.Skeleton`.
        rotations: ``(T, J, 4)`` xyzw local rotations (stored float64, unit).
        root_translation: ``(T, 3)`` added to each root's offset (zeros when
            omitted), in the skeleton's units.
        fps: frames per second (> 0).
        joint_translations: optional ``(T, J, 3)`` per-frame local
            translations for files that animate them; they replace the
            skeleton's offsets frame by frame (``fk_batch(offsets=...)``).

    Arrays are whole-motion arrays (no per-frame objects); slicing returns a
    new Motion sharing nothing mutable.

    Example:
        >>> import numpy as np, fastkin
        >>> sk = fastkin.Skeleton([-1, 0], [[0, 0, 0], [0, 1, 0]])
        >>> m = fastkin.Motion(sk, np.tile([0.0, 0, 0, 1], (10, 2, 1)), fps=30)
        >>> len(m), m.duration, m.positions().shape
        (10, 0.3333333333333333, (10, 2, 3))
    """

    __slots__ = ("_skeleton", "_rotations", "_root_translation", "_fps", "_joint_translations")

    def __init__(
        self,
        skeleton: Skeleton,
        rotations: Any,
        root_translation: Any | None = None,
        fps: float = 30.0,
        joint_translations: Any | None = None,
    ) -> None:
        if not isinstance(skeleton, Skeleton):
            raise TypeError(f"skeleton must be a fastkin.Skeleton, got {type(skeleton).__name__}")
        num_joints = skeleton.num_joints
        rotations = _frames(rotations, "rotations", (num_joints, 4))
        num_frames = rotations.shape[0]
        norms = np.linalg.norm(rotations, axis=-1)
        if np.any(norms < 1e-12):
            raise ValueError("rotations holds a zero quaternion")
        if root_translation is None:
            root_translation = np.zeros((num_frames, 3))
        root_translation = _frames(root_translation, "root_translation", (3,), num_frames)
        if joint_translations is not None:
            joint_translations = _frames(joint_translations, "joint_translations", (num_joints, 3), num_frames)
        if not (isinstance(fps, (int, float, np.floating, np.integer)) and np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        self._skeleton = skeleton
        self._rotations = read_only(rotations / norms[..., None])
        self._root_translation = read_only(root_translation)
        self._fps = float(fps)
        self._joint_translations = None if joint_translations is None else read_only(joint_translations)

    @property
    def skeleton(self) -> Skeleton:
        """The animated skeleton."""
        return self._skeleton

    @property
    def rotations(self) -> np.ndarray:
        """``(T, J, 4)`` unit xyzw local rotations (read-only)."""
        return self._rotations

    @property
    def root_translation(self) -> np.ndarray:
        """``(T, 3)`` root translation added to the root offsets (read-only)."""
        return self._root_translation

    @property
    def joint_translations(self) -> np.ndarray | None:
        """``(T, J, 3)`` animated local translations, or None."""
        return self._joint_translations

    @property
    def fps(self) -> float:
        """Frames per second."""
        return self._fps

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return self._rotations.shape[0]

    @property
    def duration(self) -> float:
        """Length in seconds, ``T / fps``."""
        return self.num_frames / self._fps

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, frames: slice | int | Sequence[int] | np.ndarray) -> "Motion":
        """Frames by slice, index or index array, as a new Motion.

        Example:
            >>> sk = Skeleton([-1], [[0, 0, 0]])
            >>> len(Motion(sk, np.tile([0.0, 0, 0, 1], (10, 1, 1)))[2:8:2])
            3
        """
        if isinstance(frames, (int, np.integer)):
            frames = slice(int(frames), int(frames) + 1 if frames != -1 else None)
        step = frames.step if isinstance(frames, slice) and frames.step else 1
        joints = None if self._joint_translations is None else self._joint_translations[frames]
        return Motion(
            self._skeleton, self._rotations[frames], self._root_translation[frames], self._fps / abs(step), joints
        )

    def positions(self) -> np.ndarray:
        """World joint positions ``(T, J, 3)`` through :func:`fastkin.fk_batch`.

        Example:
            >>> sk = Skeleton([-1, 0], [[0, 0, 0], [0, 1, 0]])
            >>> Motion(sk, np.tile([0.0, 0, 0, 1], (2, 2, 1)), [[1, 0, 0], [2, 0, 0]]).positions()[:, 1]
            array([[1., 1., 0.],
                   [2., 1., 0.]])
        """
        return fk_batch(self._skeleton, self._rotations, self._root_translation, offsets=self._joint_translations)[1]

    def resample(self, fps: float) -> "Motion":
        """The motion at another frame rate over the same time span: rotations
        by slerp, translations linearly, between neighbouring frames.

        Example:
            >>> sk = Skeleton([-1], [[0, 0, 0]])
            >>> len(Motion(sk, np.tile([0.0, 0, 0, 1], (121, 1, 1)), fps=120).resample(30))
            31
        """
        if not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        last = (self.num_frames - 1) / self._fps
        times = np.arange(int(np.floor(last * fps + 1e-9)) + 1) / fps
        position = np.minimum(times * self._fps, self.num_frames - 1)
        lower = np.floor(position).astype(np.int64)
        upper = np.minimum(lower + 1, self.num_frames - 1)
        weight = position - lower
        rotations = quat_slerp(
            self._rotations[lower],
            self._rotations[upper],
            np.broadcast_to(weight[:, None], lower.shape + (self._skeleton.num_joints,)),
        )
        lerp = lambda a: a[lower] + (a[upper] - a[lower]) * weight.reshape((-1,) + (1,) * (a.ndim - 1))  # noqa: E731
        joints = None if self._joint_translations is None else lerp(self._joint_translations)
        return Motion(self._skeleton, rotations, lerp(self._root_translation), fps, joints)

    @staticmethod
    def concatenate(motions: Sequence["Motion"]) -> "Motion":
        """Motions of the same skeleton and frame rate, one after another.

        Example:
            >>> sk = Skeleton([-1], [[0, 0, 0]])
            >>> m = Motion(sk, np.tile([0.0, 0, 0, 1], (4, 1, 1)))
            >>> len(Motion.concatenate([m, m[:2]]))
            6
        """
        motions = list(motions)
        if not motions:
            raise ValueError("motions must hold at least one Motion")
        first = motions[0]
        for m in motions[1:]:
            if m.skeleton != first.skeleton:
                raise ValueError("motions must share one skeleton")
            if m.fps != first.fps:
                raise ValueError(f"motions must share one frame rate; got {first.fps} and {m.fps} (resample first)")
        animated = any(m.joint_translations is not None for m in motions)
        joints = None
        if animated:
            joints = np.concatenate(
                [
                    m.joint_translations
                    if m.joint_translations is not None
                    else np.broadcast_to(m.skeleton.offsets, (len(m),) + m.skeleton.offsets.shape)
                    for m in motions
                ]
            )
        return Motion(
            first.skeleton,
            np.concatenate([m.rotations for m in motions]),
            np.concatenate([m.root_translation for m in motions]),
            first.fps,
            joints,
        )

    def __repr__(self) -> str:
        return f"Motion({self.num_frames} frames at {self._fps:g} fps, {self._skeleton.num_joints} joints)"


def _frames(values: Any, name: str, trailing: tuple[int, ...], num_frames: int | None = None) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if (
        array.ndim != 1 + len(trailing)
        or array.shape[1:] != trailing
        or (num_frames is not None and array.shape[0] != num_frames)
    ):
        want = ("T" if num_frames is None else str(num_frames),) + tuple(str(d) for d in trailing)
        raise ValueError(f"{name} must have shape ({', '.join(want)}), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return array
