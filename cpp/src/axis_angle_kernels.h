// Internal: the axis-angle kernels compiled once per instruction set
// (axis_angle_block.inl) and the table the dispatcher in rotations.cpp picks from.
#pragma once
#include <cstdint>

namespace fastkin::detail {

template <class T>
struct AxisAngleKernel {
  // xyzw quaternions (count, 4) of axis-angle vectors (count, 3).
  void (*forward)(const T* axis_angle, int64_t count, T* quaternions);
  // The vector-Jacobian product: grad_axis_angle (count, 3) of grad_quaternions (count, 4).
  void (*backward)(const T* axis_angle, const T* grad_quaternions, int64_t count, T* grad_axis_angle);
};

template <class T> AxisAngleKernel<T> axis_angle_kernel_scalar();
template <class T> AxisAngleKernel<T> axis_angle_kernel_avx2();
template <class T> AxisAngleKernel<T> axis_angle_kernel_avx512();

}  // namespace fastkin::detail
