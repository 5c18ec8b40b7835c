// fk kernels over blocks of W poses, compiled once per instruction set.
//
// Included by fk_scalar.cpp, fk_avx2.cpp and fk_avx512.cpp, each with its own
// FASTKIN_ISA_NS and lane counts. A block of W poses is transposed into
// structure-of-arrays scratch: each scratch row is one SIMD vector holding
// one value (say, R01 of joint j) for all W poses, so all the math below is
// plain vector arithmetic at the width of the file's instruction set (GCC /
// Clang vector extensions; W = 1 degrades to scalars for single poses).
//
// Nothing in here calls std:: or Eigen: an inline function instantiated
// under AVX-512 flags could be merged by the linker into the scalar build.

#include <cstddef>
#include <cstdint>
#include <utility>  // std::index_sequence (a type only; no code)
#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace fastkin::detail::FASTKIN_ISA_NS {
namespace {

#include "simd_vectors.inl"

// -- transposes between pose-major arrays and scratch rows --------------------------------

// Row c of dst gets value c of each lane's pose row (src + pose * cols).
template <class T, int W>
inline void stage(const T* src, const int64_t* pose, int64_t cols, Vec<T, W>* dst) {
  int64_t c0 = 0;
  if constexpr (W > 1 && FASTKIN_SHUFFLE) {
    for (; c0 + W <= cols; c0 += W) {
      Vec<T, W> v[W];
#pragma GCC unroll 16
      for (int l = 0; l < W; ++l) __builtin_memcpy(&v[l], src + pose[l] * cols + c0, sizeof(v[l]));
      transpose_tile<T, W>(v);
#pragma GCC unroll 16
      for (int k = 0; k < W; ++k) dst[c0 + k] = v[k];
    }
  }
  for (; c0 < cols; ++c0)
    for (int l = 0; l < W; ++l) lane<T>(dst[c0], l) = src[pose[l] * cols + c0];
}

// Outputs larger than this (bytes) are written with non-temporal stores:
// they would only evict the cache, and skipping the read-for-ownership of
// every line saves a third of the memory traffic.
constexpr int64_t kStreamBytes = int64_t(1) << 21;

// memcpy that uses non-temporal stores once dst is vector-aligned.
template <class T>
inline void stream_copy(T* dst, const T* src, int64_t count) {
#if defined(__AVX512F__)
  constexpr int kBytes = 64;
#elif defined(__AVX__)
  constexpr int kBytes = 32;
#elif defined(__SSE2__)
  constexpr int kBytes = 16;
#else
  constexpr int kBytes = 0;
#endif
  if constexpr (kBytes > 0) {
    constexpr int64_t kStep = kBytes / sizeof(T);
    for (; count > 0 && reinterpret_cast<std::uintptr_t>(dst) % kBytes != 0; --count) *dst++ = *src++;
    for (; count >= kStep; count -= kStep, dst += kStep, src += kStep) {
#if defined(__AVX512F__)
      _mm512_stream_si512(reinterpret_cast<__m512i*>(dst), _mm512_loadu_si512(src));
#elif defined(__AVX__)
      _mm256_stream_si256(reinterpret_cast<__m256i*>(dst), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src)));
#elif defined(__SSE2__)
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst), _mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
#endif
    }
  }
  __builtin_memcpy(dst, src, sizeof(T) * count);
}

// Orders the non-temporal stores before anything that follows.
inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

// The inverse of stage, for the first `count` lanes. When the lanes are
// consecutive poses their output is one contiguous range: it is assembled
// in `buffer` (W * cols values) and written out sequentially (streamed when
// `stream`), which the memory system handles far better than W interleaved
// strided streams.
template <class T, int W>
inline void unstage(const Vec<T, W>* src, const int64_t* pose, int count, int64_t cols, T* dst, T* buffer,
                    bool stream) {
  const bool contiguous = count == W && pose[W - 1] == pose[0] + W - 1;
  auto row = [&](int l) { return contiguous ? buffer + l * cols : dst + pose[l] * cols; };
  int64_t c0 = 0;
  if constexpr (W > 1 && FASTKIN_SHUFFLE) {
    for (; c0 + W <= cols; c0 += W) {
      Vec<T, W> v[W];
#pragma GCC unroll 16
      for (int k = 0; k < W; ++k) v[k] = src[c0 + k];
      transpose_tile<T, W>(v);
#pragma GCC unroll 16
      for (int l = 0; l < W; ++l)
        if (l < count) __builtin_memcpy(row(l) + c0, &v[l], sizeof(v[l]));
    }
  }
  for (; c0 < cols; ++c0)
    for (int l = 0; l < count; ++l) row(l)[c0] = lane<T>(src[c0], l);
  if (!contiguous) return;
  if (stream) {
    stream_copy(dst + pose[0] * cols, buffer, W * cols);
  } else {
    __builtin_memcpy(dst + pose[0] * cols, buffer, sizeof(T) * W * cols);
  }
}

// -- rotation math on rows -----------------------------------------------------------------

// Rotation matrix (9 rows, row-major) of xyzw quaternions q (4 rows), using
// q / |q|.
template <class T, class V>
inline void quat_to_matrix(const V* q, V* r) {
  const V x = q[0], y = q[1], z = q[2], w = q[3];
  const V s = T(2) / (x * x + y * y + z * z + w * w);
  const V xs = x * s, ys = y * s, zs = z * s;
  const V xx = x * xs, yy = y * ys, zz = z * zs;
  const V xy = x * ys, xz = x * zs, yz = y * zs;
  const V wx = w * xs, wy = w * ys, wz = w * zs;
  r[0] = T(1) - (yy + zz); r[1] = xy - wz;          r[2] = xz + wy;
  r[3] = xy + wz;          r[4] = T(1) - (xx + zz); r[5] = yz - wx;
  r[6] = xz - wy;          r[7] = yz + wx;          r[8] = T(1) - (xx + yy);
}

// Pulls a matrix gradient g = dL/dR back to the quaternion q (with the
// normalisation in R(q / |q|)); derivation in docs/fk.md.
template <class T, class V>
inline void quat_matrix_vjp(const V* q, const V* g, V* gq) {
  const V x = q[0], y = q[1], z = q[2], w = q[3];
  const V n = x * x + y * y + z * z + w * w;
  const V s = T(2) / n;
  const V g00 = g[0], g01 = g[1], g02 = g[2];
  const V g10 = g[3], g11 = g[4], g12 = g[5];
  const V g20 = g[6], g21 = g[7], g22 = g[8];
  // <G, K> where R = I + s K.
  const V gk = -g00 * (y * y + z * z) - g11 * (x * x + z * z) - g22 * (x * x + y * y) + (g01 + g10) * (x * y) +
               (g02 + g20) * (x * z) + (g12 + g21) * (y * z) + (g10 - g01) * (z * w) + (g02 - g20) * (y * w) +
               (g21 - g12) * (x * w);
  const V dx = y * (g01 + g10) + z * (g02 + g20) + w * (g21 - g12) - T(2) * x * (g11 + g22);
  const V dy = x * (g01 + g10) + w * (g02 - g20) + z * (g12 + g21) - T(2) * y * (g00 + g22);
  const V dz = w * (g10 - g01) + x * (g02 + g20) + y * (g12 + g21) - T(2) * z * (g00 + g11);
  const V dw = z * (g10 - g01) + y * (g02 - g20) + x * (g21 - g12);
  const V c = T(2) * s * gk / n;  // d s / d q = -(2 s / n) q
  gq[0] = s * dx - c * x;
  gq[1] = s * dy - c * y;
  gq[2] = s * dz - c * z;
  gq[3] = s * dw - c * w;
}

// out = a * b (3x3, row-major rows).
template <class V>
inline void mat_mul(const V* a, const V* b, V* out) {
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) out[r * 3 + c] = a[r * 3] * b[c] + a[r * 3 + 1] * b[3 + c] + a[r * 3 + 2] * b[6 + c];
}

// out = a^T * b (3x3) and out = a^T * v (3-vector).
template <class V>
inline void mat_tmul(const V* a, const V* b, V* out) {
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) out[r * 3 + c] = a[r] * b[c] + a[3 + r] * b[3 + c] + a[6 + r] * b[6 + c];
}
template <class V>
inline void mat_tvec(const V* a, const V* v, V* out) {
  for (int r = 0; r < 3; ++r) out[r] = a[r] * v[0] + a[3 + r] * v[1] + a[6 + r] * v[2];
}

// -- block kernels -------------------------------------------------------------------------

template <class T, int W>
inline void load_offset(const FkInputs<T>& in, const int64_t* pose, int64_t j, Vec<T, W>* o) {
  for (int c = 0; c < 3; ++c) {
    if (in.offsets_batched) {
      for (int l = 0; l < W; ++l) lane<T>(o[c], l) = in.offsets[(pose[l] * in.num_joints + j) * 3 + c];
    } else {
      o[c] = splat<T, W>(in.offsets[j * 3 + c]);
    }
  }
}

// Local rotation matrices of every joint into `local` (9 rows per joint);
// quaternion input is staged in `quats` (4 rows per joint) first.
template <class T, int W>
inline void load_local_rotations(const FkInputs<T>& in, const int64_t* pose, Vec<T, W>* local, Vec<T, W>* quats) {
  const int64_t J = in.num_joints;
  if (in.form == RotationForm::Matrix) {
    stage<T, W>(in.rotations, pose, J * 9, local);
    return;
  }
  stage<T, W>(in.rotations, pose, J * 4, quats);
  for (int64_t j = 0; j < J; ++j) quat_to_matrix<T>(quats + j * 4, local + j * 9);
}

// 0 when every row is finite, NaN otherwise.
template <class T, int W>
inline T nonfinite_probe(const Vec<T, W>* rows, int64_t n_rows) {
  // x - x is 0 for finite x and NaN otherwise; four accumulators keep the
  // adds independent (one chain would be bound by the add latency).
  Vec<T, W> probe[4] = {};
  int64_t k = 0;
  for (; k + 4 <= n_rows; k += 4)
    for (int a = 0; a < 4; ++a) probe[a] += rows[k + a] - rows[k + a];
  for (; k < n_rows; ++k) probe[0] += rows[k] - rows[k];
  const Vec<T, W> total = (probe[0] + probe[1]) + (probe[2] + probe[3]);
  T sum = T(0);
  for (int l = 0; l < W; ++l) sum += lane<T>(total, l);
  return sum;
}

template <class T, int W>
bool forward_block(const FkInputs<T>& in, const int64_t* pose, int count, Vec<T, W>* scratch, T* world_rotations,
                   T* world_positions) {
  using V = Vec<T, W>;
  const int64_t J = in.num_joints;
  V* local = scratch;                // 9 rows per joint
  V* world_rot = local + J * 9;      // 9 rows per joint
  V* world_pos = world_rot + J * 9;  // 3 rows per joint
  V* quats = world_pos + J * 3;      // 4 rows per joint
  T* buffer = reinterpret_cast<T*>(quats + J * 4);  // room for 9 rows per joint
  load_local_rotations<T, W>(in, pose, local, quats);
  for (int64_t j = 0; j < J; ++j) {
    V* wr = world_rot + j * 9;
    V* wp = world_pos + j * 3;
    V o[3];
    load_offset<T, W>(in, pose, j, o);
    const int32_t p = in.parents[j];
    if (p < 0) {
      for (int k = 0; k < 9; ++k) wr[k] = local[j * 9 + k];
      for (int c = 0; c < 3; ++c) wp[c] = o[c];
      if (in.root_translation)
        for (int c = 0; c < 3; ++c)
          for (int l = 0; l < W; ++l) lane<T>(wp[c], l) += in.root_translation[pose[l] * 3 + c];
    } else {
      const V* pr = world_rot + p * 9;
      const V* pp = world_pos + p * 3;
      mat_mul(pr, local + j * 9, wr);
      for (int r = 0; r < 3; ++r) wp[r] = pp[r] + pr[r * 3] * o[0] + pr[r * 3 + 1] * o[1] + pr[r * 3 + 2] * o[2];
    }
  }
  const bool finite = nonfinite_probe<T, W>(world_rot, J * 12) == T(0);  // rotations and positions
  const bool stream = in.batch * J * 12 * int64_t(sizeof(T)) > kStreamBytes;
  unstage<T, W>(world_rot, pose, count, J * 9, world_rotations, buffer, stream);
  unstage<T, W>(world_pos, pose, count, J * 3, world_positions, buffer, stream);
  return finite;
}

template <class T, int W>
bool backward_block(const FkInputs<T>& in, const int64_t* pose, int count, Vec<T, W>* scratch,
                    const T* grad_world_rotations, const T* grad_world_positions, const FkGradients<T>& grads,
                    double* offset_sum) {
  using V = Vec<T, W>;
  const int64_t J = in.num_joints;
  const bool quat = in.form == RotationForm::Quaternion;
  V* local = scratch;             // 9 rows per joint; becomes dL/dlocal
  V* world = local + J * 9;       // 9 rows per joint
  V* adj_rot = world + J * 9;     // 9 rows per joint: dL/dworld rotation
  V* adj_pos = adj_rot + J * 9;   // 3 rows per joint: dL/dworld position; becomes dL/doffset
  V* quats = adj_pos + J * 3;     // 4 rows per joint; becomes dL/dquaternion
  T* buffer = reinterpret_cast<T*>(quats + J * 4);  // room for 9 rows per joint
  load_local_rotations<T, W>(in, pose, local, quats);
  for (int64_t j = 0; j < J; ++j) {
    const int32_t p = in.parents[j];
    if (p < 0) {
      for (int k = 0; k < 9; ++k) world[j * 9 + k] = local[j * 9 + k];
    } else {
      mat_mul(world + p * 9, local + j * 9, world + j * 9);
    }
  }
  if (grad_world_rotations) {
    stage<T, W>(grad_world_rotations, pose, J * 9, adj_rot);
  } else {
    for (int64_t k = 0; k < J * 9; ++k) adj_rot[k] = V{};
  }
  if (grad_world_positions) {
    stage<T, W>(grad_world_positions, pose, J * 3, adj_pos);
  } else {
    for (int64_t k = 0; k < J * 3; ++k) adj_pos[k] = V{};
  }
  V grad_root[3] = {};
  for (int64_t j = J - 1; j >= 0; --j) {
    V* lr = local + j * 9;
    V* gr = adj_rot + j * 9;
    V* gp = adj_pos + j * 3;
    const int32_t p = in.parents[j];
    V grad_local[9];
    if (p < 0) {
      // dL/dlocal = dL/dworld; dL/doffset = dL/dposition stays in gp.
      for (int k = 0; k < 9; ++k) grad_local[k] = gr[k];
      for (int c = 0; c < 3; ++c) grad_root[c] += gp[c];
    } else {
      const V* pw = world + p * 9;
      V* pgr = adj_rot + p * 9;
      V* pgp = adj_pos + p * 3;
      V o[3];
      load_offset<T, W>(in, pose, j, o);
      mat_tmul(pw, gr, grad_local);
      // parent's adjoint += gr * local^T + gp * offset^T
      for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c)
          pgr[r * 3 + c] += gr[r * 3] * lr[c * 3] + gr[r * 3 + 1] * lr[c * 3 + 1] + gr[r * 3 + 2] * lr[c * 3 + 2] +
                            gp[r] * o[c];
      V grad_offset[3];
      mat_tvec(pw, gp, grad_offset);
      for (int c = 0; c < 3; ++c) {
        pgp[c] += gp[c];
        gp[c] = grad_offset[c];
      }
    }
    if (quat) {
      V grad_quat[4];
      quat_matrix_vjp<T>(quats + j * 4, grad_local, grad_quat);
      for (int c = 0; c < 4; ++c) quats[j * 4 + c] = grad_quat[c];
    } else {
      for (int k = 0; k < 9; ++k) lr[k] = grad_local[k];
    }
    if (!in.offsets_batched) {
      for (int c = 0; c < 3; ++c) {
        T sum = T(0);
        for (int l = 0; l < count; ++l) sum += lane<T>(gp[c], l);
        offset_sum[j * 3 + c] += double(sum);
      }
    }
  }
  const bool finite = nonfinite_probe<T, W>(quat ? quats : local, J * (quat ? 4 : 9)) == T(0) &&
                      nonfinite_probe<T, W>(adj_pos, J * 3) == T(0);
  const bool stream = in.batch * J * 12 * int64_t(sizeof(T)) > kStreamBytes;
  unstage<T, W>(quat ? quats : local, pose, count, J * (quat ? 4 : 9), grads.rotations, buffer, stream);
  if (in.offsets_batched) unstage<T, W>(adj_pos, pose, count, J * 3, grads.offsets, buffer, stream);
  if (grads.root_translation)
    for (int l = 0; l < count; ++l)
      for (int c = 0; c < 3; ++c) grads.root_translation[pose[l] * 3 + c] = lane<T>(grad_root[c], l);
  return finite;
}

// Walks [begin, end) in blocks of W poses; a short tail runs one pose at a
// time rather than paying for a mostly empty block.
template <class T, int W, class Block>
bool for_each_block(int64_t begin, int64_t end, Block&& block) {
  bool finite = true;
  int64_t b = begin;
  for (; b + W <= end; b += W) {
    int64_t pose[W];
    for (int l = 0; l < W; ++l) pose[l] = b + l;
    finite &= block(pose, W, /*single=*/false);
  }
  const int64_t tail = end - b;
  if (tail > 0 && tail * 4 >= W) {
    int64_t pose[W];
    for (int l = 0; l < W; ++l) pose[l] = b + (l < tail ? l : tail - 1);
    finite &= block(pose, int(tail), false);
  } else {
    for (; b < end; ++b) finite &= block(&b, 1, /*single=*/true);
  }
  return finite;
}

template <class T, int W>
bool forward_range(const FkInputs<T>& in, int64_t begin, int64_t end, T* scratch, T* world_rotations,
                   T* world_positions) {
  const bool finite = for_each_block<T, W>(begin, end, [&](const int64_t* pose, int count, bool single) {
    return single ? forward_block<T, 1>(in, pose, 1, reinterpret_cast<Vec<T, 1>*>(scratch), world_rotations,
                                        world_positions)
                  : forward_block<T, W>(in, pose, count, reinterpret_cast<Vec<T, W>*>(scratch), world_rotations,
                                        world_positions);
  });
  stream_fence();
  return finite;
}

template <class T, int W>
bool backward_range(const FkInputs<T>& in, int64_t begin, int64_t end, T* scratch, const T* grad_world_rotations,
                    const T* grad_world_positions, const FkGradients<T>& grads, double* offset_sum) {
  const bool finite = for_each_block<T, W>(begin, end, [&](const int64_t* pose, int count, bool single) {
    return single ? backward_block<T, 1>(in, pose, 1, reinterpret_cast<Vec<T, 1>*>(scratch), grad_world_rotations,
                                         grad_world_positions, grads, offset_sum)
                  : backward_block<T, W>(in, pose, count, reinterpret_cast<Vec<T, W>*>(scratch),
                                         grad_world_rotations, grad_world_positions, grads, offset_sum);
  });
  stream_fence();
  return finite;
}

template <class T, int W>
FkKernel<T> make_kernel() {
  return FkKernel<T>{W, &forward_range<T, W>, &backward_range<T, W>};
}

}  // namespace
}  // namespace fastkin::detail::FASTKIN_ISA_NS

// The including file exports its kernels with
// FASTKIN_EXPORT_KERNELS(namespace, float lanes, double lanes).
#define FASTKIN_EXPORT_KERNELS(NS, FLOAT_LANES, DOUBLE_LANES)                                   \
  namespace fastkin::detail {                                                                  \
  template <>                                                                                  \
  FkKernel<float> fk_kernel_##NS<float>() { return NS::make_kernel<float, FLOAT_LANES>(); }    \
  template <>                                                                                  \
  FkKernel<double> fk_kernel_##NS<double>() { return NS::make_kernel<double, DOUBLE_LANES>(); } \
  }
