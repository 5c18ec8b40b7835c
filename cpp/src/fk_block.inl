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

// Row c of dst gets value c of each lane's pose row: lane l reads row
// min(l, count - 1) of src (rows of `cols` values), so the lanes past a
// short block repeat its last pose. Rows are moved a W x W tile at a time;
// a ragged end is covered by one more tile overlapping the last (its
// overlap rewrites the same values), far cheaper than moving the leftover
// values one lane at a time.
template <class T, int W>
inline void stage(const T* src, int count, int64_t cols, Vec<T, W>* dst) {
  if constexpr (W > 1 && FASTKIN_SHUFFLE) {
    if (cols >= W) {
      for (int64_t c = 0; c < cols; c += W) {
        const int64_t c0 = c + W <= cols ? c : cols - W;
        Vec<T, W> v[W];
#if defined(__AVX512F__)
        if constexpr (sizeof(T) == 4 && W == 16) {
          if (count == W) {
            load_half_rows_16x16(reinterpret_cast<const float*>(src) + c0, cols, reinterpret_cast<__m512*>(v));
#pragma GCC unroll 16
            for (int k = 0; k < W; ++k) dst[c0 + k] = v[k];
            continue;
          }
        }
#endif
        const T* row = src + c0;
#pragma GCC unroll 16
        for (int l = 0; l < W; ++l) {
          __builtin_memcpy(&v[l], row, sizeof(v[l]));
          if (l + 1 < count) row += cols;
        }
        transpose_tile<T, W>(v);
#pragma GCC unroll 16
        for (int k = 0; k < W; ++k) dst[c0 + k] = v[k];
      }
      return;
    }
  }
  for (int64_t c = 0; c < cols; ++c)
    for (int l = 0; l < W; ++l) lane<T>(dst[c], l) = src[(l < count ? l : count - 1) * cols + c];
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

// Non-temporal copies of a finished block, drip-fed between the joints of
// the next. Issued in one burst they fill the store buffer and stall the
// core until memory drains them; a few lines per joint overlap the memory
// traffic with the math. (Feeding them between the transposes too, or
// double-buffering, measured slower: more store pressure, more L1 misses.)
template <class T>
struct StreamQueue {
  static constexpr int64_t kLine = 64 / sizeof(T);  // values per cache line
  T* buffer;             // where a block is assembled (W * J * 12 values)
  int64_t per_step = 0;  // values copied per step(), a whole number of lines
  const T* src[2];
  T* dst[2];
  int64_t left[2] = {0, 0};  // values still to copy
  int next = 0, size = 0;

  // Queues dst[0, count) = src[0, count).
  void push(T* to, const T* from, int64_t count) {
    // Plain stores up to the first line boundary, so every later chunk is
    // whole aligned lines.
    while (count > 0 && reinterpret_cast<std::uintptr_t>(to) % 64 != 0) {
      *to++ = *from++;
      --count;
    }
    src[size] = from;
    dst[size] = to;
    left[size] = count;
    ++size;
  }

  // Copies the next per_step values.
  void step() {
    int64_t budget = per_step;
    while (budget > 0 && next < size) {
      const int64_t n = budget < left[next] ? budget : left[next];
      stream_copy(dst[next], src[next], n);
      src[next] += n;
      dst[next] += n;
      left[next] -= n;
      budget -= n;
      if (left[next] == 0) ++next;
    }
  }

  void drain() {
    for (; next < size; ++next) stream_copy(dst[next], src[next], left[next]);
    next = size = 0;
  }
};

// Streams one block's output (pose rows of `cols` values, a contiguous
// region starting on a cache line) straight from the transposed tiles as
// whole cache lines: no block buffer, and the caller emits each tile as
// soon as the tree walk has finished its joints, so the memory traffic
// runs through the whole block instead of bursting. (SMPL forward, AVX-512
// float: B = 4096 2.9 -> 2.35 ns per joint in C++, B = 65536 3.7 -> 2.6;
// 31 and 55 joints, whose rows start anywhere in a line, 4.2 -> 2.9 and
// 5.1 -> 3.2; double 22, 31, 55 joints 6.0 -> 4.9, 8.6 -> 4.9, 10.7 ->
// 6.4.) With AVX-512 any joint count with a line of position values; with
// AVX2 a multiple of 8 joints.
template <class T>
struct LineStream {
#if !defined(__AVX512F__) && !defined(__AVX2__)
  static constexpr bool kBuilt = false;
  static constexpr int kRows = 0;
  static bool fits(int64_t) { return false; }
  void prepare(int64_t) {}
#elif !defined(__AVX512F__)
  // AVX2: 8 float or 4 double poses, and a tile row is half a line. A first
  // half waits in `pending` for the row's next tile, or is completed by the
  // next row's first tile (`head`, already there); a second half goes out
  // right after the first, so the two stores fill one write-combining line.
  static constexpr bool kBuilt = true;
  static constexpr int kRows = 32 / sizeof(T);
  using R = Vec<T, kRows>;
  T* region = nullptr;
  int64_t cols = 0;
  int64_t next = 0;
  alignas(32) R pending[kRows];
  alignas(32) R head[kRows];

  static bool fits(int64_t num_joints) { return num_joints % 8 == 0; }
  void prepare(int64_t row_cols) { cols = row_cols; }
  void start(T* block_region) {
    region = block_region;
    next = 0;
  }
  void finish() {}  // a row's last half line went out with the next row's head

  // cols is a multiple of the tile width here: no overlapping last tile.
  template <class V>
  __attribute__((always_inline)) inline void emit(const V* rows, int64_t done) {
    for (; next < cols && next + kRows <= done; next += kRows) {
      const int64_t c0 = next;
      R r[kRows];
#pragma GCC unroll 8
      for (int k = 0; k < kRows; ++k) r[k] = rows[c0 + k];
      transpose_tile<T, kRows>(r);
#pragma GCC unroll 8
      for (int l = 0; l < kRows; ++l) {
        const int64_t at = l * cols + c0;
        T* out = region + at;
        if ((at / kRows) % 2 == 0) {
          if (c0 + kRows < cols) {
            pending[l] = r[l];
          } else {
            put(out, r[l]);
            put(out + kRows, head[(l + 1) % kRows]);
          }
        } else if (c0 == 0) {
          head[l] = r[l];
        } else {
          put(out - kRows, pending[l]);
          put(out, r[l]);
        }
      }
    }
  }

  static void put(T* out, const R& v) {
    if constexpr (sizeof(T) == 4)
      _mm256_stream_ps(reinterpret_cast<float*>(out), reinterpret_cast<__m256>(v));
    else
      _mm256_stream_pd(reinterpret_cast<double*>(out), reinterpret_cast<__m256d>(v));
  }
#else
  static constexpr bool kBuilt = true;
  static constexpr int kRows = 64 / sizeof(T);  // poses in a block, values in a line
  using Line = Vec<T, kRows>;
  typedef int64_t Index __attribute__((vector_size(64)));  // permute indices: 16 int32 or 8 int64
  T* region = nullptr;
  int64_t cols = 0;
  int64_t next = 0;  // first column of the next tile
  // Rows start anywhere in a line. Per row: where its start falls in its
  // line, its first tile row (`head`, which ends the line the row before
  // leaves open) and its latest. Lines are put together with one
  // two-source permute: `shift[s]` takes s values from the end of the
  // first source, then the start of the second; `tail[l]` the line that
  // row l's overlapping last tile completes.
  int offset[kRows];
  alignas(64) Line head[kRows];
  alignas(64) Line latest[kRows];
  alignas(64) Index shift[kRows];
  alignas(64) Index tail[kRows];

  // Whether a block of num_joints joints can stream this way: a tile
  // needs at least a line of position values.
  static bool fits(int64_t num_joints) { return num_joints * 3 >= kRows; }

  // Once per call: the row layout of every block (the same in each).
  void prepare(int64_t row_cols) {
    cols = row_cols;
    const int q = int(cols % kRows);
    for (int s = 0; s < kRows; ++s)
      for (int i = 0; i < kRows; ++i) set_index(shift[s], i, i < s ? kRows - s + i : kRows + i - s);
    for (int l = 0; l < kRows; ++l) {
      const int s = int(l * cols % kRows);
      offset[l] = s;
      // The line at cols - q - s: values before cols - q from the last
      // whole tile, the rest from the last tile (which starts at cols - kRows).
      for (int i = 0; i < kRows; ++i) set_index(tail[l], i, i < s ? kRows - s + i : 2 * kRows - q - s + i);
    }
  }

  void start(T* block_region) {
    region = block_region;
    next = 0;
  }

  // Emits, in column order, the tiles within the first `done` columns of
  // rows (scratch rows: value c of the block's poses); the last tile
  // overlaps the one before when cols is not a multiple of the width.
  template <class V>
  __attribute__((always_inline)) inline void emit(const V* rows, int64_t done) {
    while (next < cols) {
      const int64_t c0 = next + kRows <= cols ? next : cols - kRows;
      if (c0 + kRows > done) return;
      tile(reinterpret_cast<const Line*>(rows) + c0, c0);
      next = c0 + kRows;
    }
  }

  __attribute__((always_inline)) inline void tile(const Line* v, int64_t c0) {
    Line r[kRows];
#pragma GCC unroll 16
    for (int k = 0; k < kRows; ++k) r[k] = v[k];
    transpose_tile<T, kRows>(r);  // r[l]: values c0 .. c0 + kRows - 1 of pose l
    const int64_t q = cols % kRows;
    const bool overlap = c0 % kRows != 0;  // the last tile: only its last q values are new
#pragma GCC unroll 16
    for (int l = 0; l < kRows; ++l) {
      const int s = offset[l];
      T* row = region + l * cols;
      if (!overlap) {
        if (c0 == 0) head[l] = r[l];
        if (s == 0)
          put(row + c0, r[l]);
        else if (c0 > 0)  // the line from s values of the tile before and this tile's first
          put(row + c0 - s, permute(latest[l], shift[s], r[l]));
      } else if (s + q >= kRows) {  // the overlapping tile completes one more line within the row
        put(row + (cols - q) - s, permute(latest[l], tail[l], r[l]));
      }
      latest[l] = r[l];
    }
  }

  // After the block's last tile: the lines that straddle two rows (the end
  // of row l, from its last tile, and the start of row l + 1).
  void finish() {
    for (int l = 0; l + 1 < kRows; ++l) {
      const int t = offset[l + 1];
      if (t != 0) put(region + (l + 1) * cols - t, permute(latest[l], shift[t], head[l + 1]));
    }
  }

  static void set_index(Index& index, int i, int value) {
    if constexpr (sizeof(T) == 4)
      reinterpret_cast<int32_t*>(&index)[i] = value;
    else
      reinterpret_cast<int64_t*>(&index)[i] = value;
  }
  static Line permute(const Line& a, const Index& index, const Line& b) {
    if constexpr (sizeof(T) == 4)
      return reinterpret_cast<Line>(_mm512_permutex2var_ps(reinterpret_cast<__m512>(a),
                                                           reinterpret_cast<__m512i>(index),
                                                           reinterpret_cast<__m512>(b)));
    else
      return reinterpret_cast<Line>(_mm512_permutex2var_pd(reinterpret_cast<__m512d>(a),
                                                           reinterpret_cast<__m512i>(index),
                                                           reinterpret_cast<__m512d>(b)));
  }
  static void put(T* out, const Line& v) {
    if constexpr (sizeof(T) == 4)
      _mm512_stream_ps(reinterpret_cast<float*>(out), reinterpret_cast<__m512>(v));
    else
      _mm512_stream_pd(reinterpret_cast<double*>(out), reinterpret_cast<__m512d>(v));
  }
#endif
};

// The inverse of stage: writes `count` pose rows of `cols` values,
// dst + l * cols (`to_buffer`: a block buffer that stays in L1).
template <class T, int W>
inline void unstage(const Vec<T, W>* src, int count, int64_t cols, T* dst, bool to_buffer = false) {
  if constexpr (W > 1 && FASTKIN_SHUFFLE) {
    if (cols >= W) {
      for (int64_t c = 0; c < cols; c += W) {
        const int64_t c0 = c + W <= cols ? c : cols - W;  // the overlapping last tile, as in stage
        store_transposed<T, W>(src + c0, dst + c0, cols, count, to_buffer);
      }
      return;
    }
  }
  for (int64_t c = 0; c < cols; ++c)
    for (int l = 0; l < count; ++l) dst[l * cols + c] = lane<T>(src[c], l);
}

// -- rotation math on rows -----------------------------------------------------------------
//
// These helpers (and load_offset, the finiteness probes) are forced inline:
// GCC's inlining budget is shared across this file, and a larger variant of
// it left mat_mul and the quaternion helpers as calls, one per joint, each
// spilling every live vector register. Forced, this file also came out
// 1-3% faster.

// 2 / n. With single precision on AVX-512: the hardware reciprocal
// estimate (14 bits) and one Newton step (relative error ~2^-27, a few
// times cheaper than a vector divide); the divide otherwise. (AVX's 12-bit
// estimate left ~2^-23 after its Newton step, a bias that added up to
// 1e-5 down a 131-joint chain; its divide measured no slower.) n = 0
// gives NaN (through inf * 0), which the callers' finiteness checks catch.
template <class T, class V>
__attribute__((always_inline)) inline V two_over(const V& n) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4 && sizeof(V) == 64) {
    const V r = reinterpret_cast<V>(_mm512_rcp14_ps(reinterpret_cast<__m512>(n)));
    return (r + r) * (T(2) - n * r);
  }
#endif
  return T(2) / n;
}

// Rotation matrix (9 rows, row-major) of xyzw quaternions q (4 rows), using
// q / |q|. Returns s = 2 / |q|^2.
template <class T, class V>
__attribute__((always_inline)) inline V quat_to_matrix(const V* q, V* r) {
  const V x = q[0], y = q[1], z = q[2], w = q[3];
  const V s = two_over<T>(x * x + y * y + z * z + w * w);
  const V xs = x * s, ys = y * s, zs = z * s;
  const V xx = x * xs, yy = y * ys, zz = z * zs;
  const V xy = x * ys, xz = x * zs, yz = y * zs;
  const V wx = w * xs, wy = w * ys, wz = w * zs;
  r[0] = T(1) - (yy + zz); r[1] = xy - wz;          r[2] = xz + wy;
  r[3] = xy + wz;          r[4] = T(1) - (xx + zz); r[5] = yz - wx;
  r[6] = xz - wy;          r[7] = yz + wx;          r[8] = T(1) - (xx + yy);
  return s;
}

// Pulls a matrix gradient g = dL/dR back to the quaternion q (with the
// normalisation in R(q / |q|)); derivation in docs/fk.md.
template <class T, class V>
__attribute__((always_inline)) inline void quat_matrix_vjp(const V* q, const V* g, V* gq) {
  const V x = q[0], y = q[1], z = q[2], w = q[3];
  const V s = two_over<T>(x * x + y * y + z * z + w * w);
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
  const V c = s * s * gk;  // d s / d q = -(2 s / n) q = -s^2 q
  gq[0] = s * dx - c * x;
  gq[1] = s * dy - c * y;
  gq[2] = s * dz - c * z;
  gq[3] = s * dw - c * w;
}

// out = a * b (3x3, row-major rows).
template <class V>
__attribute__((always_inline)) inline void mat_mul(const V* a, const V* b, V* out) {
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) out[r * 3 + c] = a[r * 3] * b[c] + a[r * 3 + 1] * b[3 + c] + a[r * 3 + 2] * b[6 + c];
}

// out = a^T * b (3x3) and out = a^T * v (3-vector).
template <class V>
__attribute__((always_inline)) inline void mat_tmul(const V* a, const V* b, V* out) {
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) out[r * 3 + c] = a[r] * b[c] + a[3 + r] * b[3 + c] + a[6 + r] * b[6 + c];
}
template <class V>
__attribute__((always_inline)) inline void mat_tvec(const V* a, const V* v, V* out) {
  for (int r = 0; r < 3; ++r) out[r] = a[r] * v[0] + a[3 + r] * v[1] + a[6 + r] * v[2];
}

// -- block kernels -------------------------------------------------------------------------

template <class T, int W>
__attribute__((always_inline)) inline void load_offset(const FkInputs<T>& in, const int64_t* pose, int64_t j,
                                                       Vec<T, W>* o) {
  // Shared offsets branch once, not per component: with the check inside
  // the loop GCC built o in memory, lane by lane (the walk ~10% slower).
  if (!in.offsets_batched) {
    for (int c = 0; c < 3; ++c) o[c] = splat<T, W>(in.offsets[j * 3 + c]);
    return;
  }
  for (int c = 0; c < 3; ++c)
    for (int l = 0; l < W; ++l) lane<T>(o[c], l) = in.offsets[(pose[l] * in.num_joints + j) * 3 + c];
}

// Adds 0 to `probe` for finite x and NaN otherwise (x * 0 is NaN for an
// infinity; the compiler may not fold it without -ffast-math).
template <class T, class V>
__attribute__((always_inline)) inline void probe_finite(V& probe, const V& x) {
  probe += x * T(0);
}

// 0 when every row is finite, NaN otherwise.
template <class T, int W>
__attribute__((always_inline)) inline T nonfinite_probe(const Vec<T, W>* rows, int64_t n_rows) {
  // Four accumulators keep the adds independent (one chain would be bound
  // by the add latency).
  Vec<T, W> probe[4] = {};
  for (int64_t k = 0; k < n_rows; ++k) probe_finite<T>(probe[k & 3], rows[k]);
  return lane_sum<T>((probe[0] + probe[1]) + (probe[2] + probe[3]), W);
}

// Forward kinematics of one block. With `lines` (large outputs that allow
// it; full blocks) each output tile is streamed as whole lines as soon as
// the walk has finished its joints. With a `queue` (other large outputs) a
// full block is assembled in the queue's buffer and queued for streaming,
// once the previous block's copies have dripped out between this block's
// joints.
template <class T, int W>
bool forward_block(const FkInputs<T>& in, const int64_t* pose, int count, Vec<T, W>* scratch, StreamQueue<T>* queue,
                   T* world_rotations, T* world_positions, LineStream<T>* lines = nullptr) {
  using V = Vec<T, W>;
  const int64_t J = in.num_joints;
  const bool quat = in.form == RotationForm::Quaternion;
  V* world_rot = scratch;            // 9 rows per joint
  V* world_pos = world_rot + J * 9;  // 3 rows per joint
  V* input = world_pos + J * 3;      // the staged rotations: 4 or 9 rows per joint
  const int64_t rot_cols = J * (quat ? 4 : 9);
  stage<T, W>(in.rotations + pose[0] * rot_cols, count, rot_cols, input);
  if (count < W) lines = nullptr;
  // Only blocks of a LineStream's width stream by lines (none in the scalar build).
  constexpr bool kLines = W == LineStream<T>::kRows;
  if constexpr (kLines) {
    if (lines) {
      lines[0].start(world_rotations + pose[0] * J * 9);
      lines[1].start(world_positions + pose[0] * J * 3);
    }
  }
  // Two accumulators: one add chain per joint would wait on the add latency.
  V probe[2] = {};
  for (int64_t j = 0; j < J; ++j) {
    if (queue) queue->step();
    // The joint's local rotation, kept in registers: it is read only here.
    V local[9];
    if (quat) {
      const V s = quat_to_matrix<T>(input + j * 4, local);
      // Non-finite components or a zero quaternion make the sum or s
      // non-finite, or their product 0 * inf: one value per joint to probe
      // instead of nine.
      const V* q = input + j * 4;
      probe_finite<T>(probe[0], (q[0] + q[1] + q[2] + q[3]) * s);
    } else {
      for (int k = 0; k < 9; ++k) local[k] = input[j * 9 + k];
    }
    V o[3];
    load_offset<T, W>(in, pose, j, o);
    V rot[9], pos[3];
    const int32_t p = in.parents[j];
    if (p < 0) {
      for (int k = 0; k < 9; ++k) rot[k] = local[k];
      for (int c = 0; c < 3; ++c) pos[c] = o[c];
      if (in.root_translation)
        for (int c = 0; c < 3; ++c)
          for (int l = 0; l < W; ++l) lane<T>(pos[c], l) += in.root_translation[pose[l] * 3 + c];
    } else {
      V pr[9], pp[3];
      for (int k = 0; k < 9; ++k) pr[k] = world_rot[p * 9 + k];
      for (int c = 0; c < 3; ++c) pp[c] = world_pos[p * 3 + c];
      mat_mul(pr, local, rot);
      for (int r = 0; r < 3; ++r) pos[r] = pp[r] + pr[r * 3] * o[0] + pr[r * 3 + 1] * o[1] + pr[r * 3 + 2] * o[2];
    }
    // Matrix input is not normalised: products of large matrices can
    // overflow, so every world value is probed; with quaternions the
    // rotations are bounded and only the positions can go astray.
    if (!quat)
      for (int k = 0; k < 9; ++k) probe_finite<T>(probe[k & 1], rot[k]);
    for (int c = 0; c < 3; ++c) probe_finite<T>(probe[1], pos[c]);
    for (int k = 0; k < 9; ++k) world_rot[j * 9 + k] = rot[k];
    for (int c = 0; c < 3; ++c) world_pos[j * 3 + c] = pos[c];
    if constexpr (kLines) {
      if (lines) {
        lines[0].emit(world_rot, (j + 1) * 9);
        lines[1].emit(world_pos, (j + 1) * 3);
      }
    }
  }
  const T sum = lane_sum<T>(probe[0] + probe[1], W);
  if constexpr (kLines) {
    if (lines) {
      lines[0].finish();
      lines[1].finish();
    }
  }
  if (lines) return sum == T(0);
  T* out_rot = world_rotations + pose[0] * J * 9;
  T* out_pos = world_positions + pose[0] * J * 3;
  if (queue && count == W) {
    queue->drain();
    unstage<T, W>(world_rot, W, J * 9, queue->buffer, true);
    unstage<T, W>(world_pos, W, J * 3, queue->buffer + W * J * 9, true);
    queue->push(out_rot, queue->buffer, W * J * 9);
    queue->push(out_pos, queue->buffer + W * J * 9, W * J * 3);
    return sum == T(0);
  }
  if (queue) queue->drain();
  unstage<T, W>(world_rot, count, J * 9, out_rot);
  unstage<T, W>(world_pos, count, J * 3, out_pos);
  return sum == T(0);
}

// Software prefetch of the next block's inputs, a few lines per joint of
// the current one. stage reads a block tile by tile, striding across its
// pose rows, which the hardware prefetchers follow late; fetching ahead
// made the backward ~8% faster at B = 4096. (In the forward it measured
// slower: there the memory traffic is the output stream's.)
struct Prefetcher {
  static constexpr int kLinesPerStep = 8;
  const char* at[3];
  int64_t left[3] = {0, 0, 0};  // bytes still to fetch
  int next = 0, size = 0;

  template <class T>
  void add(const T* from, int64_t count) {
    if (!from || count <= 0) return;
    at[size] = reinterpret_cast<const char*>(from);
    left[size] = int64_t(sizeof(T)) * count;
    ++size;
  }

  void step() {
    for (int lines = kLinesPerStep; lines > 0 && next < size; --lines) {
      __builtin_prefetch(at[next], 0, 3);
      at[next] += 64;
      left[next] -= 64;
      if (left[next] <= 0) ++next;
    }
  }
};

// Backward of one block. Shared offsets: full blocks add their offset
// gradient into the lanes of `offset_acc` (3 rows per joint; summed across
// lanes by the caller), others straight into offset_sum. Without
// kOffsets the offset gradient is not computed (a compile-time switch: a
// run-time one cost the full pass what it saved the other). `prefetch` is
// stepped once per joint in each of the two passes.
template <class T, int W, bool kOffsets>
bool backward_block(const FkInputs<T>& in, const int64_t* pose, int count, Vec<T, W>* scratch,
                    const T* grad_world_rotations, const T* grad_world_positions, const FkGradients<T>& grads,
                    Vec<T, W>* offset_acc, double* offset_sum, Prefetcher* prefetch = nullptr) {
  using V = Vec<T, W>;
  const int64_t J = in.num_joints;
  const bool quat = in.form == RotationForm::Quaternion;
  // Quaternion input keeps only the staged quaternions and recomputes each
  // local matrix where it is needed: 9 rows per joint less keeps the block
  // in L1. Matrix input's staged rows are the local matrices.
  V* world = scratch;             // 9 rows per joint
  V* adj_rot = world + J * 9;     // 9 rows per joint: dL/dworld rotation
  V* adj_pos = adj_rot + J * 9;   // 3 rows per joint: dL/dworld position; becomes dL/doffset
  V* input = adj_pos + J * 3;     // 4 or 9 rows per joint; becomes dL/dinput
  const int64_t rot_cols = J * (quat ? 4 : 9);
  stage<T, W>(in.rotations + pose[0] * rot_cols, count, rot_cols, input);
  auto local_of = [&](int64_t j, V* lr) {
    if (quat) {
      quat_to_matrix<T>(input + j * 4, lr);
    } else {
      for (int k = 0; k < 9; ++k) lr[k] = input[j * 9 + k];
    }
  };
  for (int64_t j = 0; j < J; ++j) {
    if (prefetch) prefetch->step();
    const int32_t p = in.parents[j];
    V lr[9], out[9];
    local_of(j, lr);
    if (p < 0) {
      for (int k = 0; k < 9; ++k) out[k] = lr[k];
    } else {
      V pw[9];
      for (int k = 0; k < 9; ++k) pw[k] = world[p * 9 + k];
      mat_mul(pw, lr, out);
    }
    for (int k = 0; k < 9; ++k) world[j * 9 + k] = out[k];
  }
  if (grad_world_rotations) {
    stage<T, W>(grad_world_rotations + pose[0] * J * 9, count, J * 9, adj_rot);
  } else {
    for (int64_t k = 0; k < J * 9; ++k) adj_rot[k] = V{};
  }
  if (grad_world_positions) {
    stage<T, W>(grad_world_positions + pose[0] * J * 3, count, J * 3, adj_pos);
  } else {
    for (int64_t k = 0; k < J * 3; ++k) adj_pos[k] = V{};
  }
  V grad_root[3] = {};
  for (int64_t j = J - 1; j >= 0; --j) {
    if (prefetch) prefetch->step();
    // Everything this joint reads goes to registers first: through the
    // scratch pointers, which may alias, each store would force reloads.
    V gr[9], gp[3];
    for (int k = 0; k < 9; ++k) gr[k] = adj_rot[j * 9 + k];
    for (int c = 0; c < 3; ++c) gp[c] = adj_pos[j * 3 + c];
    const int32_t p = in.parents[j];
    V grad_local[9], grad_offset[3];
    if (p < 0) {
      // dL/dlocal = dL/dworld; dL/doffset = dL/dposition.
      for (int k = 0; k < 9; ++k) grad_local[k] = gr[k];
      for (int c = 0; c < 3; ++c) {
        grad_root[c] += gp[c];
        grad_offset[c] = gp[c];
      }
    } else {
      V pw[9], lr[9], o[3];
      for (int k = 0; k < 9; ++k) pw[k] = world[p * 9 + k];
      local_of(j, lr);
      load_offset<T, W>(in, pose, j, o);
      mat_tmul(pw, gr, grad_local);
      if constexpr (kOffsets) mat_tvec(pw, gp, grad_offset);
      // parent's adjoint += gr * local^T + gp * offset^T
      V* pgr = adj_rot + p * 9;
      V* pgp = adj_pos + p * 3;
      for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c)
          pgr[r * 3 + c] += gr[r * 3] * lr[c * 3] + gr[r * 3 + 1] * lr[c * 3 + 1] + gr[r * 3 + 2] * lr[c * 3 + 2] +
                            gp[r] * o[c];
      for (int c = 0; c < 3; ++c) pgp[c] += gp[c];
    }
    if constexpr (kOffsets)
      for (int c = 0; c < 3; ++c) adj_pos[j * 3 + c] = grad_offset[c];
    if (quat) {
      V grad_quat[4];
      quat_matrix_vjp<T>(input + j * 4, grad_local, grad_quat);
      for (int c = 0; c < 4; ++c) input[j * 4 + c] = grad_quat[c];
    } else {
      for (int k = 0; k < 9; ++k) input[j * 9 + k] = grad_local[k];
    }
    if (kOffsets && !in.offsets_batched) {
      if (offset_acc && count == W) {
        for (int c = 0; c < 3; ++c) offset_acc[j * 3 + c] += grad_offset[c];
      } else {
        for (int c = 0; c < 3; ++c) offset_sum[j * 3 + c] += double(lane_sum<T>(grad_offset[c], count));
      }
    }
  }
  const bool finite = nonfinite_probe<T, W>(input, rot_cols) == T(0) && nonfinite_probe<T, W>(adj_pos, J * 3) == T(0);
  unstage<T, W>(input, count, rot_cols, grads.rotations + pose[0] * rot_cols);
  if (kOffsets && in.offsets_batched) unstage<T, W>(adj_pos, count, J * 3, grads.offsets + pose[0] * J * 3);
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
                   T* world_positions, bool stream_large_outputs) {
  const int64_t J = in.num_joints;
  StreamQueue<T> queue;
  queue.buffer = scratch + J * 21 * W;  // after forward_block's 21 rows per joint
  // One block's output spread over the next block's joints, in whole lines.
  queue.per_step = ((W * 12 + queue.kLine - 1) / queue.kLine) * queue.kLine;
  const bool large = in.batch * J * 12 * int64_t(sizeof(T)) > kStreamBytes;
  StreamQueue<T>* stream = stream_large_outputs && large ? &queue : nullptr;
  // Whole lines straight from the tiles where the layout allows it
  // (line-aligned outputs; see LineStream::fits); the queue otherwise.
  LineStream<T> lines[2];
  const bool line_aligned = reinterpret_cast<std::uintptr_t>(world_rotations) % 64 == 0 &&
                            reinterpret_cast<std::uintptr_t>(world_positions) % 64 == 0;
  const bool by_lines = LineStream<T>::kBuilt && W == LineStream<T>::kRows && stream && line_aligned &&
                        LineStream<T>::fits(J);
  if (by_lines) {
    lines[0].prepare(J * 9);
    lines[1].prepare(J * 3);
  }
  const bool finite = for_each_block<T, W>(begin, end, [&](const int64_t* pose, int count, bool single) {
    return single ? forward_block<T, 1>(in, pose, 1, reinterpret_cast<Vec<T, 1>*>(scratch), nullptr,
                                        world_rotations, world_positions)
                  : forward_block<T, W>(in, pose, count, reinterpret_cast<Vec<T, W>*>(scratch),
                                        by_lines ? nullptr : stream, world_rotations, world_positions,
                                        by_lines ? lines : nullptr);
  });
  queue.drain();
  stream_fence();
  return finite;
}

template <class T, int W>
bool backward_range(const FkInputs<T>& in, int64_t begin, int64_t end, T* scratch, const T* grad_world_rotations,
                    const T* grad_world_positions, const FkGradients<T>& grads, double* offset_sum) {
  using V = Vec<T, W>;
  const int64_t J = in.num_joints;
  // Shared offsets: lane-wise sums over full blocks, flushed to offset_sum
  // in double every kFlush blocks (a longer float sum would lose digits) and
  // at the end: one horizontal sum per joint per kFlush blocks, not per block.
  constexpr int kFlush = 64;
  V* acc = in.offsets_batched || !offset_sum ? nullptr : reinterpret_cast<V*>(scratch) + J * 30;  // after the rows
  for (int64_t k = 0; acc && k < J * 3; ++k) acc[k] = V{};
  int pending = 0;
  auto flush = [&] {
    for (int64_t k = 0; k < J * 3; ++k) {
      offset_sum[k] += double(lane_sum<T>(acc[k], W));
      acc[k] = V{};
    }
    pending = 0;
  };
  const bool offsets = in.offsets_batched ? grads.offsets != nullptr : offset_sum != nullptr;
  const bool finite = for_each_block<T, W>(begin, end, [&](const int64_t* pose, int count, bool single) {
    if (single)
      return offsets ? backward_block<T, 1, true>(in, pose, 1, reinterpret_cast<Vec<T, 1>*>(scratch),
                                                  grad_world_rotations, grad_world_positions, grads, nullptr,
                                                  offset_sum)
                     : backward_block<T, 1, false>(in, pose, 1, reinterpret_cast<Vec<T, 1>*>(scratch),
                                                   grad_world_rotations, grad_world_positions, grads, nullptr,
                                                   offset_sum);
    Prefetcher prefetch;
    const int64_t next = pose[0] + W;
    if (count == W && next + W <= end) {
      const int64_t rot_cols = J * (in.form == RotationForm::Quaternion ? 4 : 9);
      prefetch.add(in.rotations + next * rot_cols, W * rot_cols);
      if (grad_world_rotations) prefetch.add(grad_world_rotations + next * J * 9, W * J * 9);
      if (grad_world_positions) prefetch.add(grad_world_positions + next * J * 3, W * J * 3);
    }
    V* rows = reinterpret_cast<V*>(scratch);
    const bool ok = offsets ? backward_block<T, W, true>(in, pose, count, rows, grad_world_rotations,
                                                         grad_world_positions, grads, acc, offset_sum, &prefetch)
                            : backward_block<T, W, false>(in, pose, count, rows, grad_world_rotations,
                                                          grad_world_positions, grads, acc, offset_sum, &prefetch);
    if (acc && ++pending == kFlush) flush();
    return ok;
  });
  if (acc) flush();
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
