"""Forward-kinematics benchmark: fastkin against smplx, Pinocchio, pymotion and
a vectorised numpy baseline, on an SMPL-like 24-joint skeleton.

Run from the repository root (with the dev virtualenv active)::

    python bench/fk.py                 # full run, ~5-8 minutes on 2 cores;
                                       # writes bench/results/fk.md
    python bench/fk.py --quick         # smoke test: B=1 and 4096, float32,
                                       # 1 thread; prints the report only
    python bench/fk.py --out PATH      # write the report to PATH instead
    python -m fastkin bench fk [ARGS]  # the same, through the fastkin CLI

Everything is measured in one process, so every ratio compares numbers taken
minutes apart on the same machine. For each (dtype, threads, batch size) the
implementations are timed round-robin, one repeat each per round, and each
keeps its best repeat: a burst of load from elsewhere hits all of them rather
than one. Times are never asserted; the report marks the performance targets
met or not met with the measured figure.

Before any timing, every implementation's world positions are compared with
fastkin's (numpy, quaternion input) and the maximum absolute difference is
printed and reported; an implementation that disagrees is not timed. Torch
gradients are cross-checked the same way (fastkin against pymotion's and
smplx's autograd).

Peers that are not installed (torch, smplx, pin, upc-pymotion) are skipped
with a note, so the script runs with only fastkin and numpy.
"""

from __future__ import annotations

import os

# Single-threaded BLAS for the numpy-based implementations (only effective
# when numpy is not imported yet, i.e. when run as `python bench/fk.py`), so
# they never compete with torch / fastkin threads on a 2-core machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import datetime
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

import fastkin

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py, also when run through runpy
from common import (  # noqa: E402
    NUM_JOINTS,
    PARENTS,
    SEED,
    Case,
    SINGLE_CALL,
    Measurement,
    command_line,
    copy_bandwidth,
    cpu_flags,
    cpu_model,
    extension_identity,
    make_axis_angles,
    make_offsets,
    optional_import,
    package_version,
    time_round_robin,
)

torch, TORCH_ERROR = optional_import("torch")
smplx_lbs, SMPLX_ERROR = optional_import("smplx.lbs")
pin, PIN_ERROR = optional_import("pinocchio")
pymotion_np, PYMOTION_ERROR = optional_import("pymotion.ops.skeleton_np")
pymotion_torch, _ = optional_import("pymotion.ops.skeleton_torch")


# --------------------------------------------------------------------------------------------
# The problem: an SMPL-like skeleton and random poses
# --------------------------------------------------------------------------------------------


FULL_SIZES = (1, 64, 4096, 65536)
QUICK_SIZES = (1, 4096)

FWD = "forward"
# The forward, then the backward of given output gradients (as op benchmarks
# time a backward), and the same with a loss computed by torch in between (a
# training step: the loss's own elementwise work is timed too).
FWD_BWD = "forward+backward"
FWD_LOSS_BWD = "forward+loss+backward"
MODES = (FWD, FWD_BWD, FWD_LOSS_BWD)

# Pinocchio has no batched API: it is timed on at most this many samples of a
# batch and its per-sample time is scaled up to the whole batch.
PINOCCHIO_MAX_SAMPLES = 1000


# Positions agree when within these (metres, for bones of ~0.1 m). float64 is
# not tighter because smplx's batch_rodrigues adds 1e-8 to every axis-angle.
TOLERANCE = {np.float32: 1e-4, np.float64: 1e-6}


def rest_joint_positions(offsets: np.ndarray) -> np.ndarray:
    """World rest positions (J, 3): offsets accumulated down the tree (what
    smplx's batch_rigid_transform takes instead of offsets)."""
    rest = np.zeros_like(offsets)
    for joint, parent in enumerate(PARENTS):
        rest[joint] = offsets[joint] if parent < 0 else rest[parent] + offsets[joint]
    return rest


@dataclass
class Problem:
    """One batch of poses in one dtype, in every input layout the
    implementations take (prepared outside the timed region)."""

    dtype: type
    batch: int
    offsets64: np.ndarray
    skeleton: fastkin.Skeleton
    axis_angle: np.ndarray  # (B, J, 3)
    quat: np.ndarray  # (B, J, 4) xyzw
    matrix: np.ndarray  # (B, J, 3, 3)
    weight_pos: np.ndarray  # (B, J, 3) loss weights for forward+backward
    weight_rot: np.ndarray  # (B, J, 3, 3)
    reference: np.ndarray = field(init=False)  # fastkin positions, (B, J, 3)

    @property
    def offsets(self) -> np.ndarray:
        return self.offsets64.astype(self.dtype)

    def torch(self, array: np.ndarray, requires_grad: bool = False):
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        return tensor.requires_grad_(requires_grad)


def make_problem(dtype: type, batch: int, offsets64: np.ndarray, skeleton: fastkin.Skeleton) -> Problem:
    axis_angle64 = make_axis_angles(batch)
    quat64 = fastkin.rotations.axis_angle_to_quat(axis_angle64)
    matrix64 = fastkin.rotations.quat_to_matrix(quat64)
    rng = np.random.default_rng(SEED + 2)
    problem = Problem(
        dtype=dtype,
        batch=batch,
        offsets64=offsets64,
        skeleton=skeleton,
        axis_angle=axis_angle64.astype(dtype),
        quat=quat64.astype(dtype),
        matrix=matrix64.astype(dtype),
        weight_pos=rng.normal(size=(batch, NUM_JOINTS, 3)).astype(dtype),
        weight_rot=rng.normal(size=(batch, NUM_JOINTS, 3, 3)).astype(dtype),
    )
    problem.reference = np.asarray(fastkin.fk_batch(skeleton, problem.quat)[1], dtype=np.float64)
    return problem


# --------------------------------------------------------------------------------------------
# The best numpy baseline: joint-major structure of arrays
# --------------------------------------------------------------------------------------------


class NumpyFK:
    """Forward kinematics in plain numpy, written to be fast.

    Layout is joint-major structure-of-arrays with the batch innermost, so
    every numpy call works on long contiguous runs: the quaternions are
    transposed once to (J*4, B); all local matrices come from one vectorised
    quaternion-to-matrix over J*B; then one pass over the joints does one
    batched 3x3 product each (einsum over the batch); the translation of
    every joint (W_parent @ offset) is one einsum over all joints, and the
    positions (sums of those translations along each joint's ancestry) one
    (J x J) @ (J x 3B) matrix product. Batches above `chunk` are processed
    in chunks so each chunk's working set stays in cache.

    Returns (world_rotations (B, J, 3, 3), world_positions (B, J, 3)) as
    strided views of the joint-major arrays (not copied to batch-major).
    """

    def __init__(self, parents, offsets: np.ndarray, dtype, chunk: int = 4096):
        self.parents = [int(p) for p in parents]
        self.num_joints = len(self.parents)
        self.dtype = np.dtype(dtype)
        self.chunk = chunk
        self.offsets = np.asarray(offsets, dtype=self.dtype)
        self.roots = [j for j, p in enumerate(self.parents) if p < 0]
        self.children = np.array([j for j, p in enumerate(self.parents) if p >= 0])
        self.children_parents = np.array([self.parents[j] for j in self.children])
        self.child_offsets = self.offsets[self.children]
        ancestry = np.zeros((self.num_joints, self.num_joints))
        for joint in range(self.num_joints):
            node = joint
            while node >= 0:
                ancestry[joint, node] = 1.0
                node = self.parents[node]
        self.ancestry = ancestry.astype(self.dtype)

    def __call__(self, quat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = quat.shape[0]
        J = self.num_joints
        world_rot = np.empty((J, 3, 3, batch), self.dtype)
        world_pos = np.empty((J, 3, batch), self.dtype)
        if batch <= self.chunk:
            self._chunk(quat, world_rot, world_pos)
        else:
            for start in range(0, batch, self.chunk):
                stop = min(batch, start + self.chunk)
                rot_chunk = np.empty((J, 3, 3, stop - start), self.dtype)
                pos_chunk = np.empty((J, 3, stop - start), self.dtype)
                self._chunk(quat[start:stop], rot_chunk, pos_chunk)
                world_rot[..., start:stop] = rot_chunk
                world_pos[..., start:stop] = pos_chunk
        return world_rot.transpose(3, 0, 1, 2), world_pos.transpose(2, 0, 1)

    def _local_matrices(self, quat: np.ndarray) -> np.ndarray:
        """(3, 3, J, B) rotation matrices of (B, J, 4) xyzw quaternions (of q/|q|)."""
        batch = quat.shape[0]
        J = self.num_joints
        q = np.ascontiguousarray(quat.reshape(batch, J * 4).T).reshape(J, 4, batch)
        x, y, z, w = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
        s = 2.0 / (x * x + y * y + z * z + w * w)
        xs, ys, zs = x * s, y * s, z * s
        wx, wy, wz = w * xs, w * ys, w * zs
        xx, xy, xz = x * xs, x * ys, x * zs
        yy, yz, zz = y * ys, y * zs, z * zs
        m = np.empty((3, 3, J, batch), self.dtype)
        np.subtract(1.0, yy + zz, out=m[0, 0])
        np.subtract(xy, wz, out=m[0, 1])
        np.add(xz, wy, out=m[0, 2])
        np.add(xy, wz, out=m[1, 0])
        np.subtract(1.0, xx + zz, out=m[1, 1])
        np.subtract(yz, wx, out=m[1, 2])
        np.subtract(xz, wy, out=m[2, 0])
        np.add(yz, wx, out=m[2, 1])
        np.subtract(1.0, xx + yy, out=m[2, 2])
        return m

    def _chunk(self, quat: np.ndarray, world_rot: np.ndarray, world_pos: np.ndarray) -> None:
        batch = quat.shape[0]
        J = self.num_joints
        local = self._local_matrices(quat)
        for joint, parent in enumerate(self.parents):
            if parent < 0:
                world_rot[joint] = local[:, :, joint]
            else:
                np.einsum("ikb,kjb->ijb", world_rot[parent], local[:, :, joint], out=world_rot[joint])
        translation = np.empty((J, 3, batch), self.dtype)
        for root in self.roots:
            translation[root] = self.offsets[root][:, None]
        translation[self.children] = np.einsum(
            "jikb,jk->jib", world_rot[self.children_parents], self.child_offsets
        )
        np.matmul(self.ancestry, translation.reshape(J, 3 * batch), out=world_pos.reshape(J, 3 * batch))


# --------------------------------------------------------------------------------------------
# Implementations: each returns a Case (a zero-argument call to time, and its
# positions for the check) or None where the combination does not exist.
# --------------------------------------------------------------------------------------------


def _torch_loss(positions, rotations, weight_pos, weight_rot):
    return (positions * weight_pos).sum() + (rotations * weight_rot).sum()


def _gradient_case(p: Problem, mode: str, forward, wrt, positions) -> Case:
    """The timed gradient of `forward` (-> world positions, world rotations)
    with respect to `wrt`: output gradients (w, w2) handed to the backward
    (FWD_BWD), or the loss sum(positions * w) + sum(rotations * w2) computed and
    differentiated (FWD_LOSS_BWD). Both give the same gradient."""
    weight_pos, weight_rot = p.torch(p.weight_pos), p.torch(p.weight_rot)
    if mode == FWD_BWD:

        def run():
            return torch.autograd.grad(forward(), wrt, (weight_pos, weight_rot))

    else:

        def run():
            return torch.autograd.grad(_torch_loss(*forward(), weight_pos, weight_rot), wrt)

    return Case(run=run, positions=positions)


def _fastkin_numpy(p: Problem, mode: str, rotations: np.ndarray) -> Optional[Case]:
    if mode != FWD:
        return None
    skeleton = p.skeleton
    return Case(
        run=lambda: fastkin.fk_batch(skeleton, rotations),
        positions=lambda: fastkin.fk_batch(skeleton, rotations)[1],
    )


def impl_fastkin_numpy_quat(p: Problem, mode: str) -> Optional[Case]:
    return _fastkin_numpy(p, mode, p.quat)


def impl_fastkin_numpy_matrix(p: Problem, mode: str) -> Optional[Case]:
    return _fastkin_numpy(p, mode, p.matrix)


def impl_fastkin_torch_quat(p: Problem, mode: str) -> Optional[Case]:
    skeleton = p.skeleton
    if mode == FWD:
        quat = p.torch(p.quat)
        return Case(
            run=lambda: fastkin.fk_batch(skeleton, quat),
            positions=lambda: fastkin.fk_batch(skeleton, quat)[1].numpy(),
        )
    quat = p.torch(p.quat, requires_grad=True)
    return _gradient_case(
        p,
        mode,
        lambda: fastkin.fk_batch(skeleton, quat)[::-1],
        quat,
        positions=lambda: fastkin.fk_batch(skeleton, quat)[1].detach().numpy(),
    )


def impl_fastkin_torch_axis_angle(p: Problem, mode: str) -> Optional[Case]:
    """fastkin fed smplx's input (axis-angle), converted by fastkin.rotations
    inside the timed call: the like-for-like comparison with smplx."""
    skeleton = p.skeleton
    to_quat = fastkin.rotations.axis_angle_to_quat
    axis_angle = p.torch(p.axis_angle, requires_grad=(mode != FWD))
    if mode == FWD:
        return Case(
            run=lambda: fastkin.fk_batch(skeleton, to_quat(axis_angle)),
            positions=lambda: fastkin.fk_batch(skeleton, to_quat(axis_angle))[1].numpy(),
        )
    return _gradient_case(
        p,
        mode,
        lambda: fastkin.fk_batch(skeleton, to_quat(axis_angle))[::-1],
        axis_angle,
        positions=lambda: fastkin.fk_batch(skeleton, to_quat(axis_angle))[1].detach().numpy(),
    )


def impl_smplx(p: Problem, mode: str) -> Optional[Case]:
    """smplx.lbs: batch_rodrigues (axis-angle -> matrices), then
    batch_rigid_transform on the world rest joint positions."""
    batch = p.batch
    rest = np.broadcast_to(rest_joint_positions(p.offsets64), (batch, NUM_JOINTS, 3)).astype(p.dtype)
    joints = p.torch(rest)
    parents = torch.tensor(PARENTS, dtype=torch.long)
    axis_angle = p.torch(p.axis_angle, requires_grad=(mode != FWD))

    def forward():
        rot_mats = smplx_lbs.batch_rodrigues(axis_angle.reshape(-1, 3)).reshape(batch, NUM_JOINTS, 3, 3)
        posed_joints, rel_transforms = smplx_lbs.batch_rigid_transform(rot_mats, joints, parents)
        return posed_joints, rel_transforms[..., :3, :3]  # rotation block = world rotation

    positions = lambda: forward()[0].detach().numpy()  # noqa: E731
    if mode == FWD:
        return Case(run=forward, positions=positions)
    return _gradient_case(p, mode, forward, axis_angle, positions)


def build_pinocchio_model(offsets64: np.ndarray):
    """24 spherical joints, each placed at its offset in its parent's frame."""
    model = pin.Model()
    for joint, parent in enumerate(PARENTS):
        placement = pin.SE3(np.eye(3), offsets64[joint].copy())
        model.addJoint(0 if parent < 0 else parent + 1, pin.JointModelSpherical(), placement, f"joint_{joint}")
    return model


def impl_pinocchio(p: Problem, mode: str) -> Optional[Case]:
    """pin.forwardKinematics per sample in a Python loop (Pinocchio has no
    batch API and is float64 only). Large batches: timed on the first
    PINOCCHIO_MAX_SAMPLES samples and scaled up."""
    if mode != FWD:
        return None
    model = build_pinocchio_model(p.offsets64)
    data = model.createData()
    samples = min(p.batch, PINOCCHIO_MAX_SAMPLES)
    # Configuration: per spherical joint a quaternion in (x, y, z, w) order.
    configs = [np.ascontiguousarray(q, dtype=np.float64) for q in p.quat[:samples].reshape(samples, NUM_JOINTS * 4)]
    forward_kinematics = pin.forwardKinematics

    def run():
        for config in configs:
            forward_kinematics(model, data, config)

    def positions():  # the timed samples only (the check compares a prefix)
        out = np.empty((samples, NUM_JOINTS, 3))
        for sample, config in enumerate(configs):
            forward_kinematics(model, data, config)
            out[sample] = [data.oMi[j + 1].translation for j in range(NUM_JOINTS)]
        return out

    note = "float64 only" + (f"; timed on {samples} of {p.batch} samples, scaled" if samples < p.batch else "")
    return Case(run=run, positions=positions, scale=p.batch / samples, note=note)


def impl_pymotion_numpy(p: Problem, mode: str) -> Optional[Case]:
    """pymotion.ops.skeleton_np.fk (quaternions wxyz, 4x4 homogeneous
    matrices; works in float64 whatever the input dtype)."""
    if mode != FWD:
        return None
    quat_wxyz = np.ascontiguousarray(p.quat[..., [3, 0, 1, 2]])
    offsets = p.offsets
    root = np.broadcast_to(offsets[0], (p.batch, 3)).copy()  # pymotion's root position replaces offsets[0]
    parents = list(PARENTS)

    def run():
        return pymotion_np.fk(quat_wxyz, root, offsets, parents)

    return Case(run=run, positions=lambda: run()[0], note="computes in float64")


def impl_pymotion_torch(p: Problem, mode: str) -> Optional[Case]:
    """pymotion.ops.skeleton_torch.fk (quaternions wxyz), autograd for the backward."""
    quat_wxyz = p.torch(p.quat[..., [3, 0, 1, 2]], requires_grad=(mode != FWD))
    offsets = p.torch(p.offsets)
    root = p.torch(np.broadcast_to(p.offsets[0], (p.batch, 3)).copy())
    parents = list(PARENTS)

    def forward():
        return pymotion_torch.fk(quat_wxyz, root, offsets, parents)

    positions = lambda: forward()[0].detach().numpy()  # noqa: E731
    if mode == FWD:
        return Case(run=forward, positions=positions)
    return _gradient_case(p, mode, forward, quat_wxyz, positions)


def impl_numpy_vectorised(p: Problem, mode: str) -> Optional[Case]:
    if mode != FWD:
        return None
    fk = NumpyFK(PARENTS, p.offsets64, p.dtype)
    quat = p.quat
    return Case(run=lambda: fk(quat), positions=lambda: fk(quat)[1])


@dataclass
class Implementation:
    key: str
    label: str
    make: Callable[[Problem, str], Optional[Case]]
    missing: str = ""  # why it cannot run here ("" when it can)


def implementations() -> list[Implementation]:
    no_torch = f"torch not importable ({TORCH_ERROR})" if torch is None else ""
    return [
        Implementation("fk_np_quat", "fastkin numpy (quat)", impl_fastkin_numpy_quat),
        Implementation("fk_np_mat", "fastkin numpy (matrix)", impl_fastkin_numpy_matrix),
        Implementation("fk_torch_quat", "fastkin torch (quat)", impl_fastkin_torch_quat, no_torch),
        Implementation("fk_torch_aa", "fastkin torch (axis-angle)", impl_fastkin_torch_axis_angle, no_torch),
        Implementation(
            "smplx",
            "smplx (axis-angle, torch)",
            impl_smplx,
            no_torch or (f"smplx not importable ({SMPLX_ERROR})" if smplx_lbs is None else ""),
        ),
        Implementation(
            "pinocchio",
            "Pinocchio (per-sample loop)",
            impl_pinocchio,
            f"pinocchio not importable ({PIN_ERROR})" if pin is None else "",
        ),
        Implementation(
            "pymotion_np",
            "pymotion numpy",
            impl_pymotion_numpy,
            f"pymotion not importable ({PYMOTION_ERROR})" if pymotion_np is None else "",
        ),
        Implementation(
            "pymotion_torch",
            "pymotion torch",
            impl_pymotion_torch,
            no_torch or ("pymotion's torch ops not importable" if pymotion_torch is None else ""),
        ),
        Implementation("numpy", "numpy vectorised (this script)", impl_numpy_vectorised),
    ]


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def set_threads(threads: int) -> None:
    fastkin.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass
class Results:
    sizes: tuple
    dtypes: tuple
    thread_counts: tuple
    impls: list
    # (dtype name, threads, mode) -> impl key -> batch -> Measurement
    times: dict = field(default_factory=dict)
    # impl key -> dtype name -> max |positions - fastkin| over all batch sizes
    position_errors: dict = field(default_factory=dict)
    # description -> dtype name -> (max |grad difference|, that / max |reference grad|)
    gradient_errors: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)  # (impl key, dtype, batch, why)
    skipped: list = field(default_factory=list)  # notes on what was not run
    # (dtype name, threads, mode) -> 1-minute load averages when each batch size started
    loads: dict = field(default_factory=dict)
    seconds: float = 0.0


def verify_positions(impl: Implementation, case: Case, problem: Problem, results: Results) -> bool:
    name = problem.dtype.__name__
    try:
        positions = np.asarray(case.positions(), dtype=np.float64)
    except Exception as error:  # noqa: BLE001 - a peer failing is reported, not fatal
        results.failures.append((impl.key, name, problem.batch, f"raised {type(error).__name__}: {error}"))
        return False
    error = float(np.max(np.abs(positions - problem.reference[: len(positions)])))
    previous = results.position_errors.setdefault(impl.key, {}).get(name, 0.0)
    results.position_errors[impl.key][name] = max(previous, error)
    print(f"    check {impl.label:32s} B={problem.batch:<6d} max|dpos| = {error:.2e}")
    if not error <= TOLERANCE[problem.dtype]:
        results.failures.append((impl.key, name, problem.batch, f"positions differ by {error:.2e}"))
        return False
    return True


def verify_gradients(problem: Problem, results: Results) -> None:
    """fastkin's C++ backward against the autograd of pymotion (same
    quaternion input) and smplx (same axis-angle input)."""
    if torch is None:
        return
    name = problem.dtype.__name__
    weight_pos, weight_rot = problem.torch(problem.weight_pos), problem.torch(problem.weight_rot)

    def grad_of(forward, tensor):
        rotations, positions = forward(tensor)
        return torch.autograd.grad(_torch_loss(positions, rotations, weight_pos, weight_rot), tensor)[0].numpy()

    def record(label: str, ours: np.ndarray, theirs: np.ndarray) -> None:
        difference = float(np.max(np.abs(ours - theirs)))
        relative = difference / max(float(np.max(np.abs(theirs))), 1e-30)
        previous = results.gradient_errors.setdefault(label, {}).get(name, (0.0, 0.0))
        results.gradient_errors[label][name] = (max(previous[0], difference), max(previous[1], relative))
        print(f"    grad  {label:58s} B={problem.batch:<6d} max|dgrad| = {difference:.2e} (relative {relative:.1e})")

    skeleton = problem.skeleton
    if pymotion_torch is not None:
        quat = problem.torch(problem.quat, requires_grad=True)
        ours = grad_of(lambda q: fastkin.fk_batch(skeleton, q), quat)
        quat_wxyz = problem.torch(problem.quat[..., [3, 0, 1, 2]], requires_grad=True)
        offsets = problem.torch(problem.offsets)
        root = problem.torch(np.broadcast_to(problem.offsets[0], (problem.batch, 3)).copy())

        def pymotion_forward(q):
            positions, rotations = pymotion_torch.fk(q, root, offsets, list(PARENTS))
            return rotations, positions

        theirs = grad_of(pymotion_forward, quat_wxyz)[..., [1, 2, 3, 0]]
        record("d loss / d quaternion: fastkin vs pymotion torch autograd", ours, theirs)
    if smplx_lbs is not None:
        to_quat = fastkin.rotations.axis_angle_to_quat
        axis_angle = problem.torch(problem.axis_angle, requires_grad=True)
        ours = grad_of(lambda a: fastkin.fk_batch(skeleton, to_quat(a)), axis_angle)
        batch = problem.batch
        joints = problem.torch(
            np.broadcast_to(rest_joint_positions(problem.offsets64), (batch, NUM_JOINTS, 3)).astype(problem.dtype)
        )
        parents = torch.tensor(PARENTS, dtype=torch.long)

        def smplx_forward(a):
            rot_mats = smplx_lbs.batch_rodrigues(a.reshape(-1, 3)).reshape(batch, NUM_JOINTS, 3, 3)
            posed, rel = smplx_lbs.batch_rigid_transform(rot_mats, joints, parents)
            return rel[..., :3, :3], posed

        theirs = grad_of(smplx_forward, problem.torch(problem.axis_angle, requires_grad=True))
        record("d loss / d axis-angle: fastkin vs smplx autograd", ours, theirs)


def run_benchmark(sizes, dtypes, thread_counts, time_per_case: float, repeats: int) -> Results:
    started = time.perf_counter()
    impls = implementations()
    results = Results(sizes=tuple(sizes), dtypes=tuple(dtypes), thread_counts=tuple(thread_counts), impls=impls)
    for impl in impls:
        if impl.missing:
            results.skipped.append(f"{impl.label}: skipped, {impl.missing}")
            print(f"skipping {impl.label}: {impl.missing}")
    offsets64 = make_offsets()
    skeleton = fastkin.Skeleton(PARENTS, offsets64)
    available = [impl for impl in impls if not impl.missing]
    for dtype in dtypes:
        for batch in sizes:
            problem = make_problem(dtype, batch, offsets64, skeleton)
            print(f"{dtype.__name__} B={batch}: checking")
            set_threads(thread_counts[0])
            verified: dict[tuple[str, str], bool] = {}
            for mode in MODES:
                for impl in available:
                    if mode != FWD and (impl.key, FWD) in verified:
                        # Same forward code as the forward case, checked just above.
                        if impl.make(problem, mode) is not None:
                            verified[(impl.key, mode)] = verified[(impl.key, FWD)]
                        continue
                    case = impl.make(problem, mode)
                    if case is not None:
                        verified[(impl.key, mode)] = verify_positions(impl, case, problem, results)
            if batch <= 4096:
                verify_gradients(problem, results)
            for threads in thread_counts:
                set_threads(threads)
                for mode in MODES:
                    cases = {}
                    for impl in available:
                        if verified.get((impl.key, mode)):
                            cases[impl.key] = impl.make(problem, mode)
                    if not cases:
                        continue
                    results.loads.setdefault((dtype.__name__, threads, mode), []).append(os.getloadavg()[0])
                    started_cell = time.perf_counter()
                    measured = time_round_robin(cases, time_per_case, repeats)
                    results.times.setdefault((dtype.__name__, threads, mode), {})
                    for key, measurement in measured.items():
                        results.times[(dtype.__name__, threads, mode)].setdefault(key, {})[batch] = measurement
                    summary = ", ".join(
                        f"{key} {batch * NUM_JOINTS / m.seconds / 1e6:.1f}" for key, m in measured.items()
                    )
                    print(
                        f"  {dtype.__name__} B={batch} threads={threads} {mode} "
                        f"({time.perf_counter() - started_cell:.1f} s, load {os.getloadavg()[0]:.2f}): Mj/s {summary}",
                        flush=True,
                    )
            del problem
    set_threads(thread_counts[0])
    results.seconds = time.perf_counter() - started
    return results


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def mjoints_per_second(batch: int, seconds: float) -> float:
    return batch * NUM_JOINTS / seconds / 1e6


def format_cell(batch: int, m: Optional[Measurement], single_thread: Optional[Measurement] = None) -> str:
    """'rate (time)' with markers: * extrapolated, ‡ a single timed call,
    † more than 1.5x slower than the same cell with 1 thread."""
    if m is None:
        return "—"
    rate = mjoints_per_second(batch, m.seconds)
    micros = m.seconds * 1e6
    time_text = f"{micros:.1f} µs" if micros < 1000 else f"{micros / 1000:.2f} ms"
    marks = "*" if m.scale != 1.0 else ""
    if m.repeats == 1 and m.inner == 1:
        marks += "‡"
    if single_thread is not None and m.seconds > 1.5 * single_thread.seconds:
        marks += "†"
    return f"{rate:.3g}{marks} ({time_text})" if rate < 100 else f"{rate:.0f}{marks} ({time_text})"


def lookup(results: Results, dtype: str, threads: int, mode: str, key: str, batch: int) -> Optional[Measurement]:
    return results.times.get((dtype, threads, mode), {}).get(key, {}).get(batch)


# Which fastkin path each peer is compared with in the ratio tables.
RATIO_PAIRS = {
    FWD: [
        ("fk_np_quat", "numpy"),
        ("fk_np_quat", "pymotion_np"),
        ("fk_np_quat", "pinocchio"),
        ("fk_np_quat", "smplx"),
        ("fk_torch_aa", "smplx"),
        ("fk_torch_quat", "pymotion_torch"),
    ],
    FWD_BWD: [
        ("fk_torch_quat", "smplx"),
        ("fk_torch_aa", "smplx"),
        ("fk_torch_quat", "pymotion_torch"),
    ],
}
RATIO_PAIRS[FWD_LOSS_BWD] = RATIO_PAIRS[FWD_BWD]


def contended(results: Results, dtype: str, threads: int, mode: str, key: str, batch: int) -> bool:
    """More than 1.5x slower with `threads` threads than with 1 (the † mark)."""
    mine = lookup(results, dtype, threads, mode, key, batch)
    single = lookup(results, dtype, 1, mode, key, batch)
    return mine is not None and single is not None and mine.seconds > 1.5 * single.seconds


def speedup(results, dtype, threads, mode, ours, theirs, batch) -> Optional[float]:
    mine = lookup(results, dtype, threads, mode, ours, batch)
    peer = lookup(results, dtype, threads, mode, theirs, batch)
    if mine is None or peer is None:
        return None
    return peer.seconds / mine.seconds


def target_lines(results: Results) -> list[str]:
    """The performance targets, each met / not met with the measured figure
    (float32, 1 thread)."""
    dtype, threads = "float32", 1
    labels = {impl.key: impl.label for impl in results.impls}
    lines = []

    def verdict(ok: Optional[bool]) -> str:
        return "not measured" if ok is None else ("**met**" if ok else "**not met**")

    fk4096 = lookup(results, dtype, threads, FWD, "fk_np_quat", 4096)
    rate = None if fk4096 is None else mjoints_per_second(4096, fk4096.seconds)
    lines.append(
        f"- [{'x' if rate is not None and rate >= 300 else ' '}] B=4096: fastkin >= 300 M joints/s — "
        f"{verdict(None if rate is None else rate >= 300)}: {labels['fk_np_quat']} "
        f"{'n/a' if rate is None else f'{rate:.0f} M joints/s'}"
    )

    ratio = speedup(results, dtype, threads, FWD, "fk_np_quat", "smplx", 4096)
    torch_ratio = speedup(results, dtype, threads, FWD, "fk_torch_aa", "smplx", 4096)
    torch_quat_ratio = speedup(results, dtype, threads, FWD, "fk_torch_quat", "smplx", 4096)
    extra = []
    if torch_quat_ratio is not None:
        extra.append(f"{labels['fk_torch_quat']}: {torch_quat_ratio:.1f}x")
    if torch_ratio is not None:
        extra.append(f"{labels['fk_torch_aa']}, same input as smplx: {torch_ratio:.1f}x")
    lines.append(
        f"- [{'x' if ratio is not None and ratio >= 100 else ' '}] B=4096: fastkin >= 100x smplx (forward) — "
        f"{verdict(None if ratio is None else ratio >= 100)}: {labels['fk_np_quat']} "
        f"{'n/a' if ratio is None else f'{ratio:.1f}x'}" + (f" (torch paths: {'; '.join(extra)})" if extra else "")
    )

    ratio = speedup(results, dtype, threads, FWD, "fk_np_quat", "numpy", 4096)
    lines.append(
        f"- [{'x' if ratio is not None and ratio >= 4 else ' '}] B=4096: fastkin >= 4x best numpy — "
        f"{verdict(None if ratio is None else ratio >= 4)}: {labels['fk_np_quat']} vs {labels['numpy']} "
        f"{'n/a' if ratio is None else f'{ratio:.1f}x'}"
    )

    single = lookup(results, dtype, threads, FWD, "fk_np_quat", 1)
    micros = None if single is None else single.seconds * 1e6
    matrix_single = lookup(results, dtype, threads, FWD, "fk_np_mat", 1)
    lines.append(
        f"- [{'x' if micros is not None and micros <= 5 else ' '}] B=1: <= 5 µs per call (numpy path) — "
        f"{verdict(None if micros is None else micros <= 5)}: {labels['fk_np_quat']} "
        f"{'n/a' if micros is None else f'{micros:.2f} µs'}"
        + ("" if matrix_single is None else f" (matrix input: {matrix_single.seconds * 1e6:.2f} µs)")
    )

    ratio = speedup(results, dtype, threads, FWD_BWD, "fk_torch_quat", "smplx", 4096)
    extra = []
    aa_ratio = speedup(results, dtype, threads, FWD_BWD, "fk_torch_aa", "smplx", 4096)
    if aa_ratio is not None:
        extra.append(f"{labels['fk_torch_aa']}, same input as smplx: {aa_ratio:.1f}x")
    step_ratio = speedup(results, dtype, threads, FWD_LOSS_BWD, "fk_torch_quat", "smplx", 4096)
    if step_ratio is not None:
        extra.append(f"with the loss in the timing ({FWD_LOSS_BWD}): {step_ratio:.1f}x")
    lines.append(
        f"- [{'x' if ratio is not None and ratio >= 50 else ' '}] B=4096: forward+backward through torch >= 50x "
        f"smplx autograd — {verdict(None if ratio is None else ratio >= 50)}: {labels['fk_torch_quat']} "
        f"{'n/a' if ratio is None else f'{ratio:.1f}x'}" + (f" ({'; '.join(extra)})" if extra else "")
    )
    return lines


def summary_lines(results: Results) -> list[str]:
    """Key figures: float32, 1 thread, B=1 and B=4096."""
    dtype, threads = "float32", 1
    if (dtype, threads, FWD) not in results.times:
        return []
    lines = ["## Key figures (float32, 1 thread)", ""]
    lines.append(
        "| implementation | B=1 forward, µs/call | B=4096 forward, M joints/s | B=4096 forward+backward, M joints/s "
        "| B=4096 forward+loss+backward, M joints/s |"
    )
    lines.append("|---|---:|---:|---:|---:|")
    for impl in results.impls:
        single = lookup(results, dtype, threads, FWD, impl.key, 1)
        forward = lookup(results, dtype, threads, FWD, impl.key, 4096)
        gradients = [lookup(results, dtype, threads, mode, impl.key, 4096) for mode in (FWD_BWD, FWD_LOSS_BWD)]
        if single is None and forward is None and gradients == [None, None]:
            continue
        cells = [
            "—" if single is None else f"{single.seconds * 1e6:.1f}",
            "—" if forward is None else f"{mjoints_per_second(4096, forward.seconds):.3g}" + ("*" if forward.scale != 1 else ""),
        ] + ["—" if m is None else f"{mjoints_per_second(4096, m.seconds):.3g}" for m in gradients]
        lines.append(f"| {impl.label} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def write_report(results: Results, info: dict, load_before, load_after, bandwidth, quick: bool) -> str:
    labels = {impl.key: impl.label for impl in results.impls}
    out = []
    out.append("# Forward kinematics benchmark")
    out.append("")
    out.append(f"Command: `{command_line()}`" + (" (quick smoke run, not the full benchmark)" if quick else ""))
    out.append("")
    out.append(f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")
    out.append(
        f"- fastkin {info.get('version')}: ISA `{info.get('isa')}`, compiler {info.get('compiler')}, "
        f"default threads {info.get('num_threads')}"
    )
    out.append(f"- fastkin extension: `{extension_identity()}`")
    out.append(f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores; {cpu_flags()})")
    out.append(f"- Python {platform.python_version()} on {platform.system()} {platform.release()}")
    out.append(
        f"- numpy {np.__version__}, torch {package_version('torch', torch)}, smplx "
        f"{package_version('smplx', smplx_lbs)}, Pinocchio {package_version('pin', pin)}, "
        f"pymotion (upc-pymotion) {package_version('upc-pymotion', pymotion_np)}"
    )
    out.append(
        f"- Load average (1 min) before / after the run: {load_before:.2f} / {load_after:.2f}; "
        f"run took {results.seconds / 60:.1f} min"
    )
    out.append(
        f"- Memory copy bandwidth (numpy, 64 MB, best of 5) before / after the run: {bandwidth[0]:.1f} / "
        f"{bandwidth[1]:.1f} GB/s: this VM's share of memory bandwidth moves with its neighbours' load, and "
        "the large-batch figures move with it"
    )
    out.append("")
    out.extend(summary_lines(results))
    out.append("## Setup")
    out.append("")
    out.append(
        f"SMPL-like skeleton, {NUM_JOINTS} joints, parents `{PARENTS}`; random offsets "
        f"(normal, sigma 0.1 m) and random rotations (uniform random axes, angles uniform in [0, 1] rad), "
        f"fixed seeds. Batch sizes B = {', '.join(map(str, results.sizes))}; dtypes "
        f"{', '.join(d.__name__ for d in results.dtypes)}; threads {', '.join(map(str, results.thread_counts))} "
        "(fastkin.set_num_threads and torch.set_num_threads both set to the count)."
    )
    out.append("")
    out.append("Implementations:")
    out.append("")
    out.append(
        f"- **{labels['fk_np_quat']}** / **{labels['fk_np_mat']}**: `fastkin.fk_batch` on numpy (B, J, 4) xyzw "
        "quaternions / (B, J, 3, 3) matrices (matrices precomputed outside the timing)."
    )
    out.append(
        f"- **{labels['fk_torch_quat']}**: `fastkin.fk_batch` on CPU torch tensors (C++ custom ops, forward and "
        f"backward). **{labels['fk_torch_aa']}**: the same fed smplx's input, "
        "`fastkin.rotations.axis_angle_to_quat` inside the timed call — the like-for-like comparison with smplx."
    )
    out.append(
        f"- **{labels['smplx']}**: `smplx.lbs.batch_rodrigues` on the axis-angles, then "
        "`smplx.lbs.batch_rigid_transform(rot_mats, rest_joints, parents)` with the world rest joint positions "
        "(offsets accumulated down the tree). Its output also includes the rest-pose-relative transforms, "
        "which it computes whether needed or not."
    )
    out.append(
        f"- **{labels['pinocchio']}**: a `pinocchio.Model` of {NUM_JOINTS} `JointModelSpherical` joints placed at "
        "`pin.SE3(identity, offset)`, `pin.forwardKinematics(model, data, q)` called per sample in a Python loop "
        "(q: the (x, y, z, w) quaternion of each joint, prebuilt as one float64 array per sample; results are left "
        "in `data.oMi`, not copied out). Pinocchio is float64 only: its float32 rows are float64 runs. "
        f"For B > {PINOCCHIO_MAX_SAMPLES} it is timed on the first {PINOCCHIO_MAX_SAMPLES} samples and the "
        "per-sample time is scaled to B (cells marked *). No forward+backward (it has no reverse-mode "
        "gradient of this loss)."
    )
    out.append(
        f"- **{labels['pymotion_np']}** / **{labels['pymotion_torch']}**: `pymotion.ops.skeleton_np.fk` / "
        "`pymotion.ops.skeleton_torch.fk` on wxyz quaternions (4x4 homogeneous matrices, one joint at a time); "
        "the numpy version computes in float64 whatever the input dtype. Backward through torch autograd."
    )
    out.append(
        f"- **{labels['numpy']}**: `NumpyFK` in bench/fk.py, the best plain-numpy baseline: joint-major "
        "structure of arrays (batch innermost), one vectorised quaternion-to-matrix, one pass over the joints "
        "with a batched 3x3 einsum each, joint translations in one einsum and positions in one "
        "ancestry-matrix product; batches over 4096 in chunks of 4096. Outputs are strided views "
        "(not copied back to batch-major)."
    )
    out.append("")
    out.append(
        "Forward+backward: the forward, then its backward with fixed random output gradients w, w2 handed to "
        "it, `torch.autograd.grad((positions, world_rotations), rotations, (w, w2))` — the FK's own two passes, "
        "as an op's backward is timed (the gradient of loss = sum(positions * w) + sum(world_rotations * w2)). "
        "Forward+loss+backward: that loss computed by torch and differentiated inside the timing, as in a "
        "training step. The loss's elementwise products, sums and their backward cost every implementation the "
        "same (~1 ms at B=4096: they read and write arrays as large as the outputs); they are a small part of "
        "the peers' time and about half of fastkin's."
    )
    out.append("")
    out.append(
        "Timing: `time.perf_counter`, best of several repeats, each repeat enough calls to last a fraction of a "
        "second; the implementations of one (dtype, threads, B) are timed round-robin. Numpy-based peers "
        "(numpy baseline, pymotion numpy, Pinocchio) are single-threaded whatever the thread setting "
        "(OPENBLAS_NUM_THREADS=1). The machine is shared and noisy: treat differences under ~20% as noise."
    )
    out.append("")
    if results.skipped:
        out.append("Skipped:")
        out.append("")
        for note in results.skipped:
            out.append(f"- {note}")
        out.append("")

    out.append("## Correctness checks (before timing)")
    out.append("")
    out.append("Maximum |positions − fastkin numpy (quat)| over all batch sizes (metres; bones ~0.1 m):")
    out.append("")
    dtype_names = [d.__name__ for d in results.dtypes]
    out.append("| implementation | " + " | ".join(dtype_names) + " |")
    out.append("|---|" + "---|" * len(dtype_names))
    for impl in results.impls:
        errors = results.position_errors.get(impl.key)
        if not errors:
            continue
        out.append(
            f"| {impl.label} | " + " | ".join(f"{errors[d]:.1e}" if d in errors else "—" for d in dtype_names) + " |"
        )
    out.append("")
    if results.gradient_errors:
        out.append(
            "Gradient cross-checks (B <= 4096): maximum absolute difference, and in brackets that divided by the "
            "largest reference gradient component:"
        )
        out.append("")
        out.append("| check | " + " | ".join(dtype_names) + " |")
        out.append("|---|" + "---|" * len(dtype_names))
        for label, errors in results.gradient_errors.items():
            cells = [f"{errors[d][0]:.1e} ({errors[d][1]:.1e})" if d in errors else "—" for d in dtype_names]
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
    if results.failures:
        out.append("Failed checks (these combinations were not timed):")
        out.append("")
        for key, dtype, batch, why in results.failures:
            out.append(f"- {labels[key]}, {dtype}, B={batch}: {why}")
        out.append("")
    else:
        out.append("All implementations agreed with fastkin within tolerance (float32 1e-4, float64 1e-6).")
        out.append("")

    out.append("## Results")
    out.append("")
    out.append(
        "Cells: million joints per second (B × 24 / time; higher is better), and in brackets the time per "
        "call. For B=1 the time per call is the figure that matters. * = extrapolated from a subset of samples; "
        f"‡ = one timed call (calls over {SINGLE_CALL:g} s are not repeated, to bound the run); "
        "† = more than 1.5x slower than the same implementation with 1 thread, i.e. hurt by contention for the "
        "two cores (see the load averages) rather than helped by the second thread."
    )
    out.append("")
    for dtype in dtype_names:
        for threads in results.thread_counts:
            for mode in MODES:
                table = results.times.get((dtype, threads, mode))
                if not table:
                    continue
                out.append(f"### {dtype}, {threads} thread{'s' if threads > 1 else ''}, {mode}")
                out.append("")
                loads = results.loads.get((dtype, threads, mode), [])
                if loads:
                    out.append(f"1-minute load average while measured: {min(loads):.2f}–{max(loads):.2f}")
                    out.append("")
                out.append("| implementation | " + " | ".join(f"B={b}" for b in results.sizes) + " |")
                out.append("|---|" + "---:|" * len(results.sizes))
                for impl in results.impls:
                    if impl.key not in table:
                        continue
                    row = table[impl.key]
                    cells = [
                        format_cell(b, row.get(b), None if threads == 1 else lookup(results, dtype, 1, mode, impl.key, b))
                        for b in results.sizes
                    ]
                    out.append(f"| {impl.label} | " + " | ".join(cells) + " |")
                out.append("")

    out.append("## Ratios")
    out.append("")
    out.append(
        "Speed-up of fastkin over each peer (peer time / fastkin time, same run; > 1 means fastkin is faster). "
        "† = one of the two was hurt by core contention (marked † above): that ratio says more about the "
        "machine's load than about the code."
    )
    out.append("")
    for dtype in dtype_names:
        for threads in results.thread_counts:
            for mode in MODES:
                rows = []
                for ours, theirs in RATIO_PAIRS[mode]:
                    values = [speedup(results, dtype, threads, mode, ours, theirs, b) for b in results.sizes]
                    if all(v is None for v in values):
                        continue
                    cells = []
                    for b, v in zip(results.sizes, values):
                        if v is None:
                            cells.append("—")
                            continue
                        mark = "†" if threads != 1 and any(
                            contended(results, dtype, threads, mode, key, b) for key in (ours, theirs)
                        ) else ""
                        cells.append((f"{v:.1f}x" if v < 100 else f"{v:.0f}x") + mark)
                    rows.append(f"| {labels[ours]} / {labels[theirs]} | " + " | ".join(cells) + " |")
                if not rows:
                    continue
                out.append(f"### {dtype}, {threads} thread{'s' if threads > 1 else ''}, {mode}")
                out.append("")
                out.append("| fastkin / peer | " + " | ".join(f"B={b}" for b in results.sizes) + " |")
                out.append("|---|" + "---:|" * len(results.sizes))
                out.extend(rows)
                out.append("")

    out.append("## Targets (float32, 1 thread)")
    out.append("")
    out.extend(target_lines(results))
    out.append("")
    loads = results.loads.get(("float32", 1, FWD), [])
    if loads and max(loads) > 0.5 * (os.cpu_count() or 1):
        out.append(
            f"These figures were measured while other work kept the machine busy (1-minute load average "
            f"{min(loads):.2f}–{max(loads):.2f} on {os.cpu_count()} cores): every implementation ran slower than "
            "on an idle machine, the absolute rates more than the ratios. They are what was measured, not "
            "corrected."
        )
        out.append("")
    return "\n".join(out)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke test: B=1 and 4096, float32, 1 thread")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report path (default: bench/results/fk.md; with --quick the report is only printed unless --out is given)",
    )
    parser.add_argument(
        "--time-per-case",
        type=float,
        default=None,
        help="seconds of timing per implementation and configuration (default 0.6, --quick 0.1)",
    )
    args = parser.parse_args(argv)

    if args.quick:
        sizes, dtypes, thread_counts, repeats = QUICK_SIZES, (np.float32,), (1,), 3
        time_per_case = args.time_per_case or 0.1
    else:
        sizes, dtypes, thread_counts, repeats = FULL_SIZES, (np.float32, np.float64), (1, 2), 5
        time_per_case = args.time_per_case or 0.6
    out_path = args.out
    if out_path is None and not args.quick:
        out_path = Path(__file__).resolve().parent / "results" / "fk.md"

    info = fastkin.build_info()
    print(f"fastkin {info}; CPU {cpu_model()}; torch {package_version('torch', torch)}; numpy {np.__version__}")
    load_before, bandwidth_before = os.getloadavg()[0], copy_bandwidth()
    results = run_benchmark(sizes, dtypes, thread_counts, time_per_case, repeats)
    load_after, bandwidth_after = os.getloadavg()[0], copy_bandwidth()
    report = write_report(results, info, load_before, load_after, (bandwidth_before, bandwidth_after), args.quick)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(report, encoding="utf-8")
        print(f"\nwrote {out_path}")
    if args.quick or out_path is None:
        print()
        print(report)
    else:
        print()
        print("\n".join(target_lines(results)))
    print(f"\ntotal {results.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
