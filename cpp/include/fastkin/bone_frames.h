// Rest-pose bone frames: the per-joint products that turn world rotations
// into bone-aligned world rotations and back, and their vector-Jacobian
// products (docs/bone_frames.md has the math).
//
// Every matrix is a row-major 3x3. Batched arrays are C-contiguous
// (batch, J, 3, 3); `constants` is (J, 3, 3) and holds C_j = W0_jᵀ A_j, the
// rest world rotation of joint j undone, then its rest bone frame A_j.
#pragma once
#include <cstdint>

namespace fastkin {

// out_j = M_j C_j, or M_j C_jᵀ when transpose_constants, for every pose and
// joint. With M = world rotations this is Q = W C (world -> bone-aligned);
// with M = dL/dQ and the transpose it is the VJP dL/dW = dL/dQ Cᵀ. `out` may
// be `matrices` (in place). Returns false when an output is not finite.
template <class T>
bool bone_right_multiply(const T* matrices, const T* constants, int64_t batch, int64_t num_joints,
                         bool transpose_constants, T* out);

// Local rotations from bone-aligned world rotations Q: W_j = Q_j C_jᵀ, then
// L_j = W_parent(j)ᵀ W_j (roots: L_j = W_j). parents[j] < j, roots -1.
// Returns false when an output is not finite.
template <class T>
bool bone_world_to_local(const int32_t* parents, const T* bone_rotations, const T* constants, int64_t batch,
                         int64_t num_joints, T* local_rotations);

// VJP of bone_world_to_local with respect to bone_rotations, given dL/dL_j
// for every joint. Returns false when a gradient is not finite.
template <class T>
bool bone_world_to_local_backward(const int32_t* parents, const T* bone_rotations, const T* constants,
                                  const T* grad_local_rotations, int64_t batch, int64_t num_joints,
                                  T* grad_bone_rotations);

}  // namespace fastkin
