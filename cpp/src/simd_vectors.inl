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

template <class T, int W>
inline Vec<T, W> splat(T x) {
  Vec<T, W> v = {};
  return v + x;
}

template <class T, class V>
inline T& lane(V& v, int l) {
  return reinterpret_cast<T*>(&v)[l];
}
template <class T, class V>
inline T lane(const V& v, int l) {
  return reinterpret_cast<const T*>(&v)[l];
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
inline void transpose_tile(Vec<T, W>* v) {
  if constexpr (H >= 1) {
#pragma GCC unroll 16
    for (int i = 0; i < W; ++i)
      if ((i & H) == 0) swap_blocks<H>(v[i], v[i + H], std::make_index_sequence<W>{});
    transpose_tile<T, W, H / 2>(v);
  }
}
