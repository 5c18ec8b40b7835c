// Internal: the fk kernels compiled once per instruction set (fk_block.inl
// included by fk_scalar.cpp, fk_avx2.cpp, fk_avx512.cpp) and the table the
// dispatcher in fk.cpp picks from.
#pragma once
#include <cstdint>

#include "fastkin/fk.h"

namespace fastkin::detail {

template <class T>
struct FkKernel {
  int lanes;  // poses processed together in one SIMD block
  // Forward over poses [begin, end). scratch holds fk_scratch_size() values;
  // see fk_forward for stream_large_outputs.
  bool (*forward)(const FkInputs<T>& in, int64_t begin, int64_t end, T* scratch,
                  T* world_rotations, T* world_positions, bool stream_large_outputs);
  // Backward over poses [begin, end). With shared offsets the offset gradient
  // is added into offset_sum (J*3 doubles) instead of grads.offsets.
  bool (*backward)(const FkInputs<T>& in, int64_t begin, int64_t end, T* scratch,
                   const T* grad_world_rotations, const T* grad_world_positions,
                   const FkGradients<T>& grads, double* offset_sum);
};

// Values of scratch one worker needs for a block of `lanes` poses.
inline int64_t fk_scratch_size(int64_t num_joints, int lanes) {
  return num_joints * 33 * lanes;  // forward: world, input, output buffer; backward: 30 and offset sums
}

template <class T> FkKernel<T> fk_kernel_scalar();
template <class T> FkKernel<T> fk_kernel_avx2();
template <class T> FkKernel<T> fk_kernel_avx512();

}  // namespace fastkin::detail
