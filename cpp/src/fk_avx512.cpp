// fk kernels built with the avx512 instruction set flags (see CMakeLists.txt).
// float blocks are 8 lanes: measured faster here than 16 (the 16 x 16
// transposes spill registers), while still using AVX-512 instructions.
#include "fk_kernels.h"

#define FASTKIN_ISA_NS avx512
#include "fk_block.inl"

namespace fastkin::detail {

template <>
FkKernel<float> fk_kernel_avx512<float>() {
  return avx512::make_kernel<float, 8>();
}

template <>
FkKernel<double> fk_kernel_avx512<double>() {
  return avx512::make_kernel<double, 8>();
}

}  // namespace fastkin::detail
