"""Motion files -> (joint positions, local rotations) pairs for learned IK."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple, Union

import numpy as np

from ..kinematics import fk_batch
from ..motion import Motion
from ..skeleton import Skeleton
from .conform import conform

__all__ = ["MotionDataset", "Take", "find_motion_files", "take_and_subject"]

PathLike = Union[str, "os.PathLike[str]"]
MOTION_SUFFIXES = (".bvh", ".amc", ".glb", ".gltf")


class Take(NamedTuple):
    """One motion clip on the dataset's skeleton layout.

    Example:
        >>> import fastkin
        >>> from fastkin.learned import MotionDataset
        >>> walk = fastkin.data.default_motion()
        >>> take = MotionDataset([fastkin.data.path("cmu_12_01_walk.bvh")], walk.skeleton, progress=False).takes[0]
        >>> take.name, take.rotations.shape
        ('cmu_12_01_walk', (131, 38, 4))
    """

    name: str  # the take, e.g. "01_01"
    subject: str  # who performed it, e.g. "01"
    source: str  # the file it came from
    skeleton: int  # index into MotionDataset.skeletons (this subject's bone lengths)
    rotations: np.ndarray  # (T, J, 4) float32 local xyzw quaternions
    root_translation: np.ndarray  # (T, 3) float32


class MotionDataset:
    """Real motion for learned IK: every frame of every BVH, ASF/AMC and
    glTF motion under ``paths`` that fits ``skeleton``'s layout (see
    :func:`fastkin.learned.conform`), subsampled to ``fps``, split by take and
    by subject (never by frame).

    Item ``i`` is ``(positions (J, 3), rotations (J, 4))`` as float32 numpy
    arrays: joint positions from :func:`fastkin.fk_batch` with the take's own
    bone lengths, and the local xyzw rotations that produce them. Training
    draws augmented batches with :func:`fastkin.learned.augmented_batch`.

    Args:
        paths: files or folders (searched recursively). An ``.amc`` file is
            paired with the ``.asf`` in its folder (or in a sibling ``asf/``
            folder) whose name starts its own, e.g. ``01_02.amc`` with
            ``01.asf``.
        skeleton: the :class:`fastkin.Skeleton` whose joints to produce.
        fps: frames per second to keep (every k-th frame, k = round(source
            fps / fps), at least 1); None keeps every frame.
        holdout_takes: take names (file stems, e.g. ``"01_01"``) to hold out.
        holdout_subjects: subject names (e.g. ``"12"``) to hold out.
        split: ``"train"`` (everything not held out), ``"holdout"`` (only
            what is held out) or ``"all"``.
        progress: print loading progress on standard error.

    Files that cannot be read or do not fit the skeleton are skipped;
    ``dataset.skipped`` lists them with the reason.

    Example:
        >>> import fastkin
        >>> from fastkin.learned import MotionDataset
        >>> walk = fastkin.data.path("cmu_12_01_walk.bvh")
        >>> data = MotionDataset([walk], fastkin.data.default_motion().skeleton, fps=30, progress=False)
        >>> len(data), data.takes[0].name, data.takes[0].subject
        (131, 'cmu_12_01_walk', 'cmu')
        >>> positions, rotations = data[0]
        >>> positions.shape, rotations.shape
        ((38, 3), (38, 4))
    """

    def __init__(
        self,
        paths: Sequence[PathLike],
        skeleton: Skeleton,
        *,
        fps: float | None = 30.0,
        holdout_takes: Iterable[str] = (),
        holdout_subjects: Iterable[str] = (),
        split: str = "all",
        progress: bool = True,
    ) -> None:
        if not isinstance(skeleton, Skeleton):
            raise TypeError(f"skeleton must be a fastkin.Skeleton, got {type(skeleton).__name__}")
        if split not in ("train", "holdout", "all"):
            raise ValueError(f"split must be 'train', 'holdout' or 'all', got {split!r}")
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be positive or None, got {fps}")
        self.skeleton = skeleton
        self.skeletons: list[Skeleton] = []
        self.takes: list[Take] = []
        self.skipped: list[tuple[str, str]] = []
        held_takes, held_subjects = set(holdout_takes), set(holdout_subjects)
        files = find_motion_files(paths)
        for number, file in enumerate(files):
            if progress and (number % 10 == 0 or number + 1 == len(files)):
                print(f"\rMotionDataset: reading {number + 1}/{len(files)} files", end="", file=sys.stderr, flush=True)
            take, subject = take_and_subject(file)
            if any(t.name == take for t in self.takes):  # e.g. CMU takes as both ASF/AMC and BVH
                self.skipped.append((str(file), f"take {take} was read already"))
                continue
            held = take in held_takes or subject in held_subjects
            if (split == "train" and held) or (split == "holdout" and not held):
                continue
            self._add_file(file, take, subject, fps)
        if progress:
            print(f"\rMotionDataset: {len(self.takes)} takes, {len(self)} frames, {len(self.skipped)} files skipped",
                  file=sys.stderr)
        if not self.takes:
            raise ValueError(f"no motion fits the skeleton under {[str(p) for p in paths]} (split={split!r}); "
                             f"skipped: {self.skipped[:3]}")
        self._starts = np.cumsum([0] + [len(t.rotations) for t in self.takes])

    def __len__(self) -> int:
        return sum(len(t.rotations) for t in self.takes)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} frames")
        index %= len(self)
        t = int(np.searchsorted(self._starts, index, side="right")) - 1
        take = self.takes[t]
        frame = index - self._starts[t]
        rotations = take.rotations[frame]
        positions = fk_batch(self.skeletons[take.skeleton], rotations, take.root_translation[frame])[1]
        return positions, rotations

    def positions(self, take: int) -> np.ndarray:
        """``(T, J, 3)`` float32 joint positions of take ``take`` (an index into ``takes``).

        Example:
            >>> import fastkin
            >>> from fastkin.learned import MotionDataset
            >>> walk = fastkin.data.default_motion()
            >>> MotionDataset([fastkin.data.path("cmu_12_01_walk.bvh")], walk.skeleton, progress=False).positions(0).shape
            (131, 38, 3)
        """
        t = self.takes[take]
        return fk_batch(self.skeletons[t.skeleton], t.rotations, t.root_translation)[1]

    def frames_per_skeleton(self) -> np.ndarray:
        """Frame count of each entry of ``skeletons`` (for sampling).

        Example:
            >>> import fastkin
            >>> from fastkin.learned import MotionDataset
            >>> walk = fastkin.data.default_motion()
            >>> MotionDataset([fastkin.data.path("cmu_12_01_walk.bvh")], walk.skeleton, progress=False).frames_per_skeleton()
            array([131])
        """
        counts = np.zeros(len(self.skeletons), dtype=np.int64)
        for t in self.takes:
            counts[t.skeleton] += len(t.rotations)
        return counts

    def _add_file(self, file: Path, take: str, subject: str, fps: float | None) -> None:
        try:
            motions = _read_motions(file)
        except (ValueError, OSError) as error:
            self.skipped.append((str(file), str(error)))
            return
        for clip, motion in motions:
            try:
                conformed = conform(motion, self.skeleton)
            except ValueError as error:
                self.skipped.append((f"{file}{clip}", str(error)))
                continue
            step = 1 if fps is None else max(1, round(motion.fps / fps))
            rotations = conformed.rotations
            root = conformed.root_translation
            if file.suffix.lower() == ".bvh" and len(rotations) > 1 and _is_rest_frame(rotations[0]):
                rotations, root = rotations[1:], root[1:]  # conversions insert the rest pose as frame 0
            self.takes.append(Take(take + clip, subject, str(file), self._skeleton_index(conformed.skeleton),
                                   np.ascontiguousarray(rotations[::step], np.float32),
                                   np.ascontiguousarray(root[::step], np.float32)))

    def _skeleton_index(self, skeleton: Skeleton) -> int:
        for i, known in enumerate(self.skeletons):
            if np.array_equal(known.offsets, skeleton.offsets):
                return i
        self.skeletons.append(skeleton)
        return len(self.skeletons) - 1


def find_motion_files(paths: Sequence[PathLike]) -> list[Path]:
    """Every motion file (``.bvh``, ``.amc``, ``.glb``, ``.gltf``) in
    ``paths`` (files, or folders searched recursively), sorted.

    Example:
        >>> import fastkin
        >>> from fastkin.learned import find_motion_files
        >>> [f.name for f in find_motion_files([fastkin.data.path("cmu_01_01.bvh").parent]) if f.suffix == ".bvh"]
        ['cmu_01_01.bvh', 'cmu_12_01_walk.bvh']
    """
    if isinstance(paths, (str, os.PathLike)):
        raise TypeError("paths must be a list of files or folders, not a single path")
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in MOTION_SUFFIXES and f.is_file())
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"paths: {str(p)!r} does not exist")
    return files


def take_and_subject(file: PathLike) -> tuple[str, str]:
    """The take (the file's stem) and subject (CMU style: the part before
    the first ``_``, else the stem) of a motion file.

    Example:
        >>> from fastkin.learned import take_and_subject
        >>> take_and_subject("subjects/01/01_02.amc"), take_and_subject("kick.amc")
        (('01_02', '01'), ('kick', 'kick'))
    """
    stem = Path(file).stem
    return stem, stem.split("_")[0]


def _read_motions(file: Path) -> list[tuple[str, Motion]]:
    from ..io import load_asf_amc, load_bvh, load_gltf

    suffix = file.suffix.lower()
    if suffix == ".bvh":
        return [("", load_bvh(file))]
    if suffix == ".amc":
        return [("", load_asf_amc(_skeleton_file_of(file), file))]
    clips = []
    for character in load_gltf(file):
        clips += [(f":{name}", motion) for name, motion in character.animations.items()]
    return clips


def _skeleton_file_of(amc: Path) -> Path:
    """The ``.asf`` an ``.amc`` belongs to: the longest ASF stem that starts
    the AMC's stem, in its folder or a sibling ``asf/`` folder (there as
    ``<folder name>.asf``); else the only ASF in its folder."""
    here = sorted(amc.parent.glob("*.asf"))
    sibling = amc.parent.parent.parent / "asf" / f"{amc.parent.name}.asf"
    if sibling.is_file():
        return sibling
    stem = amc.stem.lower()
    starts = [a for a in here if stem.startswith(re.sub(r"[^a-z0-9]+$", "", a.stem.lower()))]
    if starts:
        return max(starts, key=lambda a: len(a.stem))
    if len(here) == 1:
        return here[0]
    raise ValueError(f"no .asf skeleton found for {amc.name} (looked in {amc.parent})")


def _is_rest_frame(rotations: np.ndarray) -> bool:
    """True when every non-root rotation of a frame is the identity."""
    return bool(np.all(np.abs(np.abs(rotations[1:, 3]) - 1.0) < 1e-6))
