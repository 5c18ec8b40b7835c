// Positional IK for limbs and chains: the analytic two-bone solver and
// FABRIK (forward and backward reaching IK) on chains and multi-end-effector
// trees (docs/ik.md, "Two-bone and FABRIK", has the rules).
//
// Points are C-contiguous xyz triples; matrices row-major 3x3. Kernels write
// into outputs the caller allocated; big batches are split over the thread
// pool.
#pragma once
#include <cstdint>

namespace fastkin {

// Two-bone IK for `batch` limbs root -> mid -> end: the new mid and end
// positions that keep both bone lengths, put the end on the target when
// |target - root| is within [|l1 - l2|, l1 + l2] and otherwise on the ray
// from the root towards the target at the nearest reachable distance. The
// mid bends in the plane through the root-target line and the pole point
// (`poles` may be null: keep the current bend plane). `upper_rotations` and
// `lower_rotations` (both null, or both (batch, 3, 3)) receive the world
// rotations taking the old bones (and bend-plane normal) to the new ones.
// Arrays may be shared between frames with a zero stride: the `*_stride`
// arguments are the distance, in scalars, between consecutive frames (3, or
// 0 for one point used by every frame). Returns false when an input or an
// output is not finite.
template <class T>
bool two_bone_ik(const T* roots, int64_t root_stride, const T* mids, int64_t mid_stride, const T* ends,
                 int64_t end_stride, const T* targets, int64_t target_stride, const T* poles, int64_t pole_stride,
                 int64_t batch, T* new_mids, T* new_ends, T* upper_rotations, T* lower_rotations);

// FABRIK settings shared by every frame.
template <class T>
struct FabrikOptions {
  int32_t max_iters = 100;  // passes (backward + forward) at most, >= 1
  // A frame has converged when every end effector is within
  // tol + relative_tol * reach of its target, where reach is the frame's
  // summed length of the bones that lead to a target. Both >= 0.
  T tol = T(0);
  T relative_tol = T(0);
  bool fixed_root = true;  // roots keep their positions
};

// Multi-end-effector FABRIK on `batch` frames of `num_joints` joints
// (parents[j] < j, roots -1): joint positions (batch, J, 3), targets
// (batch, num_targets, 3) for the distinct joints target_joints
// (num_targets, each in [0, J)). Positions and targets may be shared by
// every frame (stride 0) or per frame (stride J*3 and num_targets*3). Writes
// out_positions (batch, J, 3), iterations (batch) and converged (batch, 1
// or 0). A frame stops when it converges, after max_iters passes, or at
// its second stall (a pass that moves no joint by more than tol / 1000; the
// first one bends the chain a little so that a straight chain can leave the
// line through its target). Every bone length |p_j - p_parent| of the input
// is kept. Scratch
// is per thread and reused, so a small call allocates nothing after the
// first. Returns false when an output, a bone length or a distance to a
// target is not finite (overflow).
template <class T>
bool fabrik(const int32_t* parents, int64_t num_joints, const int32_t* target_joints, int64_t num_targets,
            const T* positions, int64_t positions_stride, const T* targets, int64_t targets_stride, int64_t batch,
            const FabrikOptions<T>& options, T* out_positions, int32_t* iterations, uint8_t* converged);

}  // namespace fastkin
