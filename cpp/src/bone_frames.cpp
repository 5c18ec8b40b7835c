// Bone-frame kernels: small constant 3x3 products per joint, memory-bound.
// Plain fixed-size loops that GCC unrolls and vectorises at -O3; batches
// large enough to pay for threads are split over the pool.
#include "fastkin/bone_frames.h"

#include <atomic>
#include <cstdint>

#include "fastkin/parallel.h"

namespace fastkin {
namespace {

// Below this many joints per worker the pool costs more than it saves.
constexpr int64_t kMinJointsPerThread = 16384;

// out = a b, out = a bᵀ or out = aᵀ b (row-major 3x3). The result is built
// in registers first, so out may alias a or b.
enum class Form { AB, ABt, AtB };

template <Form F, class T>
inline T a_at(const T* a, int i, int m) {
  return F == Form::AtB ? a[3 * m + i] : a[3 * i + m];
}
template <Form F, class T>
inline T b_at(const T* b, int m, int k) {
  return F == Form::ABt ? b[3 * k + m] : b[3 * m + k];
}

template <Form F, class T>
inline void mul3(const T* a, const T* b, T* out) {
  T r[9];
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k)
      r[3 * i + k] = a_at<F>(a, i, 0) * b_at<F>(b, 0, k) + a_at<F>(a, i, 1) * b_at<F>(b, 1, k) +
                     a_at<F>(a, i, 2) * b_at<F>(b, 2, k);
  for (int i = 0; i < 9; ++i) out[i] = r[i];
}

// out += a b or out += a bᵀ.
template <Form F, class T>
inline void mul3_add(const T* a, const T* b, T* out) {
  T r[9];
  mul3<F>(a, b, r);
  for (int i = 0; i < 9; ++i) out[i] += r[i];
}

// True when all n values are finite (x - x is 0 only for finite x); an
// integer AND, so the loop vectorises.
template <class T>
inline bool all_finite(const T* values, int64_t n) {
  int finite = 1;
  for (int64_t i = 0; i < n; ++i) finite &= (values[i] - values[i] == T(0));
  return finite != 0;
}

// Runs body(begin, end) over pose ranges (threads for big batches) and
// returns whether every range reported finite outputs.
template <class Body>
bool for_pose_ranges(int64_t batch, int64_t num_joints, Body&& body) {
  std::atomic<bool> finite{true};
  parallel_ranges(batch, num_joints, kMinJointsPerThread, [&](int64_t begin, int64_t end) {
    if (!body(begin, end)) finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
}

template <Form F, class T>
bool right_multiply(const T* matrices, const T* constants, int64_t batch, int64_t num_joints, T* out) {
  return for_pose_ranges(batch, num_joints, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const T* m = matrices + b * num_joints * 9;
      T* o = out + b * num_joints * 9;
      for (int64_t j = 0; j < num_joints; ++j) mul3<F>(m + 9 * j, constants + 9 * j, o + 9 * j);
    }
    return all_finite(out + begin * num_joints * 9, (end - begin) * num_joints * 9);
  });
}

}  // namespace

template <class T>
bool bone_right_multiply(const T* matrices, const T* constants, int64_t batch, int64_t num_joints,
                         bool transpose_constants, T* out) {
  return transpose_constants ? right_multiply<Form::ABt>(matrices, constants, batch, num_joints, out)
                             : right_multiply<Form::AB>(matrices, constants, batch, num_joints, out);
}

template <class T>
bool bone_world_to_local(const int32_t* parents, const T* bone_rotations, const T* constants, int64_t batch,
                         int64_t num_joints, T* local_rotations) {
  const int64_t size = num_joints * 9;
  return for_pose_ranges(batch, num_joints, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const T* q = bone_rotations + b * size;
      T* out = local_rotations + b * size;
      // World rotations first (W_j = Q_j C_jᵀ), then each joint, children
      // before parents, becomes W_pᵀ W_j: its parent is still a world rotation.
      for (int64_t j = 0; j < num_joints; ++j) mul3<Form::ABt>(q + 9 * j, constants + 9 * j, out + 9 * j);
      for (int64_t j = num_joints - 1; j >= 0; --j) {
        const int32_t p = parents[j];
        if (p >= 0) mul3<Form::AtB>(out + 9 * p, out + 9 * j, out + 9 * j);
      }
    }
    return all_finite(local_rotations + begin * size, (end - begin) * size);
  });
}

// With W_j = Q_j C_jᵀ and L_j = W_pᵀ W_j, a loss's gradient G_j = dL/dL_j
// pulls back to dL/dW_j = W_p G_j (G_j for roots) + sum over children k of
// W_k G_kᵀ, and dL/dQ_j = (dL/dW_j) C_j.
template <class T>
bool bone_world_to_local_backward(const int32_t* parents, const T* bone_rotations, const T* constants,
                                  const T* grad_local_rotations, int64_t batch, int64_t num_joints,
                                  T* grad_bone_rotations) {
  const int64_t size = num_joints * 9;
  return for_pose_ranges(batch, num_joints, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const T* q = bone_rotations + b * size;
      const T* g = grad_local_rotations + b * size;
      T* out = grad_bone_rotations + b * size;  // accumulates dL/dW, then becomes dL/dQ
      for (int64_t i = 0; i < size; ++i) out[i] = T(0);
      // Children before parents: when joint j is reached, every child has
      // added its term to out_j, so out_j can be finished.
      for (int64_t j = num_joints - 1; j >= 0; --j) {
        const int32_t p = parents[j];
        const T* g_j = g + 9 * j;
        T* out_j = out + 9 * j;
        if (p < 0) {
          for (int i = 0; i < 9; ++i) out_j[i] += g_j[i];
        } else {
          T world_j[9], world_p[9];  // recomputed, so the kernel needs no scratch
          mul3<Form::ABt>(q + 9 * j, constants + 9 * j, world_j);
          mul3<Form::ABt>(q + 9 * p, constants + 9 * p, world_p);
          mul3_add<Form::AB>(world_p, g_j, out_j);
          mul3_add<Form::ABt>(world_j, g_j, out + 9 * p);
        }
        mul3<Form::AB>(out_j, constants + 9 * j, out_j);
      }
    }
    return all_finite(grad_bone_rotations + begin * size, (end - begin) * size);
  });
}

template bool bone_right_multiply<float>(const float*, const float*, int64_t, int64_t, bool, float*);
template bool bone_right_multiply<double>(const double*, const double*, int64_t, int64_t, bool, double*);
template bool bone_world_to_local<float>(const int32_t*, const float*, const float*, int64_t, int64_t, float*);
template bool bone_world_to_local<double>(const int32_t*, const double*, const double*, int64_t, int64_t, double*);
template bool bone_world_to_local_backward<float>(const int32_t*, const float*, const float*, const float*, int64_t,
                                                  int64_t, float*);
template bool bone_world_to_local_backward<double>(const int32_t*, const double*, const double*, const double*,
                                                   int64_t, int64_t, double*);

}  // namespace fastkin
