// Vector math for the IKGAT kernels: loads, horizontal sums, exp and SiLU
// on GCC / Clang vector types of V floats. Included inside each per-ISA
// anonymous namespace (after simd_vectors.inl), so nothing here may call std::.

template <int V>
using FVec = Vec<float, V>;

template <int V>
struct IntVecOf;
#define FASTKIN_INT_VEC(V)                                            \
  template <>                                                         \
  struct IntVecOf<V> {                                                \
    typedef int32_t type __attribute__((vector_size(V * sizeof(int32_t)))); \
  };
FASTKIN_INT_VEC(4)
FASTKIN_INT_VEC(8)
FASTKIN_INT_VEC(16)
#undef FASTKIN_INT_VEC

template <int V>
using IVec = typename IntVecOf<V>::type;

template <int V>
inline FVec<V> load(const float* p) {
  FVec<V> v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

template <int V>
inline void store(float* p, FVec<V> v) {
  __builtin_memcpy(p, &v, sizeof(v));
}

template <int V>
inline FVec<V> vmax(FVec<V> a, FVec<V> b) {
  return a > b ? a : b;
}

template <int V>
inline float hsum(FVec<V> v) {
#if FASTKIN_SHUFFLE
  if constexpr (V == 16) {
    return hsum<8>(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                   __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
  } else if constexpr (V == 8) {
    return hsum<4>(__builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7));
  } else if constexpr (V == 4) {
    const FVec<4> pairs = v + __builtin_shufflevector(v, v, 2, 3, 0, 1);
    return pairs[0] + pairs[1];
  }
#endif
  float sum = 0.0f;
  for (int l = 0; l < V; ++l) sum += v[l];
  return sum;
}

// One stage of reduce_rows: a gets, in each 2H-lane group, H partial sums of
// its own lanes followed by H of b's.
template <int H, int V, std::size_t... L>
inline FVec<V> fold_pair(FVec<V> a, FVec<V> b, std::index_sequence<L...>) {
#if FASTKIN_SHUFFLE
  // A blend (lanes stay put: any port) and one two-source permute (the
  // shuffle port, the bottleneck here) per stage.
  const IVec<V> from_b = {((L & H) ? -1 : 0)...};
  const FVec<V> kept = from_b ? b : a;
  const FVec<V> moved = __builtin_shufflevector(a, b, ((L & H) ? V + int(L) - H : int(L) + H)...);
  return kept + moved;
#else
  FVec<V> out;
  for (int l = 0; l < V; ++l) {
    const int base = l & ~(2 * H - 1), k = l & (H - 1);
    const FVec<V>& src = (l & H) ? b : a;
    out[l] = src[base + k] + src[base + k + H];
  }
  return out;
#endif
}

// Lane r of the result is the sum of the lanes of v[r]: V dot products
// finished together in V - 1 shuffle-add steps (v is overwritten).
template <int V, int H = V / 2>
inline FVec<V> reduce_rows(FVec<V>* v) {
  if constexpr (H >= 1) {
#pragma GCC unroll 16
    for (int i = 0; i < H; ++i) v[i] = fold_pair<H, V>(v[i], v[i + H], std::make_index_sequence<V>{});
    return reduce_rows<V, H / 2>(v);
  } else {
    return v[0];
  }
}

// x clamped to [lo, hi]: one max and one min instruction where the
// vector is a whole register of this build (a compare and a blend each in
// the generic form).
template <int V>
inline FVec<V> clamp(FVec<V> x, float lo, float hi) {
#if defined(__AVX512F__)
  if constexpr (V == 16)
    return reinterpret_cast<FVec<16>>(_mm512_min_ps(_mm512_max_ps(reinterpret_cast<__m512>(x), _mm512_set1_ps(lo)),
                                                    _mm512_set1_ps(hi)));
#endif
#if defined(__AVX__)
  if constexpr (V == 8)
    return reinterpret_cast<FVec<8>>(_mm256_min_ps(_mm256_max_ps(reinterpret_cast<__m256>(x), _mm256_set1_ps(lo)),
                                                   _mm256_set1_ps(hi)));
#endif
#if defined(__SSE2__)
  if constexpr (V == 4)
    return reinterpret_cast<FVec<4>>(_mm_min_ps(_mm_max_ps(reinterpret_cast<__m128>(x), _mm_set1_ps(lo)),
                                                _mm_set1_ps(hi)));
#endif
  x = x < lo ? splat<float, V>(lo) : x;
  return x > hi ? splat<float, V>(hi) : x;
}

// exp with about 2e-7 relative error: 2^n exp(r), |r| <= ln2 / 2, a degree-6
// Taylor polynomial for exp(r). Inputs are clamped to [-80, 80]: results,
// and their products with a softmax's 1 / sum or SiLU's 1 / (1 + exp), stay
// normal numbers (a subnormal operand costs a ~100-cycle microcode assist).
template <int V>
inline FVec<V> exp_approx(FVec<V> x) {
  x = clamp<V>(x, -80.0f, 80.0f);
  // Round x / ln2 to an integer n: adding 1.5 * 2^23 leaves no fraction
  // bits, and n itself in the low bits of the sum.
  const FVec<V> magic = splat<float, V>(12582912.0f);
  const FVec<V> shifted = x * 1.44269504088896341f + magic;
  const FVec<V> n = shifted - magic;
  FVec<V> r = x - n * 0.693145751953125f;  // ln2 in two parts, so r is exact
  r = r - n * 1.42860682030941723212e-6f;
  FVec<V> p = splat<float, V>(1.0f / 720.0f);
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^n: the exponent field n + 127 (the shift drops the sum's upper bits).
  const IVec<V> bits = (reinterpret_cast<const IVec<V>&>(shifted) << 23) + (127 << 23);
  return p * reinterpret_cast<const FVec<V>&>(bits);
}

// SiLU z sigmoid(z) = z / (1 + exp(-z)).
template <int V>
inline FVec<V> silu(FVec<V> z) {
  return z / (1.0f + exp_approx<V>(-z));
}
