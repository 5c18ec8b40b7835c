// Rotation-representation conversions. matrix_to_quat: per-matrix scalar
// code that GCC vectorises poorly but that is branch-light and
// cache-friendly. axis_angle_to_quat: the per-ISA kernels of
// axis_angle_block.inl. Batches big enough to pay for threads are split over
// the pool.
#include "fastkin/rotations.h"

#include <atomic>
#include <cmath>

#include "axis_angle_kernels.h"
#include "dispatch.h"
#include "fastkin/parallel.h"

namespace fastkin {
namespace {

// Below this many matrices (or axis-angles) per worker the pool costs more than it saves.
constexpr int64_t kMinMatricesPerThread = 32768;

template <class T>
const detail::AxisAngleKernel<T>& axis_angle_kernel() {
  static const detail::AxisAngleKernel<T> k = detail::for_this_cpu<detail::AxisAngleKernel<T>>(
      &detail::axis_angle_kernel_scalar<T>, &detail::axis_angle_kernel_avx2<T>,
      &detail::axis_angle_kernel_avx512<T>);
  return k;
}

template <class T>
inline bool one_matrix_to_quat(const T* m, T* q) {
  const T m00 = m[0], m01 = m[1], m02 = m[2], m10 = m[3], m11 = m[4], m12 = m[5], m20 = m[6], m21 = m[7],
          m22 = m[8];
  // Each candidate is 4 q_k q for the component k it is built around; the
  // largest diagonal term 4 q_k^2 keeps the division well away from zero.
  const T diagonal[4] = {T(1) + m00 - m11 - m22, T(1) + m11 - m00 - m22, T(1) + m22 - m00 - m11,
                         T(1) + m00 + m11 + m22};
  int best = 0;
  for (int k = 1; k < 4; ++k)
    if (diagonal[k] > diagonal[best]) best = k;
  T c[4];
  switch (best) {
    case 0: c[0] = diagonal[0], c[1] = m01 + m10, c[2] = m02 + m20, c[3] = m21 - m12; break;
    case 1: c[0] = m01 + m10, c[1] = diagonal[1], c[2] = m12 + m21, c[3] = m02 - m20; break;
    case 2: c[0] = m02 + m20, c[1] = m12 + m21, c[2] = diagonal[2], c[3] = m10 - m01; break;
    default: c[0] = m21 - m12, c[1] = m02 - m20, c[2] = m10 - m01, c[3] = diagonal[3]; break;
  }
  T scale = T(1) / std::sqrt(c[0] * c[0] + c[1] * c[1] + c[2] * c[2] + c[3] * c[3]);
  if (c[3] < T(0)) scale = -scale;  // w >= 0
  for (int k = 0; k < 4; ++k) q[k] = c[k] * scale;
  return std::isfinite(q[0]) && std::isfinite(q[1]) && std::isfinite(q[2]) && std::isfinite(q[3]);
}

}  // namespace

template <class T>
bool matrix_to_quat(const T* matrices, int64_t count, T* quaternions) {
  std::atomic<bool> finite{true};
  parallel_ranges(count, 1, kMinMatricesPerThread, [&](int64_t begin, int64_t end) {
    bool ok = true;
    for (int64_t i = begin; i < end; ++i) ok &= one_matrix_to_quat(matrices + 9 * i, quaternions + 4 * i);
    if (!ok) finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
}

template <class T>
void axis_angle_to_quat(const T* axis_angle, int64_t count, T* quaternions) {
  const auto forward = axis_angle_kernel<T>().forward;
  parallel_ranges(count, 1, kMinMatricesPerThread, [&](int64_t begin, int64_t end) {
    forward(axis_angle + 3 * begin, end - begin, quaternions + 4 * begin);
  });
}

template <class T>
void axis_angle_to_quat_backward(const T* axis_angle, const T* grad_quaternions, int64_t count,
                                 T* grad_axis_angle) {
  const auto backward = axis_angle_kernel<T>().backward;
  parallel_ranges(count, 1, kMinMatricesPerThread, [&](int64_t begin, int64_t end) {
    backward(axis_angle + 3 * begin, grad_quaternions + 4 * begin, end - begin, grad_axis_angle + 3 * begin);
  });
}

template bool matrix_to_quat<float>(const float*, int64_t, float*);
template bool matrix_to_quat<double>(const double*, int64_t, double*);
template void axis_angle_to_quat<float>(const float*, int64_t, float*);
template void axis_angle_to_quat<double>(const double*, int64_t, double*);
template void axis_angle_to_quat_backward<float>(const float*, const float*, int64_t, float*);
template void axis_angle_to_quat_backward<double>(const double*, const double*, int64_t, double*);

}  // namespace fastkin
