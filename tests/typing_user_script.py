"""A user's script that tests/test_typing.py type-checks with mypy: fastkin
must be found as a typed package (py.typed, annotations, the compiled
module's generated stub) and its public API must accept these calls. Not a
test module itself (no test_ prefix), and never run."""

from __future__ import annotations

import numpy as np

import fastkin
from fastkin import rotations

arm = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [1, 0, 0], [1, 0, 0]], names=["shoulder", "elbow", "wrist"])
num_joints: int = arm.num_joints
children: tuple[int, ...] = arm.children("elbow")
pose: np.ndarray = rotations.axis_angle_to_quat(np.zeros((10, 3, 3)))
world_rotations, world_positions = fastkin.fk_batch(arm, pose)
frames: np.ndarray = fastkin.bone_frames(arm)
bone_rotations = fastkin.local_to_bone_world(arm, pose)
fastkin.set_num_threads(fastkin.get_num_threads())
info: dict = fastkin.build_info()
version: str = fastkin.__version__
walk: fastkin.Motion = fastkin.data.default_motion()
positions: np.ndarray = walk.positions()
result: fastkin.ik.IKResult = fastkin.ik.solve(walk.skeleton, positions[:2])
fox: fastkin.io.Character = fastkin.data.default_character()
