// The IKGAT kernels' matrix product, C = A B + bias, for activations A
// (rows x K, row stride lda) and packed weights B (K x cols, row-major): R x
// (C vectors of V) accumulator tiles held in registers while k runs, the
// epilogue fused into the store. Included inside each per-ISA anonymous
// namespace after ikgat_infer_math.inl.

enum class Then {
  Store,  // C = A B + bias
  Silu,   // C = silu(A B + bias)
  AddTo,  // C += A B + bias (the residual connection)
};

template <int V, int R, int NC, Then T>
inline void product_tile(const float* a, int64_t lda, const float* b, int64_t ldb, int K, const float* bias,
                         float* c, int64_t ldc) {
  FVec<V> acc[R][NC];
#pragma GCC unroll 8
  for (int j = 0; j < NC; ++j) {
    const FVec<V> b0 = load<V>(bias + j * V);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) acc[i][j] = b0;
  }
  for (int k = 0; k < K; ++k) {
    FVec<V> bk[NC];
#pragma GCC unroll 8
    for (int j = 0; j < NC; ++j) bk[j] = load<V>(b + k * ldb + j * V);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      // A scalar operand, not splat(): 0 + x is no identity (-0), so splat
      // costs an add and a register broadcast; this broadcasts from memory.
      const float ai = a[i * lda + k];
#pragma GCC unroll 8
      for (int j = 0; j < NC; ++j) acc[i][j] += ai * bk[j];
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NC; ++j) {
      float* out = c + i * ldc + j * V;
      if constexpr (T == Then::Store) store<V>(out, acc[i][j]);
      if constexpr (T == Then::Silu) store<V>(out, silu<V>(acc[i][j]));
      if constexpr (T == Then::AddTo) store<V>(out, load<V>(out) + acc[i][j]);
    }
}

// The last rows tile, shorter than R.
template <int V, int R, int NC, Then T>
inline void product_short_tile(const float* a, int64_t lda, int rows, const float* b, int64_t ldb, int K,
                               const float* bias, float* c, int64_t ldc) {
  if constexpr (R > 1) {
    if (rows < R) return product_short_tile<V, R - 1, NC, T>(a, lda, rows, b, ldb, K, bias, c, ldc);
  }
  product_tile<V, R, NC, T>(a, lda, b, ldb, K, bias, c, ldc);
}

// Columns [col, col + NC V) for every row tile: this panel of B stays in L1
// while the rows stream past.
template <int V, int R, int NC, Then T>
inline void product_panel(const float* a, int64_t lda, int64_t rows, const float* b, int64_t ldb, int K,
                          const float* bias, float* c, int64_t ldc, int col) {
  int64_t r = 0;
  for (; r + R <= rows; r += R)
    product_tile<V, R, NC, T>(a + r * lda, lda, b + col, ldb, K, bias + col, c + r * ldc + col, ldc);
  if (r < rows)
    product_short_tile<V, R, NC, T>(a + r * lda, lda, static_cast<int>(rows - r), b + col, ldb, K, bias + col,
                                    c + r * ldc + col, ldc);
}

// The last panel, narrower than NC vectors.
template <int V, int R, int NC, Then T>
inline void product_tail(const float* a, int64_t lda, int64_t rows, const float* b, int64_t ldb, int K,
                         const float* bias, float* c, int64_t ldc, int col, int vectors) {
  if constexpr (NC > 1) {
    if (vectors < NC) return product_tail<V, R, NC - 1, T>(a, lda, rows, b, ldb, K, bias, c, ldc, col, vectors);
  }
  product_panel<V, R, NC, T>(a, lda, rows, b, ldb, K, bias, c, ldc, col);
}

// cols is a multiple of V.
template <int V, int R, int NC, Then T>
void product(const float* a, int64_t lda, int64_t rows, const float* b, int K, int cols, const float* bias, float* c,
             int64_t ldc) {
  int col = 0;
  for (; col + NC * V <= cols; col += NC * V) product_panel<V, R, NC, T>(a, lda, rows, b, cols, K, bias, c, ldc, col);
  if (col < cols) product_tail<V, R, NC, T>(a, lda, rows, b, cols, K, bias, c, ldc, col, (cols - col) / V);
}
