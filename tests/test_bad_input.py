"""Bad input to the public functions and the raw bindings: each case runs in its own
subprocess, so a crash (segfault, abort) fails the test instead of the run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SETUP = """
import numpy as np, fastkin
from fastkin import _core
sk = fastkin.Skeleton([-1, 0, 1, 1], np.ones((4, 3)))
q = np.tile(np.array([0.0, 0.0, 0.0, 1.0]), (5, 4, 1))
T = np.tile(np.eye(3, 4), (5, 4, 1, 1))  # skinning: 5 poses, 4 joints, 6 vertices, 2 influences
V = np.zeros((6, 3)); J = np.zeros((6, 2), np.int32); W = np.full((6, 2), 0.5)
b = np.tile(np.eye(3), (5, 4, 1, 1))  # bone-aligned world rotations
c = np.tile(np.eye(3), (4, 1, 1))  # per-joint bone-frame constants
two = fastkin.ik.two_bone; fab = fastkin.ik.fabrik  # IK: a 3-bone chain, 5 frames, 2 end effectors
r0, m0, e0, t0 = np.zeros((5, 3)), np.tile([1.0, 0, 0], (5, 1)), np.tile([2.0, 0, 0], (5, 1)), np.ones((5, 3))
P = np.tile(np.arange(12.0).reshape(4, 3), (5, 1, 1)); G = np.ones((5, 2, 3)); G1 = np.ones((5, 1, 3)); par = [-1, 0, 1, 1]
"""

# (code, expected exception type, text the message must contain); one case a line, as a table
# fmt: off
CASES = {
    "wrong_joint_count": ("fastkin.fk_batch(sk, np.zeros((5, 3, 4)))", "ValueError", "rotations must have shape (..., 4, 4)"),
    "wrong_trailing_shape": ("fastkin.fk_batch(sk, np.zeros((5, 4, 3)))", "ValueError", "rotations must have shape"),
    "scalar_rotations": ("fastkin.fk_batch(sk, np.float64(1.0))", "ValueError", "rotations"),
    "integer_rotations": ("fastkin.fk_batch(sk, np.zeros((5, 4, 4), dtype=np.int64))", "TypeError", "rotations must be float32 or float64"),
    "float16_rotations": ("fastkin.fk_batch(sk, q.astype(np.float16))", "TypeError", "rotations must be float32 or float64"),
    "complex_rotations": ("fastkin.fk_batch(sk, q.astype(complex))", "TypeError", "rotations"),
    "dtype_mismatch_root": ("fastkin.fk_batch(sk, q.astype(np.float32), np.zeros((5, 3)))", "TypeError", "root_translation has dtype float64"),
    "dtype_mismatch_offsets": ("fastkin.fk_batch(sk, q.astype(np.float32), offsets=np.ones((4, 3)))", "TypeError", "offsets has dtype float64"),
    "root_wrong_shape": ("fastkin.fk_batch(sk, q, np.zeros((4, 3)))", "ValueError", "root_translation must have shape (5, 3)"),
    "offsets_wrong_shape": ("fastkin.fk_batch(sk, q, offsets=np.zeros((3, 3)))", "ValueError", "offsets must have shape"),
    "offsets_wrong_batch": ("fastkin.fk_batch(sk, q, offsets=np.zeros((2, 4, 3)))", "ValueError", "offsets must have shape (5, 4, 3)"),
    "nan_rotation": ("q[2, 1, 0] = np.nan; fastkin.fk_batch(sk, q)", "ValueError", "rotations must be finite"),
    "inf_root": ("fastkin.fk_batch(sk, q, np.full((5, 3), np.inf))", "ValueError", "root_translation must be finite"),
    "nan_offsets": ("fastkin.fk_batch(sk, q, offsets=np.full((4, 3), np.nan))", "ValueError", "offsets must be finite"),
    "zero_quaternion": ("q[1, 2] = 0; fastkin.fk_batch(sk, q)", "ValueError", "zero quaternion"),
    "not_a_skeleton": ("fastkin.fk_batch([-1, 0], q)", "TypeError", "skeleton must be a fastkin.Skeleton"),
    "out_not_a_pair": ("fastkin.fk_batch(sk, q, out=np.empty((5, 4, 3, 3)))", "TypeError", "out must be a pair (world_rotations, world_positions)"),
    "out_not_an_array": ("fastkin.fk_batch(sk, q, out=(np.empty((5, 4, 3, 3)), [0.0]))", "TypeError", "out[1] must be a numpy array"),
    "out_wrong_shape": ("fastkin.fk_batch(sk, q, out=(np.empty((5, 4, 3, 3)), np.empty((5, 3, 3))))", "ValueError", "world_positions must have shape (5, 4, 3)"),
    "out_dtype_mismatch": ("fastkin.fk_batch(sk, q, out=(np.empty((5, 4, 3, 3), np.float32), np.empty((5, 4, 3))))", "TypeError", "out[0] has dtype float32 but rotations are float64"),
    "out_strided": ("fastkin.fk_batch(sk, q, out=(np.empty((5, 4, 3, 6))[..., ::2], np.empty((5, 4, 3))))", "ValueError", "out[0] must be a C-contiguous, writeable array"),
    "out_read_only": ("r = np.empty((5, 4, 3, 3)); r.flags.writeable = False; fastkin.fk_batch(sk, q, out=(r, np.empty((5, 4, 3))))", "ValueError", "out[0] must be a C-contiguous, writeable array"),
    "out_aliases_input": ("b = np.zeros(400); b[:80] = q.ravel(); fastkin.fk_batch(sk, b[:80].reshape(5, 4, 4), out=(b[:180].reshape(5, 4, 3, 3), np.empty((5, 4, 3))))", "ValueError", "out[0] overlaps an input or the other output"),
    "out_outputs_overlap": ("b = np.empty(400); fastkin.fk_batch(sk, q, out=(b[:180].reshape(5, 4, 3, 3), b[120:180].reshape(5, 4, 3)))", "ValueError", "out[1] overlaps an input or the other output"),
    "out_with_torch": ("import torch; fastkin.fk_batch(sk, torch.from_numpy(q), out=(np.empty((5, 4, 3, 3)), np.empty((5, 4, 3))))", "TypeError", "out= takes numpy arrays"),
    "cyclic_parents": ("fastkin.Skeleton([-1, 2, 1], np.zeros((3, 3)))", "ValueError", "topological"),
    "raw_bad_parents": ("_core.fk_forward(np.array([-1, 5, 0, 0], np.int32), q, None, np.ones((4, 3)), np.empty((5, 4, 3, 3)), np.empty((5, 4, 3)))", "ValueError", "parents[1] = 5"),
    "raw_parents_dtype": ("_core.fk_forward(np.array([-1, 0, 1, 1]), q, None, np.ones((4, 3)), np.empty((5, 4, 3, 3)), np.empty((5, 4, 3)))", "TypeError", "parents must be a 1-D int32"),
    "raw_output_too_small": ("_core.fk_forward(sk.parents, q, None, np.ones((4, 3)), np.empty((4, 4, 3, 3)), np.empty((5, 4, 3)))", "ValueError", "world_rotations must have shape (5, 4, 3, 3)"),
    "raw_output_strided": ("_core.fk_forward(sk.parents, q, None, np.ones((4, 3)), np.empty((5, 4, 3, 6))[..., ::2], np.empty((5, 4, 3)))", "ValueError", "world_rotations must be C-contiguous"),
    "raw_output_dtype": ("_core.fk_forward(sk.parents, q, None, np.ones((4, 3)), np.empty((5, 4, 3, 3), np.float32), np.empty((5, 4, 3)))", "TypeError", "world_rotations must have dtype float64"),
    "raw_read_only_output": ("o = np.empty((5, 4, 3)); o.setflags(write=False); _core.fk_forward(sk.parents, q, None, np.ones((4, 3)), np.empty((5, 4, 3, 3)), o)", "TypeError", "fk_forward"),
    "lbs_index_out_of_range": ("J[4, 1] = 4; fastkin.lbs(T, V, J, W)", "ValueError", "joint_indices[4, 1] = 4 is not a joint index in [0, 4)"),
    "lbs_negative_index": ("J[2, 0] = -1; fastkin.lbs(T, V, J, W)", "ValueError", "joint_indices[2, 0] = -1"),
    "lbs_huge_int64_index": ("fastkin.lbs(T, V, J.astype(np.int64) + 2**40, W)", "ValueError", "is not a joint index"),
    "lbs_float_indices": ("fastkin.lbs(T, V, J.astype(float), W)", "TypeError", "joint_indices must be an integer array"),
    "lbs_negative_weight": ("W[3, 1] = -0.1; fastkin.lbs(T, V, J, W)", "ValueError", "weights[3, 1] must be finite and >= 0"),
    "lbs_nan_weight": ("W[0, 0] = np.nan; fastkin.lbs(T, V, J, W)", "ValueError", "weights[0, 0] must be finite and >= 0"),
    "lbs_zero_weights": ("W[5] = 0; fastkin.lbs(T, V, J, W)", "ValueError", "weights[5] are all zero"),
    "dqs_zero_weights": ("W[5] = 0; fastkin.dqs(T, V, J, W)", "ValueError", "weights[5] are all zero"),
    "lbs_mismatched_vertices": ("fastkin.lbs(T, np.zeros((7, 3)), J, W)", "ValueError", "vertices must have shape (6, 3)"),
    "lbs_wrong_k": ("fastkin.lbs(T, V, J, np.full((6, 3), 1 / 3))", "ValueError", "weights must have shape (6, 2)"),
    "lbs_zero_k": ("fastkin.lbs(T, V, np.zeros((6, 0), np.int32), np.zeros((6, 0)))", "ValueError", "at least one influence"),
    "lbs_batched_vertices_mismatch": ("fastkin.lbs(T, np.zeros((4, 6, 3)), J, W)", "ValueError", "vertices must have shape"),
    "lbs_wrong_transform_shape": ("fastkin.lbs(T[..., :3], V, J, W)", "ValueError", "transforms must have shape (..., J, 3, 4)"),
    "lbs_nan_transform": ("T[1, 0, 0, 3] = np.nan; fastkin.lbs(T, V, J, W)", "ValueError", "transforms must be finite"),
    "lbs_inf_vertex": ("V[1, 1] = np.inf; fastkin.lbs(T, V, J, W)", "ValueError", "vertices must be finite"),
    "lbs_dtype_mismatch": ("fastkin.lbs(T.astype(np.float32), V, J, W)", "TypeError", "vertices has dtype float64"),
    "dqs_not_rigid": ("T[2, 3] *= 2; fastkin.dqs(T, V, J, W)", "ValueError", "transforms[2][3] is not rigid"),
    "raw_skin_backward_takes_duals": ("_core.skin_backward('dual_quaternion', T, V, J, W, True, np.zeros((5, 6, 3)), np.empty_like(T), None, None)", "ValueError", "(..., J, 8) dual quaternions"),
    "raw_skin_bad_method": ("_core.skin_forward('cubic', T, V, J, W, True, np.empty((5, 6, 3)))", "ValueError", "method must be"),
    "top_k_too_many": ("fastkin.top_k_weights(np.ones((3, 4)), k=5)", "ValueError", "k must be an int in [1, 4]"),
    "skinning_transforms_bad_bind": ("fastkin.skinning_transforms(sk, *fastkin.fk_batch(sk, q), inverse_bind=np.zeros((3, 4, 4)))", "ValueError", "inverse_bind must have shape (4, 4, 4)"),
    # bone frames
    "bone_wrong_joint_count": ("fastkin.bone_world_to_local(sk, np.zeros((5, 3, 3, 3)))", "ValueError", "bone_rotations must have shape (..., 4, 3, 3), got (5, 3, 3, 3)"),
    "bone_quaternions": ("fastkin.bone_world_to_local(sk, q)", "ValueError", "bone_rotations must have shape (..., 4, 3, 3)"),
    "bone_scalar": ("fastkin.bone_world_to_local(sk, np.float64(1.0))", "ValueError", "bone_rotations must have shape"),
    "bone_integer": ("fastkin.bone_world_to_local(sk, b.astype(np.int64))", "TypeError", "bone_rotations must be float32 or float64"),
    "bone_float16": ("fastkin.bone_world_to_local(sk, b.astype(np.float16))", "TypeError", "bone_rotations must be float32 or float64"),
    "bone_nan": ("b[1, 2, 0, 0] = np.nan; fastkin.bone_world_to_local(sk, b)", "ValueError", "bone_rotations must be finite"),
    "bone_inf": ("b[4, 3, 2, 1] = -np.inf; fastkin.bone_world_to_local(sk, b.astype(np.float32))", "ValueError", "bone_rotations must be finite"),
    "bone_overflow": ("fastkin.bone_world_to_local(sk, b.astype(np.float32) * 1e30)", "ValueError", "bone_world_to_local overflowed"),
    "bone_not_a_skeleton": ("fastkin.bone_world_to_local([-1, 0], b)", "TypeError", "skeleton must be a fastkin.Skeleton"),
    "local_to_bone_nan": ("q[0, 1, 2] = np.nan; fastkin.local_to_bone_world(sk, q)", "ValueError", "rotations must be finite"),
    "local_to_bone_wrong_shape": ("fastkin.local_to_bone_world(sk, np.zeros((5, 3, 4)))", "ValueError", "rotations must have shape (..., 4, 4)"),
    "local_to_bone_not_a_skeleton": ("fastkin.local_to_bone_world(None, q)", "TypeError", "skeleton must be a fastkin.Skeleton"),
    "bone_frames_not_a_skeleton": ("fastkin.bone_frames('skeleton')", "TypeError", "skeleton must be a fastkin.Skeleton"),
    "frames_wrong_shape": ("fastkin.local_to_bone_world(sk, q, frames=np.eye(3))", "ValueError", "frames must have shape (4, 3, 3), got (3, 3)"),
    "frames_not_rotations": ("fastkin.bone_world_to_local(sk, b, frames=2 * c)", "ValueError", "frames[0] is not a rotation matrix"),
    "frames_reflection": ("c[2, 0, 0] = -1; fastkin.bone_world_to_local(sk, b, frames=c)", "ValueError", "frames[2] is not a rotation matrix"),
    "frames_nan": ("c[1, 1, 1] = np.nan; fastkin.local_to_bone_world(sk, q, frames=c)", "ValueError", "frames must be finite"),
    "frames_strings": ("fastkin.local_to_bone_world(sk, q, frames=np.full((4, 3, 3), 'x'))", "TypeError", "frames must be a real numeric array"),
    "primary_child_not_a_child": ("fastkin.bone_frames(sk, primary_child={0: 2})", "ValueError", "primary_child: joint 2 (joint_2) is not a child of joint 0"),
    "primary_child_none": ("fastkin.bone_frames(sk, primary_child=[None, -1, -1, -1])", "TypeError", "primary_child: a joint is an int index or a str name"),
    "leaf_axis_wrong_shape": ("fastkin.bone_frames(sk, leaf_axis=np.ones((3, 3)))", "ValueError", "leaf_axis must have shape (3,) or (4, 3)"),
    "raw_bone_joint_mismatch": ("_core.bone_world_to_local(sk.parents, b, c[:3], np.empty_like(b))", "ValueError", "parents has 4 joints but constants has 3"),
    "raw_bone_constants_dtype": ("_core.bone_world_to_local(sk.parents, b.astype(np.float32), c, np.empty_like(b, np.float32))", "TypeError", "constants must have dtype float32"),
    "raw_bone_constants_ndim": ("_core.bone_right_multiply(b, c[0], False, np.empty_like(b))", "ValueError", "constants must have shape (J, 3, 3), got (3, 3)"),
    "raw_bone_output_shape": ("_core.bone_world_to_local(sk.parents, b, c, np.empty((4, 4, 3, 3)))", "ValueError", "local_rotations must have shape (5, 4, 3, 3)"),
    "raw_bone_output_strided": ("_core.bone_right_multiply(b, c, True, np.empty((5, 4, 3, 6))[..., ::2])", "ValueError", "out must be C-contiguous"),
    "raw_bone_read_only_output": ("o = np.empty_like(b); o.setflags(write=False); _core.bone_right_multiply(b, c, False, o)", "TypeError", "bone_right_multiply"),
    "raw_bone_matrices_dtype": ("_core.bone_right_multiply(b.astype(np.int32), c, False, np.empty_like(b))", "TypeError", "matrices must have dtype float32 or float64"),
    "raw_bone_grad_shape": ("_core.bone_world_to_local_backward(sk.parents, b, c, b[:2], np.empty_like(b))", "ValueError", "grad_local_rotations must have shape (5, 4, 3, 3)"),
    "raw_bone_bad_parents": ("_core.bone_world_to_local(np.array([-1, 3, 0, 0], np.int32), b, c, np.empty_like(b))", "ValueError", "parents[1] = 3"),
    "ik_nan_target": ("p = np.zeros((4, 3)); p[2, 1] = np.nan; fastkin.ik.solve(sk, p)", "ValueError", "targets must be finite"),
    "ik_wrong_target_shape": ("fastkin.ik.solve(sk, np.zeros((3, 3)))", "ValueError", "targets must have shape (..., 4, 3)"),
    "ik_joint_out_of_range": ("fastkin.ik.solve(sk, np.zeros((1, 3)), joints=[4])", "ValueError", "joints[0] = 4 is not a joint index in [0, 4)"),
    "ik_unknown_joint_name": ("fastkin.ik.solve(sk, np.zeros((1, 3)), joints=['wrist'])", "ValueError", "no joint named 'wrist'"),
    "ik_negative_weight": ("fastkin.ik.solve(sk, np.zeros((4, 3)), weights=[1, 1, -1, 1])", "ValueError", "weights[2] must be finite and >= 0"),
    "ik_zero_tol": ("fastkin.ik.solve(sk, np.zeros((4, 3)), tol=0)", "ValueError", "tol must be a finite number > 0"),
    "ik_zero_iterations": ("fastkin.ik.solve(sk, np.zeros((4, 3)), max_iters=0)", "ValueError", "max_iters must be an int >= 1"),
    "ik_bad_init": ("fastkin.ik.solve(sk, np.zeros((2, 4, 3)), init=np.zeros((3, 4, 4)))", "ValueError", "init must have shape"),
    "ik_zero_quaternion_init": ("fastkin.ik.solve(sk, np.zeros((4, 3)), init=np.zeros((4, 4)))", "ValueError", "init holds a zero quaternion"),
    "ik_bad_limits": ("fastkin.ik.solve(sk, np.zeros((4, 3)), joint_limits=np.ones((4, 3, 2)) * [1, -1])", "ValueError", "joint_limits must be finite with min <= max"),
    "ik_integer_targets_are_fine_but_strings_not": ("fastkin.ik.solve(sk, np.array([['a'] * 3] * 4))", "TypeError", "targets must be float32 or float64"),
    "ik_sequence_needs_frames": ("fastkin.ik.solve_sequence(sk, np.zeros((4, 3)))", "ValueError", "targets must have shape (F, T, 3)"),
    "raw_ik_bad_joints_dtype": ("_core.ik_solve(sk._kernel_data, np.arange(4), np.zeros((1, 4, 3)), None, None, 1.0, np.tile([0.0, 0, 0, 1], (4, 1)), None, 0.0, 0.0, False, None, 0.0, 10, 1e-9, False, np.empty((1, 4, 4)), np.empty((1, 3)), np.empty(1), np.empty(1, np.int32), np.empty(1, bool))", "TypeError", "joints must be a 1-D int32 array"),
    # two-bone and FABRIK IK
    "two_bone_nan_target": ("t0[3, 1] = np.nan; two(r0, m0, e0, t0)", "ValueError", "target must be finite"),
    "two_bone_inf_root": ("r0[0, 0] = np.inf; two(r0, m0, e0, t0)", "ValueError", "root must be finite"),
    "two_bone_nan_pole": ("two(r0, m0, e0, t0, pole=np.full(3, np.nan))", "ValueError", "pole must be finite"),
    "two_bone_wrong_shape": ("two(r0, m0[:, :2], e0, t0)", "ValueError", "mid must have shape (..., 3), got (5, 2)"),
    "two_bone_scalar": ("two(r0, m0, e0, 1.0)", "ValueError", "target must have shape (..., 3), got ()"),
    "two_bone_batch_mismatch": ("two(r0, m0, e0, np.ones((4, 3)))", "ValueError", "batch shapes do not broadcast together: root (5,), mid (5,), end (5,), target (4,)"),
    "two_bone_integer_array": ("two(r0.astype(np.int64), m0, e0, t0)", "TypeError", "root must be float32 or float64, got dtype int64"),
    "two_bone_float16": ("two(r0, m0, e0, t0.astype(np.float16))", "TypeError", "target must be float32 or float64"),
    "two_bone_dtype_mismatch": ("two(r0, m0, e0, t0.astype(np.float32))", "TypeError", "target has dtype float32 but root is float64"),
    "two_bone_strings": ("two(r0, m0, e0, 'up')", "TypeError", "target must be a float32 or float64 array"),
    "two_bone_overflow": ("two(r0, m0 * 1e200, e0 * 1e200, t0)", "ValueError", "two_bone overflowed"),
    "two_bone_skeleton_not_ancestors": ("fastkin.ik.two_bone_skeleton(sk, q, (0, 2, 3), t0)", "ValueError", "joints: joint 2 (joint_2) is not an ancestor of joint 3 (joint_3)"),
    "two_bone_skeleton_two_joints": ("fastkin.ik.two_bone_skeleton(sk, q, (0, 1), t0)", "ValueError", "joints must be (root, mid, end)"),
    "two_bone_skeleton_bad_name": ("fastkin.ik.two_bone_skeleton(sk, q, ('hip', 'joint_1', 'joint_2'), t0)", "ValueError", "no joint named 'hip'"),
    "two_bone_skeleton_not_a_skeleton": ("fastkin.ik.two_bone_skeleton(par, q, (0, 1, 2), t0)", "TypeError", "skeleton must be a fastkin.Skeleton"),
    "fabrik_nan_positions": ("P[2, 1, 1] = np.nan; fab(P, par, G, target_joints=[2, 3])", "ValueError", "positions must be finite"),
    "fabrik_inf_targets": ("G[0, 1, 2] = -np.inf; fab(P, par, G, target_joints=[2, 3])", "ValueError", "targets must be finite"),
    "fabrik_positions_wrong_joints": ("fab(P[:, :3], par, G, target_joints=[2, 3])", "ValueError", "positions must have shape (..., 4, 3), got (5, 3, 3)"),
    "fabrik_targets_wrong_count": ("fab(P, par, G, target_joints=[3])", "ValueError", "targets must have shape (..., 1, 3) for 1 target_joints, got (5, 2, 3)"),
    "fabrik_batch_mismatch": ("fab(P, par, G[:3], target_joints=[2, 3])", "ValueError", "batch shapes do not broadcast together: positions (5,), targets (3,)"),
    "fabrik_dtype_mismatch": ("fab(P.astype(np.float32), par, G, target_joints=[2, 3])", "TypeError", "targets has dtype float64 but positions is float32"),
    "fabrik_integer_positions": ("fab(P.astype(np.int32), par, G, target_joints=[2, 3])", "TypeError", "positions must be float32 or float64"),
    "fabrik_target_joint_out_of_range": ("fab(P, par, G, target_joints=[2, 4])", "ValueError", "target_joints[1] = 4 is not a joint index in [0, 4)"),
    "fabrik_target_joint_negative": ("fab(P, par, G, target_joints=[-1, 3])", "ValueError", "target_joints[0] = -1 is not a joint index"),
    "fabrik_target_joints_repeated": ("fab(P, par, G, target_joints=[3, 3])", "ValueError", "target_joints must be distinct; joint 3 appears twice"),
    "fabrik_target_joints_empty": ("fab(P, par, G[:, :0], target_joints=[])", "ValueError", "target_joints must name at least one joint"),
    "fabrik_target_joints_scalar": ("fab(P, par, G[:, :1], target_joints=3)", "ValueError", "target_joints must be a 1-D sequence"),
    "fabrik_target_joints_float": ("fab(P, par, G, target_joints=[2.0, 3.0])", "TypeError", "target_joints[0] must be an int index"),
    "fabrik_target_joints_name_without_skeleton": ("fab(P, par, G, target_joints=['joint_2', 3])", "TypeError", "target_joints[0] must be an int index, got str"),
    "fabrik_target_joints_unknown_name": ("fab(P, sk, G, target_joints=['wrist', 3])", "ValueError", "no joint named 'wrist'"),
    "fabrik_tol_zero": ("fab(P, par, G, target_joints=[2, 3], tol=0)", "ValueError", "tol must be finite and > 0, got 0"),
    "fabrik_tol_negative": ("fab(P, par, G, target_joints=[2, 3], tol=-1e-3)", "ValueError", "tol must be finite and > 0"),
    "fabrik_tol_nan": ("fab(P, par, G, target_joints=[2, 3], tol=float('nan'))", "ValueError", "tol must be finite and > 0"),
    "fabrik_tol_string": ("fab(P, par, G, target_joints=[2, 3], tol='1e-3')", "TypeError", "tol must be a number"),
    "fabrik_max_iters_zero": ("fab(P, par, G, target_joints=[2, 3], max_iters=0)", "ValueError", "max_iters must be >= 1, got 0"),
    "fabrik_max_iters_float": ("fab(P, par, G, target_joints=[2, 3], max_iters=10.0)", "TypeError", "max_iters must be an int"),
    "fabrik_fixed_root_none": ("fab(P, par, G, target_joints=[2, 3], fixed_root=None)", "TypeError", "fixed_root must be a bool"),
    "fabrik_bad_parents": ("fab(P, [-1, 0, 3, 1], G, target_joints=[2, 3])", "ValueError", "parents must be in topological order"),
    "fabrik_parents_2d": ("fab(P, np.zeros((2, 2), int), G, target_joints=[2, 3])", "ValueError", "parents must be a 1-D array"),
    "fabrik_overflow": ("fab(P * 1e300, par, G, target_joints=[2, 3])", "ValueError", "fabrik overflowed"),
    "raw_fabrik_target_out_of_range": ("_core.fabrik(sk.parents, np.array([9], np.int32), P, G[:, :1], 10, 1e-6, 0.0, True, np.empty_like(P), np.empty(5, np.int32), np.empty(5, bool))", "ValueError", "target_joints[0] = 9 is not a joint index in [0, 4)"),
    "raw_fabrik_target_dtype": ("_core.fabrik(sk.parents, np.array([3]), P, G[:, :1], 10, 1e-6, 0.0, True, np.empty_like(P), np.empty(5, np.int32), np.empty(5, bool))", "TypeError", "target_joints must be a 1-D int32 array"),
    "raw_fabrik_zero_tol": ("_core.fabrik(sk.parents, np.array([3], np.int32), P, G[:, :1], 10, 0.0, 0.0, True, np.empty_like(P), np.empty(5, np.int32), np.empty(5, bool))", "ValueError", "tol must be finite and > 0"),
    "raw_fabrik_iterations_dtype": ("_core.fabrik(sk.parents, np.array([3], np.int32), P, G1, 10, 1e-6, 0.0, True, np.empty_like(P), np.empty(5), np.empty(5, bool))", "TypeError", "iterations must have dtype int32"),
    "raw_fabrik_output_shape": ("_core.fabrik(sk.parents, np.array([3], np.int32), P, G1, 10, 1e-6, 0.0, True, np.empty((5, 3, 3)), np.empty(5, np.int32), np.empty(5, bool))", "ValueError", "out_positions must have shape (5, 4, 3)"),
    "raw_two_bone_one_rotation": ("_core.two_bone_ik(r0, m0, e0, t0, None, np.empty((5, 3)), np.empty((5, 3)), np.empty((5, 3, 3)), None)", "ValueError", "upper_rotations and lower_rotations must both be given"),
    "raw_two_bone_input_batch": ("_core.two_bone_ik(r0[:4], m0, e0, t0, None, np.empty((5, 3)), np.empty((5, 3)), None, None)", "ValueError", "root must have shape (5, 3)"),
    # analytic IK (p: fk positions (5, 4, 3) of sk)
    "ik_nan_positions": ("p = fastkin.fk_batch(sk, q)[1]; p[1, 2, 0] = np.nan; fastkin.ik.analytic(sk, p)", "ValueError", "positions must be finite"),
    "ik_inf_positions": ("p = fastkin.fk_batch(sk, q)[1].astype(np.float32); p[4, 3, 2] = -np.inf; fastkin.ik.analytic(sk, p)", "ValueError", "positions must be finite"),
    "ik_overflow": ("fastkin.ik.analytic(sk, fastkin.fk_batch(sk, q)[1] * 1e300)", "ValueError", "analytic IK overflowed"),
    "ik_overflow_one_frame": ("p = fastkin.fk_batch(sk, q)[1]; p[2] *= 1e160; fastkin.ik.analytic(sk, p, reference=q)", "ValueError", "analytic IK overflowed"),
    "ik_overflow_wide": ("w = fastkin.Skeleton([-1, 0, 0], np.ones((3, 3))); fastkin.ik.analytic(w, np.array([[0.0, 0, 0], [1e200, 0, 0], [0, 1e200, 0]]))", "ValueError", "analytic IK overflowed"),
    "ik_wrong_joint_count": ("fastkin.ik.analytic(sk, np.zeros((5, 3, 3)))", "ValueError", "positions must have shape (..., 4, 3), got (5, 3, 3)"),
    "ik_wrong_trailing_shape": ("fastkin.ik.analytic(sk, np.zeros((5, 4, 4)))", "ValueError", "positions must have shape (..., 4, 3), got (5, 4, 4)"),
    "ik_scalar_positions": ("fastkin.ik.analytic(sk, np.float64(1.0))", "ValueError", "positions must have shape (..., 4, 3), got ()"),
    "ik_integer_positions": ("fastkin.ik.analytic(sk, np.zeros((5, 4, 3), dtype=np.int64))", "TypeError", "positions must be float32 or float64"),
    "ik_float16_positions": ("fastkin.ik.analytic(sk, np.zeros((5, 4, 3), dtype=np.float16))", "TypeError", "positions must be float32 or float64"),
    "ik_string_positions": ("fastkin.ik.analytic(sk, [['a', 'b', 'c']] * 4)", "TypeError", "positions must be float32 or float64"),
    "ik_not_a_skeleton": ("fastkin.ik.analytic([-1, 0], np.zeros((2, 3)))", "TypeError", "skeleton must be a fastkin.Skeleton"),
    "ik_reference_wrong_shape": ("fastkin.ik.analytic(sk, np.zeros((5, 4, 3)), reference=np.zeros((4, 3)))", "ValueError", "reference must have shape (4, 4) or (4, 3, 3), optionally after the batch shape of positions (5,), got (4, 3)"),
    "ik_reference_wrong_joints": ("fastkin.ik.analytic(sk, np.zeros((5, 4, 3)), reference=q[:, :3])", "ValueError", "reference must have shape (4, 4) or (4, 3, 3)"),
    "ik_reference_wrong_batch": ("fastkin.ik.analytic(sk, np.zeros((5, 4, 3)), reference=q[:2])", "ValueError", "got (2, 4, 4)"),
    "ik_reference_dtype": ("fastkin.ik.analytic(sk, np.zeros((5, 4, 3)), reference=q.astype(np.float32))", "TypeError", "reference has dtype float32 but positions are float64"),
    "ik_reference_integer": ("fastkin.ik.analytic(sk, np.zeros((5, 4, 3)), reference=q.astype(np.int64))", "TypeError", "reference has dtype int64 but positions are float64"),
    "ik_reference_nan": ("q[3, 1, 3] = np.nan; fastkin.ik.analytic(sk, np.zeros((5, 4, 3)), reference=q)", "ValueError", "reference must be finite"),
    "ik_reference_zero_quaternion": ("q[1, 2] = 0; fastkin.ik.analytic(sk, np.zeros((5, 4, 3)), reference=q)", "ValueError", "reference holds a zero quaternion at (1, 2)"),
    "ik_reference_not_rotation": ("fastkin.ik.analytic(sk, np.zeros((5, 4, 3)), reference=2 * c)", "ValueError", "reference[0] is not a rotation matrix"),
    "ik_reference_reflection": ("b[2, 3, 0, 0] = -1; fastkin.ik.analytic(sk, np.zeros((5, 4, 3)), reference=b)", "ValueError", "reference[2, 3] is not a rotation matrix (orthonormal to 1e-05, determinant +1)"),
    "raw_ik_positions_dtype": ("_core.ik_analytic(_core.AnalyticIkPlan(sk.parents, sk.offsets, sk.rest_rotations), np.zeros((5, 4, 3), np.int32), None)", "TypeError", "positions must have dtype float32 or float64"),
    "raw_ik_positions_strided": ("_core.ik_analytic(_core.AnalyticIkPlan(sk.parents, sk.offsets, sk.rest_rotations), np.zeros((5, 4, 6))[..., ::2], None)", "ValueError", "positions must be C-contiguous"),
    "raw_ik_reference_strided": ("_core.ik_analytic(_core.AnalyticIkPlan(sk.parents, sk.offsets, sk.rest_rotations), np.zeros((5, 4, 3)), np.zeros((5, 4, 8))[..., ::2])", "ValueError", "reference must be C-contiguous"),
    "raw_ik_reference_dtype": ("_core.ik_analytic(_core.AnalyticIkPlan(sk.parents, sk.offsets, sk.rest_rotations), np.zeros((5, 4, 3)), q.astype(np.float32))", "TypeError", "reference must have dtype float64 like positions"),
    "raw_ik_plan_offsets": ("_core.AnalyticIkPlan(sk.parents, np.ones((3, 3)), sk.rest_rotations)", "ValueError", "offsets must have shape (4, 3)"),
    "raw_ik_plan_bad_parents": ("_core.AnalyticIkPlan(np.array([-1, 2, 0, 0], np.int32), sk.offsets, sk.rest_rotations)", "ValueError", "parents[1] = 2"),
    "set_num_threads_zero": ("fastkin.set_num_threads(0)", "ValueError", "num_threads must be >= 1"),
    "set_num_threads_float": ("fastkin.set_num_threads(1.5)", "TypeError", "num_threads must be an int"),
}
# fmt: on

RUNNER = (
    SETUP
    + """
import sys
try:
{code}
except Exception as error:
    print("RESULT", type(error).__name__)
    print(error)
else:
    print("RESULT no error")
"""
)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_gives_a_clear_error(name):
    code, error_type, text = CASES[name]
    program = RUNNER.format(code=textwrap.indent(code, "    "))
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"interpreter died ({result.returncode}): {result.stderr[-2000:]}"
    kind, _, message = result.stdout.split("RESULT ", 1)[-1].partition("\n")
    assert kind == error_type, f"expected {error_type}, got {result.stdout!r} {result.stderr[-500:]}"
    assert text in message, f"message {message!r} lacks {text!r}"


def test_non_contiguous_and_list_inputs_are_accepted():
    program = SETUP + textwrap.dedent(
        """
        wide = np.zeros((5, 4, 8)); wide[..., ::2] = q
        a = fastkin.fk_batch(sk, wide[..., ::2])
        b = fastkin.fk_batch(sk, q)
        c = fastkin.fk_batch(sk, q.tolist(), [[1.0, 2.0, 3.0]] * 5)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        assert np.allclose(c[1], b[1] + [1.0, 2.0, 3.0])
        print("RESULT ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().endswith("RESULT ok"), result.stderr[-2000:]
