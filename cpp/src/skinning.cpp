// Skinning entry points: influence checks, the per-pose joint tables, the
// thread split and the reduction of the backward pass. The per-vertex math
// lives in skin_block.inl.
#include "fastkin/skinning.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "dispatch.h"
#include "fastkin/parallel.h"
#include "skin_kernels.h"

namespace fastkin {
namespace {

// Below this many vertices (summed over the batch) per thread the pool costs
// more than it saves.
constexpr int64_t kMinVerticesPerThread = 32768;

template <class T>
const detail::SkinKernel<T>& kernel() {
  static const detail::SkinKernel<T> k = detail::for_this_cpu<detail::SkinKernel<T>>(
      &detail::skin_kernel_scalar<T>, &detail::skin_kernel_avx2<T>, &detail::skin_kernel_avx512<T>);
  return k;
}

int workers_for(int64_t vertex_count) {
  return static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), vertex_count / kMinVerticesPerThread)));
}

int stride_of(SkinMethod method) {
  return method == SkinMethod::Linear ? detail::kLinearStride : detail::kDualStride;
}

// The kernels' joint table: LBS matrices padded to 16 values (into scratch),
// dual quaternions as given.
template <class T>
const T* joint_table(SkinMethod method, const SkinInputs<T>& in) {
  if (method == SkinMethod::DualQuaternion) return in.transforms;
  const int64_t count = in.batch * in.num_joints;
  T* table = detail::thread_scratch<T, 1>(count * detail::kLinearStride);
  for (int64_t i = 0; i < count; ++i) {
    T* row = table + i * detail::kLinearStride;
    std::copy(in.transforms + i * 12, in.transforms + i * 12 + 12, row);
    std::fill(row + 12, row + 16, T(0));
  }
  return table;
}

}  // namespace

template <class T>
InfluenceCheck check_influences(int64_t num_vertices, int64_t num_influences, int64_t num_joints,
                                const int32_t* joint_indices, const T* weights) {
  InfluenceCheck check;
  for (int64_t v = 0; v < num_vertices; ++v) {
    const int32_t* joints = joint_indices + v * num_influences;
    const T* w = weights + v * num_influences;
    T sum = 0;
    for (int64_t k = 0; k < num_influences; ++k) {
      if (static_cast<uint32_t>(joints[k]) >= static_cast<uint64_t>(num_joints))
        return {InfluenceCheck::JointIndex, v, k, 0};
      if (!(w[k] >= T(0) && std::isfinite(w[k]))) return {InfluenceCheck::BadWeight, v, k, 0};
      sum += w[k];
    }
    if (!(sum > T(0))) return {InfluenceCheck::ZeroWeights, v, -1, 0};
    check.unnormalized += std::abs(static_cast<double>(sum) - 1.0) > detail::kSumTolerance;
  }
  return check;
}

template <class T>
bool influences_valid(int64_t num_vertices, int64_t num_influences, int64_t num_joints, const int32_t* joint_indices,
                      const T* weights) {
  return kernel<T>().influences_valid(num_vertices * num_influences, num_joints, joint_indices, weights);
}

namespace {

// The inputs with weights divided by their vertex's sum (kept in this
// thread's scratch, with the inverse sums after them).
template <class T>
struct Normalized {
  SkinInputs<T> in;
  const T* inverse_sums;
  int64_t unnormalized;  // -1: a vertex's weights are all zero
};

template <class T>
Normalized<T> normalized(const SkinInputs<T>& in) {
  const int64_t V = in.num_vertices, K = in.num_influences;
  T* scratch = detail::thread_scratch<T, 2>(V * (K + 1));
  Normalized<T> n{in, scratch + V * K, 0};
  n.unnormalized = kernel<T>().normalize_weights(V, K, in.weights, scratch, scratch + V * K);
  n.in.weights = scratch;
  return n;
}

}  // namespace

template <class T>
SkinResult skin_forward(SkinMethod method, const SkinInputs<T>& raw, T* out) {
  const auto& k = kernel<T>();
  const auto forward = method == SkinMethod::Linear ? k.linear_forward : k.dual_forward;
  const Normalized<T> n = normalized(raw);
  if (n.unnormalized < 0) return {false, 0};
  const SkinInputs<T>& in = n.in;
  const T* table = joint_table(method, in);
  const int64_t V = in.num_vertices;
  const int workers = workers_for(in.batch * V);
  if (workers == 1) {
    bool finite = true;
    for (int64_t b = 0; b < in.batch; ++b) finite &= forward(in, table, b, 0, V, out);
    return {finite, n.unnormalized};
  }
  // Tasks are (pose, vertex chunk) pairs: a few per worker, so that both a
  // large batch and a single large mesh spread over the pool.
  const int64_t chunks = std::max<int64_t>(1, (4 * workers + in.batch - 1) / in.batch);
  const int64_t chunk = (V + chunks - 1) / chunks;
  std::vector<char> finite(in.batch * chunks, 1);
  parallel_for(in.batch * chunks, workers, [&](int64_t task, int) {
    const int64_t b = task / chunks, begin = (task % chunks) * chunk;
    finite[task] = forward(in, table, b, begin, std::min(V, begin + chunk), out);
  });
  return {std::all_of(finite.begin(), finite.end(), [](char f) { return f != 0; }), n.unnormalized};
}

template <class T>
bool skin_backward(SkinMethod method, const SkinInputs<T>& raw, const T* grad_out, T* grad_transforms,
                   T* grad_vertices, T* grad_weights) {
  const auto& k = kernel<T>();
  const auto backward = method == SkinMethod::Linear ? k.linear_backward : k.dual_backward;
  const Normalized<T> n = normalized(raw);
  if (n.unnormalized < 0) return false;
  const SkinInputs<T>& in = n.in;
  const T* table = joint_table(method, in);
  const int64_t V = in.num_vertices, K = in.num_influences;
  const int stride = stride_of(method);
  const int64_t table_size = in.batch * in.num_joints * stride;
  // Tasks own vertex ranges (so vertex and weight gradients need no
  // locking) and sum their joint gradients into private tables, added up in
  // task order afterwards so the result does not depend on scheduling.
  const int tasks = workers_for(in.batch * V);
  const int64_t chunk = (V + tasks - 1) / tasks;
  std::vector<T> grad_tables(table_size * tasks, T(0));
  if (grad_vertices && !in.vertices_batched) std::fill(grad_vertices, grad_vertices + V * 3, T(0));
  if (grad_weights) std::fill(grad_weights, grad_weights + V * K, T(0));
  parallel_for(tasks, tasks, [&](int64_t task, int) {
    const int64_t begin = task * chunk;
    backward(in, table, begin, std::min(V, begin + chunk), grad_out, grad_tables.data() + task * table_size,
             grad_vertices, grad_weights);
  });
  bool finite = true;
  const int64_t count = in.batch * in.num_joints;
  const int width = method == SkinMethod::Linear ? 12 : 8;
  for (int64_t i = 0; i < count; ++i) {
    for (int c = 0; c < width; ++c) {
      T sum = 0;
      for (int t = 0; t < tasks; ++t) sum += grad_tables[t * table_size + i * stride + c];
      grad_transforms[i * width + c] = sum;
      finite &= std::isfinite(sum);
    }
  }
  if (grad_weights) {
    // From the normalised weights w / s back to w: d/dw_k = (g_k - sum_i (w_i / s) g_i) / s.
    for (int64_t v = 0; v < V; ++v) {
      T* g = grad_weights + v * K;
      const T* w = in.weights + v * K;
      T mean = 0;
      for (int64_t q = 0; q < K; ++q) mean += w[q] * g[q];
      for (int64_t q = 0; q < K; ++q) g[q] = (g[q] - mean) * n.inverse_sums[v];
    }
  }
  const auto all_finite = [](const T* p, int64_t count) {
    bool ok = true;
    for (int64_t i = 0; i < count; ++i) ok &= std::isfinite(p[i]);
    return ok;
  };
  if (grad_vertices) finite &= all_finite(grad_vertices, (in.vertices_batched ? in.batch : 1) * V * 3);
  if (grad_weights) finite &= all_finite(grad_weights, V * K);
  return finite;
}

template <class T>
int64_t rigid_to_dual_quaternions(int64_t count, const T* transforms, T* dual_quaternions) {
  for (int64_t i = 0; i < count; ++i) {
    const T* m = transforms + 12 * i;
    const double r[3][3] = {{m[0], m[1], m[2]}, {m[4], m[5], m[6]}, {m[8], m[9], m[10]}};
    // Rotation check: R^T R = I and det R = 1, to 1e-4.
    double worst = 0;
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) {
        const double dot = r[0][a] * r[0][b] + r[1][a] * r[1][b] + r[2][a] * r[2][b];
        worst = std::max(worst, std::abs(dot - (a == b ? 1.0 : 0.0)));
      }
    const double det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) -
                       r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0]) +
                       r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    if (!(worst <= 1e-4 && det > 0)) return i;
    // Quaternion from the largest of 4w^2, 4x^2, 4y^2, 4z^2 (Shepperd): the
    // division is then by at least 1/2.
    const double trace = r[0][0] + r[1][1] + r[2][2];
    double q[4];  // xyzw
    if (trace >= r[0][0] && trace >= r[1][1] && trace >= r[2][2]) {
      const double s = 2 * std::sqrt(1 + trace);
      q[3] = s / 4;
      q[0] = (r[2][1] - r[1][2]) / s;
      q[1] = (r[0][2] - r[2][0]) / s;
      q[2] = (r[1][0] - r[0][1]) / s;
    } else {
      const int a = r[0][0] >= r[1][1] && r[0][0] >= r[2][2] ? 0 : (r[1][1] >= r[2][2] ? 1 : 2);
      const int b = (a + 1) % 3, c = (a + 2) % 3;
      const double s = 2 * std::sqrt(1 + r[a][a] - r[b][b] - r[c][c]);
      q[a] = s / 4;
      q[3] = (r[c][b] - r[b][c]) / s;
      q[b] = (r[b][a] + r[a][b]) / s;
      q[c] = (r[c][a] + r[a][c]) / s;
    }
    // Dual part (t, 0) q / 2: xyz = (w t + t x q_xyz) / 2, w = -t.q_xyz / 2.
    const double t[3] = {m[3], m[7], m[11]};
    T* out = dual_quaternions + 8 * i;
    for (int c = 0; c < 4; ++c) out[c] = static_cast<T>(q[c]);
    out[4] = static_cast<T>(0.5 * (q[3] * t[0] + t[1] * q[2] - t[2] * q[1]));
    out[5] = static_cast<T>(0.5 * (q[3] * t[1] + t[2] * q[0] - t[0] * q[2]));
    out[6] = static_cast<T>(0.5 * (q[3] * t[2] + t[0] * q[1] - t[1] * q[0]));
    out[7] = static_cast<T>(-0.5 * (t[0] * q[0] + t[1] * q[1] + t[2] * q[2]));
  }
  return -1;
}

#define FASTKIN_INSTANTIATE(T)                                                                            \
  template InfluenceCheck check_influences<T>(int64_t, int64_t, int64_t, const int32_t*, const T*);     \
  template bool influences_valid<T>(int64_t, int64_t, int64_t, const int32_t*, const T*);               \
  template SkinResult skin_forward<T>(SkinMethod, const SkinInputs<T>&, T*);                            \
  template bool skin_backward<T>(SkinMethod, const SkinInputs<T>&, const T*, T*, T*, T*);               \
  template int64_t rigid_to_dual_quaternions<T>(int64_t, const T*, T*);
FASTKIN_INSTANTIATE(float)
FASTKIN_INSTANTIATE(double)
#undef FASTKIN_INSTANTIATE

}  // namespace fastkin
