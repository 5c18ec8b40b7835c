// Internal: the skinning kernels compiled once per instruction set
// (skin_block.inl included by skin_scalar.cpp, skin_avx2.cpp,
// skin_avx512.cpp) and the table the dispatcher in skinning.cpp picks from.
#pragma once
#include <cstdint>

#include "fastkin/skinning.h"

namespace fastkin::detail {

// Per-joint data of every pose as the kernels read it: LBS transforms padded
// to 16 values (three rows of 4, then 4 zeros) so one aligned 16-lane load
// takes a whole matrix; DQS dual quaternions as given (8 values).
constexpr int kLinearStride = 16;
constexpr int kDualStride = 8;

// Weight sums further than this from 1 are reported as unnormalized.
constexpr double kSumTolerance = 1e-3;

template <class T>
struct SkinKernel {
  // Whether all count joint indices are in [0, J) and weights finite, >= 0.
  bool (*influences_valid)(int64_t count, int64_t num_joints, const int32_t* joint_indices, const T* weights);
  // Weights divided by their vertex's sum (normalized (V, K), inverse_sums
  // (V)). Returns how many sums are off 1 by more than kSumTolerance, or -1
  // when a vertex's weights are all zero.
  int64_t (*normalize_weights)(int64_t V, int64_t K, const T* weights, T* normalized, T* inverse_sums);
  // Skins vertices [begin, end) of pose b into out (B, V, 3), with
  // normalised weights. Returns false when an output is not finite.
  using Forward = bool (*)(const SkinInputs<T>& in, const T* table, int64_t b, int64_t begin, int64_t end, T* out);
  // Backward over vertices [begin, end) of every pose: adds into grad_table
  // (B, J, stride) and grad_weights (V, K; with respect to the normalised
  // weights), and writes or adds grad_vertices.
  using Backward = void (*)(const SkinInputs<T>& in, const T* table, int64_t begin, int64_t end, const T* grad_out,
                            T* grad_table, T* grad_vertices, T* grad_weights);
  Forward linear_forward;
  Backward linear_backward;
  Forward dual_forward;
  Backward dual_backward;
};

template <class T> SkinKernel<T> skin_kernel_scalar();
template <class T> SkinKernel<T> skin_kernel_avx2();
template <class T> SkinKernel<T> skin_kernel_avx512();

}  // namespace fastkin::detail
