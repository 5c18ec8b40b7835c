// fk kernels built with the avx2 instruction set flags (see CMakeLists.txt).
#include "fk_kernels.h"

#define FASTKIN_ISA_NS avx2
#include "fk_block.inl"

namespace fastkin::detail {

template <>
FkKernel<float> fk_kernel_avx2<float>() {
  return avx2::make_kernel<float, 8>();
}

template <>
FkKernel<double> fk_kernel_avx2<double>() {
  return avx2::make_kernel<double, 4>();
}

}  // namespace fastkin::detail
