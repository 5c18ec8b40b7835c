// Skinning kernels, compiled once per instruction set.
//
// Included by skin_scalar.cpp, skin_avx2.cpp and skin_avx512.cpp, each with
// its own FASTKIN_ISA_NS. LBS works one vertex at a time on 16-lane vectors
// that hold a whole padded 3x4 matrix: the blend is K multiply-adds of
// matrices and the transform one multiply and two in-register shuffles. DQS
// blends each vertex's dual quaternion the same way (8 lanes), transposes 8
// of them in registers and does the rest of its math on those blocks of 8
// vertices in structure-of-arrays form: plain lane-wise arithmetic without
// a square root.
//
// Nothing in here calls std::: an inline function compiled with AVX-512
// flags could be merged by the linker into the scalar build.

#include <cstddef>
#include <cstdint>
#include <type_traits>  // std::integral_constant (a type only; no code)
#include <utility>      // std::index_sequence (a type only; no code)
#if defined(__SSE2__)
#include <immintrin.h>  // simd_vectors.inl's intrinsics
#endif

// 16-lane vectors wider than the baseline ISA are passed between inline
// functions of this file only, so the ABI note does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

// The helpers pass 16-lane vectors by value: they must be inlined, or each
// call spills them through memory.
#define FASTKIN_INLINE inline __attribute__((always_inline))

namespace fastkin::detail::FASTKIN_ISA_NS {
namespace {

#include "simd_vectors.inl"

template <class T>
using V16 = Vec<T, 16>;

template <class V, class T>
FASTKIN_INLINE V load(const T* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
template <class V, class T>
FASTKIN_INLINE void store(T* p, const V& v) {
  __builtin_memcpy(p, &v, sizeof v);
}

// A vertex as a column of a padded 3x4 matrix: (x y z h) in each of the
// three rows, zeros after; h = 1 for points, 0 for directions.
template <class T>
FASTKIN_INLINE V16<T> homogeneous(const T* p, T h) {
  const T x = p[0], y = p[1], z = p[2];
  return V16<T>{x, y, z, h, x, y, z, h, x, y, z, h, 0, 0, 0, 0};
}

// homogeneous() for a vertex with at least 16 values after its start: one
// 16-lane load, whose first three lanes and h (from hs, h in every lane)
// one two-input shuffle spreads over the rows; the fourth row meets the
// matrix's zero padding.
template <class T>
FASTKIN_INLINE V16<T> homogeneous_inner(const T* p, const V16<T>& hs) {
#if FASTKIN_SHUFFLE
  const V16<T> q = load<V16<T>>(p);
  return __builtin_shufflevector(q, hs, 0, 1, 2, 16, 0, 1, 2, 16, 0, 1, 2, 16, 0, 1, 2, 16);
#else
  return homogeneous(p, hs[0]);
#endif
}

// Each of three values repeated over the four lanes of its row.
template <class T>
FASTKIN_INLINE V16<T> row_lanes(const T* g) {
  const T a = g[0], b = g[1], c = g[2];
  return V16<T>{a, a, a, a, b, b, b, b, c, c, c, c, 0, 0, 0, 0};
}

// Sum of each row (four lanes) in the row's first lane: a matrix-vector
// product once the matrix was multiplied lane-wise by homogeneous().
template <class T>
FASTKIN_INLINE V16<T> row_sums(V16<T> p) {
#if FASTKIN_SHUFFLE
  p += __builtin_shufflevector(p, p, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
  p += __builtin_shufflevector(p, p, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
#else
  for (int r = 0; r < 16; r += 4) p[r] = (p[r] + p[r + 1]) + (p[r + 2] + p[r + 3]);
#endif
  return p;
}

// Sum of each column (lanes c, c + 4, c + 8) in lane c: a transposed
// matrix-vector product once the matrix was multiplied by row_lanes().
template <class T>
FASTKIN_INLINE V16<T> column_sums(V16<T> p) {
#if FASTKIN_SHUFFLE
  return p + __builtin_shufflevector(p, p, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3) +
         __builtin_shufflevector(p, p, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
#else
  for (int c = 0; c < 4; ++c) p[c] = p[c] + p[c + 4] + p[c + 8];
  return p;
#endif
}

template <class T>
FASTKIN_INLINE T total(const V16<T>& p) {
  const V16<T> s = row_sums<T>(p);
  return (s[0] + s[4]) + (s[8] + s[12]);
}

// Zero when every lane of the running poison (sum of value * 0) is finite.
template <class V>
FASTKIN_INLINE bool clean(const V& poison) {
  for (int l = 0; l < int(sizeof(V) / sizeof(poison[0])); ++l)
    if (poison[l] != 0) return false;
  return true;
}

// -- influences ----------------------------------------------------------------------------------

// Every joint index in [0, J), every weight finite and >= 0. Branch-free and
// unsigned so that it vectorises: it runs on every call.
template <class T>
bool influences_valid(int64_t count, int64_t num_joints, const int32_t* joint_indices, const T* weights) {
  const auto joints = static_cast<uint32_t>(num_joints);
  unsigned bad = 0;
  for (int64_t i = 0; i < count; ++i) bad |= static_cast<uint32_t>(joint_indices[i]) >= joints;
  const T inf = T(__builtin_huge_val());
  for (int64_t i = 0; i < count; ++i) bad |= !(weights[i] >= T(0)) | !(weights[i] < inf);
  return bad == 0;
}

template <class T, int KS>
int64_t normalize_fixed(int64_t V, int64_t K, const T* weights, T* normalized, T* inverse_sums) {
  if constexpr (KS > 0) K = KS;
  int64_t off = 0;
  bool empty = false;
  int64_t v = 0;
#if FASTKIN_SHUFFLE
  if constexpr (KS == 4) {
    // Sixteen vertices (four 16-lane vectors of weights) per step: their
    // sums gathered into one vector, so one division serves all sixteen.
    using Mask = decltype(V16<T>{} < V16<T>{});
    Mask off_lanes = {}, empty_lanes = {};  // lanes are -1 where true
    for (; v + 16 <= V; v += 16) {
      V16<T> w[4], s[4];
      for (int i = 0; i < 4; ++i) {
        w[i] = load<V16<T>>(weights + (v + 4 * i) * 4);
        s[i] = row_sums<T>(w[i]);  // lanes 0, 4, 8, 12: four vertices' sums
      }
      const V16<T> low = __builtin_shufflevector(s[0], s[1], 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0);
      const V16<T> high = __builtin_shufflevector(s[2], s[3], 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0);
      const V16<T> sum = __builtin_shufflevector(low, high, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
      const V16<T> inv = T(1) / sum;
      store(inverse_sums + v, inv);
      store(normalized + v * 4, w[0] * __builtin_shufflevector(inv, inv, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
      store(normalized + v * 4 + 16, w[1] * __builtin_shufflevector(inv, inv, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7));
      store(normalized + v * 4 + 32,
            w[2] * __builtin_shufflevector(inv, inv, 8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11));
      store(normalized + v * 4 + 48,
            w[3] * __builtin_shufflevector(inv, inv, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15));
      off_lanes -= (sum - T(1) > T(kSumTolerance)) | (T(1) - sum > T(kSumTolerance));
      empty_lanes |= !(sum > T(0));
    }
    for (int l = 0; l < 16; ++l) {
      off += off_lanes[l];
      empty |= empty_lanes[l] != 0;
    }
  }
#endif
  for (; v < V; ++v) {
    T sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += weights[v * K + k];
    const T inv = T(1) / sum;
    for (int64_t k = 0; k < K; ++k) normalized[v * K + k] = weights[v * K + k] * inv;
    inverse_sums[v] = inv;
    off += (sum - T(1) > T(kSumTolerance)) | (T(1) - sum > T(kSumTolerance));
    empty |= !(sum > T(0));
  }
  return empty ? -1 : off;
}

// Weights divided by their vertex's sum into normalized (V, K) and the
// inverse sums into inverse_sums (V). Returns how many sums are off 1 by
// more than kSumTolerance, or -1 when a vertex's weights are all zero.
template <class T>
int64_t normalize_weights(int64_t V, int64_t K, const T* weights, T* normalized, T* inverse_sums) {
  switch (K) {
    case 4: return normalize_fixed<T, 4>(V, K, weights, normalized, inverse_sums);
    case 8: return normalize_fixed<T, 8>(V, K, weights, normalized, inverse_sums);
    default: return normalize_fixed<T, 0>(V, K, weights, normalized, inverse_sums);
  }
}

// Calls body.template operator()<KS>() with KS = K for the common influence
// counts (fully unrolled loops), else KS = 0 (K read at run time).
template <class Body>
FASTKIN_INLINE auto with_influences(int64_t K, Body&& body) {
  switch (K) {
    case 1: return body(std::integral_constant<int, 1>{});
    case 2: return body(std::integral_constant<int, 2>{});
    case 3: return body(std::integral_constant<int, 3>{});
    case 4: return body(std::integral_constant<int, 4>{});
    case 8: return body(std::integral_constant<int, 8>{});
    default: return body(std::integral_constant<int, 0>{});
  }
}

// -- linear blend skinning -----------------------------------------------------------------------

// sum_k w_k M_j(k) over a vertex's influences (pose: J padded matrices).
template <class T, int KS>
FASTKIN_INLINE V16<T> blend_matrices(const T* pose, const int32_t* joints, const T* w, int64_t K) {
  if constexpr (KS > 0) K = KS;
  V16<T> m = load<V16<T>>(pose + kLinearStride * joints[0]) * w[0];
  for (int64_t k = 1; k < K; ++k) m += load<V16<T>>(pose + kLinearStride * joints[k]) * w[k];
  return m;
}

template <class T, int KS>
bool linear_forward_fixed(const SkinInputs<T>& in, const T* table, int64_t b, int64_t begin, int64_t end, T* out) {
  const int64_t K = in.num_influences, V = in.num_vertices;
  const T h = in.points ? T(1) : T(0);
  const T* vertices = in.vertices + (in.vertices_batched ? b * V * 3 : 0);
  const T* pose = table + b * in.num_joints * kLinearStride;
  T* o = out + b * V * 3;
  V16<T> poison = {};
  const auto skin = [&](int64_t v, const V16<T>& x) {
    const V16<T> m = blend_matrices<T, KS>(pose, in.joint_indices + v * K, in.weights + v * K, K);
    const V16<T> p = row_sums<T>(m * x);
    poison += p * T(0);
    o[3 * v] = p[0];
    o[3 * v + 1] = p[4];
    o[3 * v + 2] = p[8];
  };
  // The last vertices' 16-value loads would read past the array.
  const int64_t inner_end = end < V - 5 ? end : V - 5;
  const V16<T> hs = V16<T>{} + h;
  int64_t v = begin;
  for (; v < inner_end; ++v) skin(v, homogeneous_inner(vertices + 3 * v, hs));
  for (; v < end; ++v) skin(v, homogeneous(vertices + 3 * v, h));
  return clean(poison);
}

template <class T>
bool linear_forward(const SkinInputs<T>& in, const T* table, int64_t b, int64_t begin, int64_t end, T* out) {
  return with_influences(in.num_influences, [&](auto ks) {
    return linear_forward_fixed<T, decltype(ks)::value>(in, table, b, begin, end, out);
  });
}

template <class T>
void linear_backward(const SkinInputs<T>& in, const T* table, int64_t begin, int64_t end, const T* grad_out,
                     T* grad_table, T* grad_vertices, T* grad_weights) {
  const int64_t K = in.num_influences, V = in.num_vertices, J = in.num_joints;
  const T h = in.points ? T(1) : T(0);
  for (int64_t b = 0; b < in.batch; ++b) {
    const T* vertices = in.vertices + (in.vertices_batched ? b * V * 3 : 0);
    const T* pose = table + b * J * kLinearStride;
    T* grad_pose = grad_table + b * J * kLinearStride;
    const T* g_out = grad_out + b * V * 3;
    T* g_vertices = grad_vertices ? grad_vertices + (in.vertices_batched ? b * V * 3 : 0) : nullptr;
    for (int64_t v = begin; v < end; ++v) {
      const int32_t* joints = in.joint_indices + v * K;
      const T* w = in.weights + v * K;
      const V16<T> g = row_lanes(g_out + 3 * v);
      // d loss / d M for a matrix applied to this vertex alone: g x^T.
      const V16<T> outer = g * homogeneous(vertices + 3 * v, h);
      for (int64_t k = 0; k < K; ++k) {
        T* gp = grad_pose + kLinearStride * joints[k];
        store(gp, load<V16<T>>(gp) + outer * w[k]);
      }
      if (grad_weights) {
        // out = sum_k w_k M_k x, so d loss / d w_k = g.(M_k x) = <M_k, g x^T>.
        for (int64_t k = 0; k < K; ++k)
          grad_weights[v * K + k] += total<T>(load<V16<T>>(pose + kLinearStride * joints[k]) * outer);
      }
      if (g_vertices) {
        const V16<T> c = column_sums<T>(blend_matrices<T, 0>(pose, joints, w, K) * g);
        for (int i = 0; i < 3; ++i) {
          if (in.vertices_batched) {
            g_vertices[3 * v + i] = c[i];
          } else {
            g_vertices[3 * v + i] += c[i];
          }
        }
      }
    }
  }
}

// -- dual quaternion skinning --------------------------------------------------------------------

// Vertices per structure-of-arrays block: 8 blended dual quaternions (8
// values each) make one square tile to transpose in registers.
constexpr int kBlock = 8;
template <class T>
using Row = Vec<T, kBlock>;  // one value for each vertex of a block

// Sign that puts dual quaternion q on the hemisphere of `first` (real parts).
template <class T>
FASTKIN_INLINE T hemisphere(const T* first, const T* q) {
  return first[0] * q[0] + first[1] * q[1] + first[2] * q[2] + first[3] * q[3] < 0 ? T(-1) : T(1);
}

// The sign for joints (a, b) of a pose, computed from the dual quaternions...
template <class T>
struct DirectSigns {
  const T* pose;
  FASTKIN_INLINE T operator()(int32_t a, int32_t b) const {
    return hemisphere(pose + kDualStride * a, pose + kDualStride * b);
  }
};

// ... or looked up in a J x J table made once per pose (and vertex range),
// when J is small and there are enough influences to repay it.
constexpr int64_t kMaxTabledJoints = 64;

template <class T>
struct TabledSigns {
  const T* signs;
  int64_t num_joints;
  FASTKIN_INLINE T operator()(int32_t a, int32_t b) const { return signs[a * num_joints + b]; }
};

// Calls body(signs) with the sign functor that suits the range; storage
// holds kMaxTabledJoints^2 values.
template <class T, class Body>
FASTKIN_INLINE auto with_hemispheres(const T* pose, int64_t J, int64_t influences, T* storage, Body&& body) {
  if (J > kMaxTabledJoints || influences < J * J) return body(DirectSigns<T>{pose});
  for (int64_t a = 0; a < J; ++a)
    for (int64_t b = 0; b < J; ++b) storage[a * J + b] = hemisphere(pose + kDualStride * a, pose + kDualStride * b);
  return body(TabledSigns<T>{storage, J});
}

template <class T, int KS, class Signs>
FASTKIN_INLINE Row<T> blend_duals(const T* pose, const Signs& sign, const int32_t* joints, const T* w, int64_t K) {
  if constexpr (KS > 0) K = KS;
  Row<T> d = load<Row<T>>(pose + kDualStride * joints[0]) * w[0];
  for (int64_t k = 1; k < K; ++k) d += load<Row<T>>(pose + kDualStride * joints[k]) * (sign(joints[0], joints[k]) * w[k]);
  return d;
}

// Rows x, y, z of 8 points stored xyz xyz ... (24 values from p).
template <class T>
FASTKIN_INLINE void deinterleave(const T* p, Row<T>* xyz) {
#if FASTKIN_SHUFFLE
  const Row<T> a = load<Row<T>>(p), b = load<Row<T>>(p + 8), c = load<Row<T>>(p + 16);
  const Row<T> x = __builtin_shufflevector(a, b, 0, 3, 6, 9, 12, 15, 0, 0);
  const Row<T> y = __builtin_shufflevector(a, b, 1, 4, 7, 10, 13, 0, 0, 0);
  const Row<T> z = __builtin_shufflevector(a, b, 2, 5, 8, 11, 14, 0, 0, 0);
  xyz[0] = __builtin_shufflevector(x, c, 0, 1, 2, 3, 4, 5, 10, 13);
  xyz[1] = __builtin_shufflevector(y, c, 0, 1, 2, 3, 4, 8, 11, 14);
  xyz[2] = __builtin_shufflevector(z, c, 0, 1, 2, 3, 4, 9, 12, 15);
#else
  for (int i = 0; i < kBlock; ++i)
    for (int c = 0; c < 3; ++c) xyz[c][i] = p[3 * i + c];
#endif
}

// The inverse of deinterleave: 24 values xyz xyz ... into p.
template <class T>
FASTKIN_INLINE void interleave(const Row<T>* xyz, T* p) {
#if FASTKIN_SHUFFLE
  const Row<T> &x = xyz[0], &y = xyz[1], &z = xyz[2];
  const Row<T> a = __builtin_shufflevector(x, y, 0, 8, 0, 1, 9, 0, 2, 10);
  const Row<T> b = __builtin_shufflevector(x, y, 0, 3, 11, 0, 4, 12, 0, 5);
  const Row<T> c = __builtin_shufflevector(x, y, 13, 0, 6, 14, 0, 7, 15, 0);
  store(p, __builtin_shufflevector(a, z, 0, 1, 8, 3, 4, 9, 6, 7));
  store(p + 8, __builtin_shufflevector(b, z, 10, 1, 2, 11, 4, 5, 12, 7));
  store(p + 16, __builtin_shufflevector(c, z, 0, 13, 2, 3, 14, 5, 6, 15));
#else
  for (int i = 0; i < kBlock; ++i)
    for (int c = 0; c < 3; ++c) p[3 * i + c] = xyz[c][i];
#endif
}

// Three rows from 3-vectors v0 .. v0 + n (n <= 8; missing lanes are zero).
template <class T>
FASTKIN_INLINE void load_rows(const T* p, int n, Row<T>* xyz) {
  if (n == kBlock) return deinterleave(p, xyz);
  alignas(64) T buffer[3 * kBlock] = {};
  for (int i = 0; i < 3 * n; ++i) buffer[i] = p[i];
  deinterleave(buffer, xyz);
}

// Stores (or adds) the first n lanes of three rows as 3-vectors.
template <class T>
FASTKIN_INLINE void store_rows(const Row<T>* xyz, int n, T* p, bool add) {
  alignas(64) T buffer[3 * kBlock];
  if (n == kBlock && !add) return interleave(xyz, p);
  interleave(xyz, buffer);
  for (int i = 0; i < 3 * n; ++i) p[i] = add ? p[i] + buffer[i] : buffer[i];
}

// A block of vertices in rows: blended real part r (xyzw), dual part d
// (xyzw) and the vertex p.
template <class T>
struct DualBlock {
  Row<T> r[4], d[4], p[3];
};

// Rows for vertices [v0, v0 + n) of one pose; lanes past n get the identity.
template <class T, int KS, class Signs>
FASTKIN_INLINE void load_block(const SkinInputs<T>& in, const T* pose, const Signs& sign, const T* vertices,
                               int64_t v0, int n, DualBlock<T>& block) {
  const int64_t K = KS > 0 ? KS : in.num_influences;
  const int32_t* joints = in.joint_indices + v0 * K;
  const T* weights = in.weights + v0 * K;
  Row<T> q[kBlock];
  for (int i = 0; i < kBlock; ++i)
    q[i] = i < n ? blend_duals<T, KS>(pose, sign, joints + i * K, weights + i * K, K) : Row<T>{0, 0, 0, 1, 0, 0, 0, 0};
#if FASTKIN_SHUFFLE
  transpose_tile<T, kBlock>(q);
#else
  Row<T> t[kBlock];
  for (int i = 0; i < kBlock; ++i)
    for (int c = 0; c < kBlock; ++c) t[c][i] = q[i][c];
  for (int c = 0; c < kBlock; ++c) q[c] = t[c];
#endif
  for (int c = 0; c < 4; ++c) block.r[c] = q[c];
  for (int c = 0; c < 4; ++c) block.d[c] = q[4 + c];
  load_rows(vertices + 3 * v0, n, block.p);
}

template <class V>
FASTKIN_INLINE void cross(const V* a, const V* b, V* out) {
  out[0] = a[1] * b[2] - a[2] * b[1];
  out[1] = a[2] * b[0] - a[0] * b[2];
  out[2] = a[0] * b[1] - a[1] * b[0];
}

// With r, d the blend divided by |r| (a unit dual quaternion), a point
// moves to R(r) p + 2 (r_w d_xyz - d_w r_xyz + r_xyz x d_xyz). Everything is
// quadratic in (r, d), so the blend is used as is and the result divided
// by N = |r|^2: no square root. E below is that quadratic part, halved.
template <class T>
struct DualTerms {
  Row<T> s;     // 2 / N
  Row<T> u[3];  // r_xyz x p + r_w p
  Row<T> e[3];  // r_xyz x u (+ r_w d_xyz - d_w r_xyz + r_xyz x d_xyz for points)
};

template <class T>
FASTKIN_INLINE DualTerms<T> dual_terms(const DualBlock<T>& k, bool points) {
  DualTerms<T> t;
  const Row<T>* r = k.r;
  t.s = T(2) / (r[0] * r[0] + r[1] * r[1] + r[2] * r[2] + r[3] * r[3]);
  cross(r, k.p, t.u);
  for (int c = 0; c < 3; ++c) t.u[c] += r[3] * k.p[c];
  cross(r, t.u, t.e);
  if (points) {
    Row<T> rd[3];
    cross(r, k.d, rd);
    for (int c = 0; c < 3; ++c) t.e[c] += r[3] * k.d[c] - k.d[3] * r[c] + rd[c];
  }
  return t;
}

template <class T, int KS, class Signs>
bool dual_forward_fixed(const SkinInputs<T>& in, const T* pose, const Signs& sign, const T* vertices, int64_t begin,
                        int64_t end, T* o) {
  Row<T> poison = {};
  for (int64_t v0 = begin; v0 < end; v0 += kBlock) {
    const int n = static_cast<int>(end - v0 < kBlock ? end - v0 : kBlock);
    DualBlock<T> block;
    load_block<T, KS>(in, pose, sign, vertices, v0, n, block);
    const DualTerms<T> t = dual_terms(block, in.points);
    Row<T> moved[3];
    for (int c = 0; c < 3; ++c) {
      moved[c] = block.p[c] + t.s * t.e[c];
      poison += moved[c] * T(0);
    }
    store_rows(moved, n, o + 3 * v0, false);
  }
  return clean(poison);
}

template <class T>
bool dual_forward(const SkinInputs<T>& in, const T* table, int64_t b, int64_t begin, int64_t end, T* out) {
  const int64_t V = in.num_vertices;
  const T* vertices = in.vertices + (in.vertices_batched ? b * V * 3 : 0);
  const T* pose = table + b * in.num_joints * kDualStride;
  alignas(64) T storage[kMaxTabledJoints * kMaxTabledJoints];
  return with_hemispheres(pose, in.num_joints, (end - begin) * in.num_influences, storage, [&](const auto& sign) {
    return with_influences(in.num_influences, [&](auto ks) {
      return dual_forward_fixed<T, decltype(ks)::value>(in, pose, sign, vertices, begin, end, out + b * V * 3);
    });
  });
}

// Backward of one pose over vertices [begin, end).
template <class T, class Signs>
void dual_backward_pose(const SkinInputs<T>& in, const T* pose, const Signs& sign, const T* vertices, int64_t begin,
                        int64_t end, const T* g_out, T* grad_pose, T* g_vertices, T* grad_weights) {
  const int64_t K = in.num_influences;
  const T e = in.points ? T(1) : T(0);
  for (int64_t v0 = begin; v0 < end; v0 += kBlock) {
    const int n = static_cast<int>(end - v0 < kBlock ? end - v0 : kBlock);
    DualBlock<T> k;
    load_block<T, 0>(in, pose, sign, vertices, v0, n, k);
    const DualTerms<T> t = dual_terms(k, in.points);
    Row<T> g[3];
    load_rows(g_out + 3 * v0, n, g);
    const Row<T>* r = k.r;
    const Row<T>* d = k.d;
    const Row<T> ge = g[0] * t.e[0] + g[1] * t.e[1] + g[2] * t.e[2];
    const Row<T> gr = g[0] * r[0] + g[1] * r[1] + g[2] * r[2];
    const Row<T> gd = g[0] * d[0] + g[1] * d[1] + g[2] * d[2];
    Row<T> g_x_r[3], u_x_g[3], p_x_gr[3], d_x_g[3], gr_x_r[3];
    cross(g, r, g_x_r);
    cross(t.u, g, u_x_g);
    cross(k.p, g_x_r, p_x_gr);
    cross(d, g, d_x_g);
    cross(g_x_r, r, gr_x_r);
    const Row<T> p_gr = k.p[0] * g_x_r[0] + k.p[1] * g_x_r[1] + k.p[2] * g_x_r[2];
    // d (s g.E) with s = 2 / N: s dE + (g.E) ds, ds / dr = -s 2 r / N = -s^2 r.
    const Row<T> shrink = ge * t.s * t.s;
    Row<T> grad[kBlock];
    for (int c = 0; c < 3; ++c) {
      grad[c] = t.s * (u_x_g[c] + p_x_gr[c] + e * (d_x_g[c] - d[3] * g[c])) - shrink * r[c];
      grad[4 + c] = t.s * e * (r[3] * g[c] + g_x_r[c]);
    }
    grad[3] = t.s * (p_gr + e * gd) - shrink * r[3];
    grad[7] = -t.s * e * gr;
    if (g_vertices) {
      Row<T> gv[3];
      for (int c = 0; c < 3; ++c) gv[c] = g[c] + t.s * (gr_x_r[c] + r[3] * g_x_r[c]);
      store_rows(gv, n, g_vertices + 3 * v0, !in.vertices_batched);
    }
    // Back to one 8-value gradient per vertex. The blend is linear: each
    // joint's dual quaternion gets its signed weight times that gradient.
#if FASTKIN_SHUFFLE
    transpose_tile<T, kBlock>(grad);
#else
    Row<T> tr[kBlock];
    for (int i = 0; i < kBlock; ++i)
      for (int c = 0; c < kBlock; ++c) tr[i][c] = grad[c][i];
    for (int i = 0; i < kBlock; ++i) grad[i] = tr[i];
#endif
    for (int i = 0; i < n; ++i) {
      const int64_t v = v0 + i;
      const int32_t* joints = in.joint_indices + v * K;
      const T* w = in.weights + v * K;
      for (int64_t q = 0; q < K; ++q) {
        const T flip = q == 0 ? T(1) : sign(joints[0], joints[q]);
        T* gp = grad_pose + kDualStride * joints[q];
        store(gp, load<Row<T>>(gp) + grad[i] * (flip * w[q]));
        if (grad_weights) {
          const Row<T> prod = load<Row<T>>(pose + kDualStride * joints[q]) * grad[i];
          T dot = 0;
          for (int c = 0; c < kBlock; ++c) dot += prod[c];
          grad_weights[v * K + q] += flip * dot;
        }
      }
    }
  }
}

template <class T>
void dual_backward(const SkinInputs<T>& in, const T* table, int64_t begin, int64_t end, const T* grad_out,
                   T* grad_table, T* grad_vertices, T* grad_weights) {
  const int64_t K = in.num_influences, V = in.num_vertices, J = in.num_joints;
  alignas(64) T storage[kMaxTabledJoints * kMaxTabledJoints];
  for (int64_t b = 0; b < in.batch; ++b) {
    const T* vertices = in.vertices + (in.vertices_batched ? b * V * 3 : 0);
    const T* pose = table + b * J * kDualStride;
    T* g_vertices = grad_vertices ? grad_vertices + (in.vertices_batched ? b * V * 3 : 0) : nullptr;
    with_hemispheres(pose, J, (end - begin) * K, storage, [&](const auto& sign) {
      dual_backward_pose(in, pose, sign, vertices, begin, end, grad_out + b * V * 3, grad_table + b * J * kDualStride,
                         g_vertices, grad_weights);
    });
  }
}

template <class T>
SkinKernel<T> make_kernel() {
  return {&influences_valid<T>, &normalize_weights<T>, &linear_forward<T>, &linear_backward<T>, &dual_forward<T>,
          &dual_backward<T>};
}

}  // namespace
}  // namespace fastkin::detail::FASTKIN_ISA_NS

// FASTKIN_EXPORT_SKIN_KERNELS(namespace).
#define FASTKIN_EXPORT_SKIN_KERNELS(NS)                                                             \
  namespace fastkin::detail {                                                                      \
  template <>                                                                                      \
  SkinKernel<float> skin_kernel_##NS<float>() { return NS::make_kernel<float>(); }                 \
  template <>                                                                                      \
  SkinKernel<double> skin_kernel_##NS<double>() { return NS::make_kernel<double>(); }              \
  }
