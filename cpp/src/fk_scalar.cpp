// fk kernels built with the scalar instruction set flags (see CMakeLists.txt).
#include "fk_kernels.h"

#define FASTKIN_ISA_NS scalar
#include "fk_block.inl"

namespace fastkin::detail {

template <>
FkKernel<float> fk_kernel_scalar<float>() {
  return scalar::make_kernel<float, 4>();
}

template <>
FkKernel<double> fk_kernel_scalar<double>() {
  return scalar::make_kernel<double, 2>();
}

}  // namespace fastkin::detail
