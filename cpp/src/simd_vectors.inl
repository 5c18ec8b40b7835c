// SIMD vocabulary shared by the per-ISA kernel files (fk_block.inl,
// skin_block.inl): GCC / Clang vector types of W lanes and in-register tile
// transposes. Included inside each file's fastkin::detail::FASTKIN_ISA_NS
// anonymous namespace, so every instruction set gets its own copy.
//
// Nothing in here calls std::: an inline function compiled with AVX-512
// flags could be merged by the linker into the scalar build.

template <class T, int W>
struct VecOf {
  typedef T type;  // W == 1: a plain scalar
};
#define FASTKIN_VEC(T, W)                                        \
  template <>                                                    \
  struct VecOf<T, W> {                                           \
    typedef T type __attribute__((vector_size(W * sizeof(T)))); \
  };
FASTKIN_VEC(float, 4)
FASTKIN_VEC(float, 8)
FASTKIN_VEC(float, 16)
FASTKIN_VEC(double, 2)
FASTKIN_VEC(double, 4)
FASTKIN_VEC(double, 8)
FASTKIN_VEC(double, 16)
#undef FASTKIN_VEC

// W lanes of T (a scalar for W == 1).
template <class T, int W>
using Vec = typename VecOf<T, W>::type;

// x in every lane. x - 0 (not 0 + x, which turns -0 into +0) is exact, so
// the compiler folds it to a plain broadcast.
template <class T, int W>
inline Vec<T, W> splat(T x) {
  return x - Vec<T, W>{};
}

template <class T, class V>
inline T& lane(V& v, int l) {
  return reinterpret_cast<T*>(&v)[l];
}
template <class T, class V>
inline T lane(const V& v, int l) {
  return reinterpret_cast<const T*>(&v)[l];
}

// The sum of the first `count` lanes of v.
template <class T, class V>
inline T lane_sum(const V& v, int count) {
  T sum = T(0);
  for (int l = 0; l < count; ++l) sum += lane<T>(v, l);
  return sum;
}

// -- in-register shuffles ------------------------------------------------------------------

// Whether __builtin_shufflevector exists (GCC >= 12, Clang); without it the
// kernels fall back to element-wise loops.
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define FASTKIN_SHUFFLE 1
#endif
#endif
#ifndef FASTKIN_SHUFFLE
#define FASTKIN_SHUFFLE 0
#endif

// One step of the in-place block transpose: with a and b rows i and i + H of
// a tile, swaps the upper-right and lower-left H x H blocks of the 2 x 2
// block matrix they form (column blocks of width H).
template <int H, class V, std::size_t... C>
inline void swap_blocks(V& a, V& b, std::index_sequence<C...>) {
#if FASTKIN_SHUFFLE
  constexpr int W = sizeof...(C);
  const V low = __builtin_shufflevector(a, b, ((C & H) ? W + int(C) - H : int(C))...);
  const V high = __builtin_shufflevector(a, b, ((C & H) ? W + int(C) : int(C) + H)...);
  a = low;
  b = high;
#endif
}

// Transposes a W x W tile in registers: log2(W) stages of block swaps, each
// touching two rows at a time (so only two temporaries are ever live).
template <class T, int W, int H = W / 2>
inline void transpose_tile_generic(Vec<T, W>* v) {
  if constexpr (H >= 1) {
#pragma GCC unroll 16
    for (int i = 0; i < W; ++i)
      if ((i & H) == 0) swap_blocks<H>(v[i], v[i + H], std::make_index_sequence<W>{});
    transpose_tile_generic<T, W, H / 2>(v);
  }
}

#if defined(__AVX__)
// The first two stages of a float tile transpose, within 128-bit lanes, for
// four rows v[0..3]: afterwards lane m of u[k] holds element 4m + k of the
// four rows (a 4 x 4 transpose inside each lane; it is its own inverse).
// Non-destructive three-operand shuffles: the generic version compiles to
// two-source permutes that overwrite a source, plus a register copy each.
template <class R>
__attribute__((always_inline)) inline void in_lane_4x4(const R* v, R* u) {
  R t[4];
  if constexpr (sizeof(R) == 64) {
#if defined(__AVX512F__)
    t[0] = _mm512_unpacklo_ps(v[0], v[1]);
    t[1] = _mm512_unpackhi_ps(v[0], v[1]);
    t[2] = _mm512_unpacklo_ps(v[2], v[3]);
    t[3] = _mm512_unpackhi_ps(v[2], v[3]);
    u[0] = _mm512_shuffle_ps(t[0], t[2], 0x44);
    u[1] = _mm512_shuffle_ps(t[0], t[2], 0xEE);
    u[2] = _mm512_shuffle_ps(t[1], t[3], 0x44);
    u[3] = _mm512_shuffle_ps(t[1], t[3], 0xEE);
#endif
  } else {
    t[0] = _mm256_unpacklo_ps(v[0], v[1]);
    t[1] = _mm256_unpackhi_ps(v[0], v[1]);
    t[2] = _mm256_unpacklo_ps(v[2], v[3]);
    t[3] = _mm256_unpackhi_ps(v[2], v[3]);
    u[0] = _mm256_shuffle_ps(t[0], t[2], 0x44);
    u[1] = _mm256_shuffle_ps(t[0], t[2], 0xEE);
    u[2] = _mm256_shuffle_ps(t[1], t[3], 0x44);
    u[3] = _mm256_shuffle_ps(t[1], t[3], 0xEE);
  }
}

// Lane m (a 128-bit quarter) of a float vector.
template <int M, class R>
__attribute__((always_inline)) inline __m128 lane128(const R& r) {
  if constexpr (sizeof(R) == 64) {
#if defined(__AVX512F__)
    return _mm512_extractf32x4_ps(r, M);
#endif
  } else {
    return _mm256_extractf128_ps(r, M);
  }
}

// 8 x 8 floats: the in-lane stages, then swap 128-bit lanes.
__attribute__((always_inline)) inline void transpose_8x8(__m256* r) {
  __m256 u[8];
  in_lane_4x4<__m256>(r, u);
  in_lane_4x4<__m256>(r + 4, u + 4);
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x20);
    r[k + 4] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x31);
  }
}
#endif

#if defined(__AVX512F__)
// 16 x 16 floats: the in-lane stages, then twice across 128-bit lanes.
__attribute__((always_inline)) inline void transpose_16x16(__m512* r) {
  __m512 u[16], t[16];
#pragma GCC unroll 4
  for (int g = 0; g < 16; g += 4) in_lane_4x4<__m512>(r + g, u + g);
  // t[k] (k < 4): rows 0..3 and 4..7 of columns k and k + 8; t[k + 4]: of
  // columns k + 4 and k + 12; t[k + 8], t[k + 12]: the same of rows 8..15.
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    t[k] = _mm512_shuffle_f32x4(u[k], u[k + 4], 0x88);
    t[k + 4] = _mm512_shuffle_f32x4(u[k], u[k + 4], 0xDD);
    t[k + 8] = _mm512_shuffle_f32x4(u[k + 8], u[k + 12], 0x88);
    t[k + 12] = _mm512_shuffle_f32x4(u[k + 8], u[k + 12], 0xDD);
  }
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) {
    r[k] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0x88);
    r[k + 8] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0xDD);
  }
}

// 8 x 8 doubles: unpack pairs of rows, then twice across 128-bit lanes.
__attribute__((always_inline)) inline void transpose_8x8(__m512d* r) {
  __m512d t[8];
#pragma GCC unroll 4
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]);
  }
  // r[k], r[k + 2] (k < 2): rows 0..3 of columns k, k + 4 and k + 2, k + 6;
  // r[k + 4], r[k + 6]: the same of rows 4..7.
#pragma GCC unroll 2
  for (int k = 0; k < 2; ++k) {
    r[k] = _mm512_shuffle_f64x2(t[k], t[k + 2], 0x88);
    r[k + 2] = _mm512_shuffle_f64x2(t[k], t[k + 2], 0xDD);
    r[k + 4] = _mm512_shuffle_f64x2(t[k + 4], t[k + 6], 0x88);
    r[k + 6] = _mm512_shuffle_f64x2(t[k + 4], t[k + 6], 0xDD);
  }
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    t[k] = _mm512_shuffle_f64x2(r[k], r[k + 4], 0x88);
    t[k + 4] = _mm512_shuffle_f64x2(r[k], r[k + 4], 0xDD);
  }
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) r[k] = t[k];
}

// Into a small buffer that stays in L1, fewer, wider stores win: after the
// in-lane stages one stage of two-source permutes pairs the 128-bit lanes
// into 256-bit half rows (three shuffle stages instead of four, two stores
// per pose row).
__attribute__((always_inline)) inline void store_half_rows_16x16(const __m512* v, float* row, int64_t stride) {
  __m512 u[16];
#pragma GCC unroll 4
  for (int g = 0; g < 16; g += 4) in_lane_4x4<__m512>(v + g, u + g);
  // [a.L0, b.L0, a.L1, b.L1] and [a.L2, b.L2, a.L3, b.L3] (L: 128-bit lanes)
  const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i second = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      // u[8h + k] lane m: values 8h..8h+3 of pose k + 4m; u[8h + 4 + k]: the next four.
      const __m512 poses_0_4 = _mm512_permutex2var_ps(u[8 * h + k], first, u[8 * h + 4 + k]);
      const __m512 poses_8_12 = _mm512_permutex2var_ps(u[8 * h + k], second, u[8 * h + 4 + k]);
      float* out = row + 8 * h + k * stride;
      _mm256_storeu_ps(out, _mm512_castps512_ps256(poses_0_4));
      _mm256_storeu_ps(out + 4 * stride, _mm512_extractf32x8_ps(poses_0_4, 1));
      _mm256_storeu_ps(out + 8 * stride, _mm512_castps512_ps256(poses_8_12));
      _mm256_storeu_ps(out + 12 * stride, _mm512_extractf32x8_ps(poses_8_12, 1));
    }
  }
}

// The inverse of store_half_rows_16x16: v[k] = value k of 16 pose rows
// (row + l * stride). Each register is loaded as two 256-bit half rows (the
// upper one inserted straight from memory), so one shuffle stage of four is
// done by the loads.
__attribute__((always_inline)) inline void load_half_rows_16x16(const float* row, int64_t stride, __m512* v) {
  __m512 u[16];
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const float* in = row + 8 * h + k * stride;
      const __m512 poses_0_4 =
          _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(in)), _mm256_loadu_ps(in + 4 * stride), 1);
      const __m512 poses_8_12 = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(in + 8 * stride)),
                                                   _mm256_loadu_ps(in + 12 * stride), 1);
      u[8 * h + k] = _mm512_shuffle_f32x4(poses_0_4, poses_8_12, 0x88);
      u[8 * h + 4 + k] = _mm512_shuffle_f32x4(poses_0_4, poses_8_12, 0xDD);
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < 16; g += 4) in_lane_4x4<__m512>(u + g, v + g);
}
#endif

// Transposes a W x W tile in registers (rows become columns).
template <class T, int W>
__attribute__((always_inline)) inline void transpose_tile(Vec<T, W>* v) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4 && W == 16) {
    transpose_16x16(reinterpret_cast<__m512*>(v));
    return;
  } else if constexpr (sizeof(T) == 8 && W == 8) {
    transpose_8x8(reinterpret_cast<__m512d*>(v));
    return;
  }
#endif
#if defined(__AVX__)
  if constexpr (sizeof(T) == 4 && W == 8) {
    transpose_8x8(reinterpret_cast<__m256*>(v));
    return;
  }
#endif
  transpose_tile_generic<T, W>(v);
}

// Writes the transpose of a W x W tile (v[k]: value k of W poses) to the
// first `count` pose rows, row + l * stride (W values each). For float on
// AVX-512 / AVX only the in-lane stages run in registers: each 128-bit lane
// then holds four consecutive values of one pose, and a 16-byte store puts
// it in place, so the shuffle port, which the arithmetic shares, does half
// the work. Those stores are bound by the store units, though, which
// retire one a cycle when they go to different lines, so full AVX-512
// blocks use store_half_rows_16x16 where its 32-byte stores split no line:
// into a block buffer that stays in L1 (`to_l1`), and into the caller's
// arrays when every pose row is 32-byte aligned (fk forward 25-35% faster
// in cache; with rows 16 bytes off it is no faster than the 16-byte
// stores). With 8 lanes the 16-byte stores beat the full transpose (~15%);
// into an L1 buffer the other paths use the full transpose.
template <class T, int W>
__attribute__((always_inline)) inline void store_transposed(const Vec<T, W>* v, T* row, int64_t stride, int count,
                                                            bool to_l1 = false) {
#if defined(__AVX__)
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4 && W == 16) {
    const bool rows_aligned = reinterpret_cast<std::uintptr_t>(row) % 32 == 0 && stride % 8 == 0;
    if (count == W && (to_l1 || rows_aligned)) {
      store_half_rows_16x16(reinterpret_cast<const __m512*>(v), reinterpret_cast<float*>(row), stride);
      return;
    }
  }
  constexpr bool native = sizeof(T) == 4 && (W == 8 || W == 16);
#else
  constexpr bool native = sizeof(T) == 4 && W == 8;
#endif
  if constexpr (native) {
    if (!to_l1) {
      using R = Vec<float, W>;
      constexpr int kLanes = W / 4;  // 128-bit lanes per vector
      const bool full = count == W;
#pragma GCC unroll 4
      for (int g = 0; g < W; g += 4) {
        R u[4];
        in_lane_4x4<R>(reinterpret_cast<const R*>(v + g), u);
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) {
          float* out = reinterpret_cast<float*>(row) + g + k * stride;
          const int64_t step = 4 * stride;  // lane m + 1 is pose k + 4(m + 1)
          if (full || k < count) _mm_storeu_ps(out, lane128<0>(u[k]));
          if (full || k + 4 < count) _mm_storeu_ps(out + step, lane128<1>(u[k]));
          if constexpr (kLanes == 4) {
            if (full || k + 8 < count) _mm_storeu_ps(out + 2 * step, lane128<2>(u[k]));
            if (full || k + 12 < count) _mm_storeu_ps(out + 3 * step, lane128<3>(u[k]));
          }
        }
      }
      return;
    }
  }
#endif
  Vec<T, W> t[W];
  for (int k = 0; k < W; ++k) t[k] = v[k];
  transpose_tile<T, W>(t);
  for (int l = 0; l < count; ++l) __builtin_memcpy(row + l * stride, &t[l], sizeof(t[l]));
}
