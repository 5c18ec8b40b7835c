// The IKGAT forward pass for a block of frames, compiled once per
// instruction set (included by ikgat_infer_{scalar,avx2,avx512}.cpp, each
// with its own FASTKIN_ISA_NS and tile sizes).
//
// Activations are token-major: one row of Wp floats per (frame, joint), so
// the linear maps are plain matrix products over all the block's tokens at
// once. Attention runs per frame
// over each joint's neighbour list only.
//
// Nothing in here calls std:: or Eigen: an inline function instantiated
// under AVX-512 flags could be merged by the linker into the scalar build.

#include <cstddef>
#include <cstdint>
#include <utility>  // std::index_sequence (a type only; no code)
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "ikgat_infer_kernels.h"

namespace fastkin::detail::FASTKIN_ISA_NS {
namespace {

#include "simd_vectors.inl"
#include "ikgat_infer_math.inl"
#include "ikgat_infer_matmul.inl"

// One token: row = f E_j + e_j for its joint j's F inputs f.
template <int V, int F>
inline void embed_row(const IkgatView& m, int j, const float* f, int features, float* row) {
  const int Wp = m.width_pad;
  const float* e = m.embed_weight + static_cast<int64_t>(j) * features * Wp;
  for (int w = 0; w < Wp; w += V) {
    FVec<V> acc = load<V>(m.embed_bias + static_cast<int64_t>(j) * Wp + w);
    if constexpr (F > 0) {
#pragma GCC unroll 8
      for (int c = 0; c < F; ++c) acc += f[c] * load<V>(e + c * Wp + w);
    } else {
      for (int c = 0; c < features; ++c) acc += f[c] * load<V>(e + c * Wp + w);
    }
    store<V>(row + w, acc);
  }
}

// Tokens of one frame from its positions p: the root-relative position and
// the offset from the parent over the mean bone length.
template <int V>
void embed_positions(const IkgatView& m, const float* p, float* x) {
  const int J = m.joints;
  double length = 0.0;
  for (int j = 0; j < J; ++j) {
    if (!m.has_bone[j]) continue;
    const float* q = p + 3 * m.parents[j];
    const float d0 = p[3 * j] - q[0], d1 = p[3 * j + 1] - q[1], d2 = p[3 * j + 2] - q[2];
    length += __builtin_sqrtf(d0 * d0 + d1 * d1 + d2 * d2);
  }
  float scale = 1.0f;
  if (m.num_bones > 0) {
    scale = static_cast<float>(length / m.num_bones);
    if (!(scale >= 1e-12f)) scale = 1e-12f;
  }
  for (int j = 0; j < J; ++j) {
    const float* q = p + 3 * m.parents[j];
    float f[6];
    for (int c = 0; c < 3; ++c) {
      f[c] = (p[3 * j + c] - p[c]) / scale;
      f[3 + c] = (p[3 * j + c] - q[c]) / scale;
    }
    embed_row<V, 6>(m, j, f, 6, x + static_cast<int64_t>(j) * m.width_pad);
  }
}

// h = (x - mean) / sqrt(var + 1e-5) per row (the affine part is folded into
// the next product). Padding columns of x are zero, so sums over Wp are sums
// over W; those columns of h get -mean / std, which meet zero weight rows.
// V rows at a time: their sums finish together in one reduce_rows.
template <int V>
void layer_norm(const float* x, int64_t rows, int W, int Wp, float* h) {
  for (int64_t r0 = 0; r0 < rows; r0 += V) {
    const int n = rows - r0 < V ? static_cast<int>(rows - r0) : V;
    const float* in = x + r0 * Wp;
    FVec<V> part[V];
    for (int r = 0; r < V; ++r) {
      part[r] = FVec<V>{};
      if (r < n)
        for (int w = 0; w < Wp; w += V) part[r] += load<V>(in + r * Wp + w);
    }
    const FVec<V> mean = reduce_rows<V>(part) / static_cast<float>(W);
    for (int r = 0; r < V; ++r) {
      part[r] = FVec<V>{};
      if (r < n)
        for (int w = 0; w < Wp; w += V) {
          const FVec<V> d = load<V>(in + r * Wp + w) - mean[r];
          part[r] += d * d;
        }
    }
    const FVec<V> var = (reduce_rows<V>(part) - static_cast<float>(Wp - W) * mean * mean) / static_cast<float>(W);
    FVec<V> inv;
    for (int l = 0; l < V; ++l) inv[l] = 1.0f / __builtin_sqrtf(var[l] + 1e-5f);
    for (int r = 0; r < n; ++r)
      for (int w = 0; w < Wp; w += V)
        store<V>(h + (r0 + r) * Wp + w, (load<V>(in + r * Wp + w) - mean[r]) * inv[r]);
  }
}

// One attention item: query joint i's head h.
struct Item {
  int query, head, count;  // count: neighbours (0 for the padding items of the last group)
  const int32_t* neighbours;
};

// Scores of U items against one neighbour each (query and key rows at the
// given offsets into the frame's qkv rows) into s[0, U): U dot products of D
// values finished together by reduce_rows, or scalar loops when U does not
// divide D.
template <int U, bool VectorDot>
inline void slot_scores(const float* qkv, const int32_t* query_offset, const int32_t* key_offset, int D, float* s) {
  if constexpr (VectorDot) {
    FVec<U> acc[U];
#pragma GCC unroll 16
    for (int u = 0; u < U; ++u) {
      const float* q = qkv + query_offset[u];
      const float* key = qkv + key_offset[u];
      acc[u] = load<U>(q) * load<U>(key);
      for (int d = U; d < D; d += U) acc[u] += load<U>(q + d) * load<U>(key + d);
    }
    store<U>(s, reduce_rows<U>(acc));
  } else {
    for (int u = 0; u < U; ++u) {
      const float* q = qkv + query_offset[u];
      const float* key = qkv + key_offset[u];
      float dot = 0.0f;
      for (int d = 0; d < D; ++d) dot += q[d] * key[d];
      s[u] = dot;
    }
  }
}

// Softmax down each of the 16 columns of s (slots rows), after adding the
// bias (-1e30 on padding slots, which then weigh ~1e-35 and are never read):
// every operation is lane-wise, 16 softmaxes at once.
template <int V>
inline void group_softmax(float* s, const float* bias, int slots) {
  for (int c = 0; c < kIkgatGroup; c += V) {
    FVec<V> top = splat<float, V>(-3e38f);
    for (int k = 0; k < slots; ++k) {
      const FVec<V> x = load<V>(s + k * kIkgatGroup + c) + load<V>(bias + k * kIkgatGroup + c);
      store<V>(s + k * kIkgatGroup + c, x);
      top = vmax<V>(top, x);
    }
    FVec<V> sum = {};
    for (int k = 0; k < slots; ++k) {
      const FVec<V> e = exp_approx<V>(load<V>(s + k * kIkgatGroup + c) - top);
      store<V>(s + k * kIkgatGroup + c, e);
      sum += e;
    }
    const FVec<V> inv = 1.0f / sum;
    for (int k = 0; k < slots; ++k) store<V>(s + k * kIkgatGroup + c, load<V>(s + k * kIkgatGroup + c) * inv);
  }
}

// Vectors [c, c + G) (U floats each) of the output row of the query of
// items [u0, ...) (its heads h0, h0 + 1, ... in the columns of p): the
// neighbours' values weighted by their head's softmax column, accumulated
// in registers (independent chains, one per vector).
template <int U, int G>
inline void weighted_values(const Item& first, int u0, const float* p, const int32_t* column_head,
                            const float* values, int64_t stride, int c, float* out) {
  FVec<U> acc[G];
  const float* weight[G];
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) {
    acc[g] = FVec<U>{};
    weight[g] = p + u0 + column_head[(c + g) * U] - first.head;
  }
  for (int k = 0; k < first.count; ++k) {
    const float* v = values + first.neighbours[k] * stride + c * U;
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) acc[g] += weight[g][k * kIkgatGroup] * load<U>(v + g * U);
  }
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) store<U>(out + (c + g) * U, acc[g]);
}

// Multi-head attention of one frame: qkv rows are [q | k | v] (3 Wp wide,
// queries pre-scaled), out rows Wp wide; s holds one group's weights. Items
// (query, head) go in groups of 16 whose softmaxes share SIMD lanes; U is
// the vector width for a head's D values (VectorDot false: scalar dot
// products, when no width in {4, 8, 16} <= V divides D).
template <int V, int U, bool VectorDot>
void attention(const IkgatView& m, const float* pair_bias, const float* qkv, float* out, float* s) {
  const int J = m.joints, H = m.heads, W = m.width, Wp = m.width_pad, D = W / H;
  const int64_t stride = 3 * Wp;
  const float* values = qkv + 2 * Wp;
  const float* bias = pair_bias;
  const int32_t* key_offset = m.key_offset;
  int query = 0, head = 0;
  for (int g = 0; g < m.groups; ++g) {
    Item items[kIkgatGroup];
    for (int u = 0; u < kIkgatGroup; ++u) {
      const bool real = query < J;
      const int begin = real ? m.neighbour_start[query] : 0;
      items[u] = {real ? query : 0, head, real ? m.neighbour_start[query + 1] - begin : 0, m.neighbour_index + begin};
      if (++head == H) head = 0, ++query;
    }
    const int slots = m.group_slots[g];
    const int32_t* query_offset = m.query_offset + g * kIkgatGroup;
    for (int k = 0; k < slots; ++k)
      for (int c = 0; c < kIkgatGroup; c += U)
        slot_scores<U, VectorDot>(qkv, query_offset + c, key_offset + k * kIkgatGroup + c, D,
                                  s + k * kIkgatGroup + c);
    group_softmax<V>(s, bias, slots);
    bias += slots * kIkgatGroup;
    key_offset += slots * kIkgatGroup;
    // The group's items of one query (its heads, in order) share neighbours.
    for (int u = 0, end; u < kIkgatGroup; u = end) {
      const Item& it = items[u];
      for (end = u + 1; end < kIkgatGroup && items[end].query == it.query && items[end].count; ++end) {
      }
      if (it.count == 0) continue;
      float* row = out + it.query * Wp;
      const int last_head = items[end - 1].head;
      if constexpr (VectorDot) {
        const int last = (last_head + 1) * D / U;
        int c = it.head * D / U;
        for (; c + 4 <= last; c += 4) weighted_values<U, 4>(it, u, s, m.column_head, values, stride, c, row);
        for (; c < last; ++c) weighted_values<U, 1>(it, u, s, m.column_head, values, stride, c, row);
      } else {
        for (int d = it.head * D; d < (last_head + 1) * D; ++d) {
          const float* p = s + u + d / D - it.head;
          float sum = 0.0f;
          for (int k = 0; k < it.count; ++k) sum += p[k * kIkgatGroup] * values[it.neighbours[k] * stride + d];
          row[d] = sum;
        }
      }
      if (last_head == H - 1)
        for (int w = W; w < Wp; ++w) row[w] = 0.0f;
    }
  }
}

// Columns b1, b2, b1 x b2 of the Gram-Schmidt frame of a 6D rotation.
inline void rot6d_to_matrix(const float* r, float* m) {
  const float n1 = __builtin_sqrtf(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
  const float b1[3] = {r[0] / n1, r[1] / n1, r[2] / n1};
  const float along = b1[0] * r[3] + b1[1] * r[4] + b1[2] * r[5];
  float b2[3] = {r[3] - along * b1[0], r[4] - along * b1[1], r[5] - along * b1[2]};
  const float n2 = __builtin_sqrtf(b2[0] * b2[0] + b2[1] * b2[1] + b2[2] * b2[2]);
  for (float& c : b2) c /= n2;
  const float b3[3] = {b1[1] * b2[2] - b1[2] * b2[1], b1[2] * b2[0] - b1[0] * b2[2], b1[0] * b2[1] - b1[1] * b2[0]};
  for (int i = 0; i < 3; ++i) {
    m[3 * i] = b1[i];
    m[3 * i + 1] = b2[i];
    m[3 * i + 2] = b3[i];
  }
}

// The per-joint head on normalised rows h (the final LayerNorm's affine
// folded in), then 6D -> matrix. Each joint's rows across the block's frames
// go through one matrix product with its own weights (6 of kIkgatHeadColumns columns
// used), which keeps the lanes busy where per-row dot products would end in
// horizontal sums; r6 holds (J, frames, kIkgatHeadColumns).
template <int V, int R, int NC>
void head(const IkgatView& m, const float* h, int64_t frames, float* r6, float* out) {
  const int J = m.joints, Wp = m.width_pad;
  for (int j = 0; j < J; ++j)
    product<V, R, NC, Then::Store>(h + static_cast<int64_t>(j) * Wp, static_cast<int64_t>(J) * Wp, frames,
                                   m.head_weight + static_cast<int64_t>(j) * Wp * kIkgatHeadColumns, Wp, kIkgatHeadColumns,
                                   m.head_bias + j * kIkgatHeadColumns, r6 + j * frames * kIkgatHeadColumns, kIkgatHeadColumns);
  for (int64_t f = 0; f < frames; ++f)
    for (int j = 0; j < J; ++j) rot6d_to_matrix(r6 + (j * frames + f) * kIkgatHeadColumns, out + (f * J + j) * 9);
}

template <int V, int U, bool VectorDot, int R, int NC>
void forward_block(const IkgatView& m, const float* inputs, int64_t frames, float* out, float* scratch) {
  const int J = m.joints, W = m.width, Wp = m.width_pad, Ep = m.hidden_pad;
  const int64_t rows = frames * J;
  float* x = scratch;
  float* h = x + rows * Wp;
  float* wide = h + rows * Wp;  // qkv, later the MLP's hidden layer
  float* attention_scratch = wide + rows * (3 * Wp > Ep ? 3 * Wp : Ep);
  if (m.from_positions) {
    for (int64_t f = 0; f < frames; ++f) embed_positions<V>(m, inputs + f * J * 3, x + f * J * Wp);
  } else {
    for (int64_t t = 0; t < rows; ++t)
      embed_row<V, 0>(m, static_cast<int>(t % J), inputs + t * m.features, m.features, x + t * Wp);
  }
  layer_norm<V>(x, rows, W, Wp, h);
  for (int l = 0; l < m.layers; ++l) {
    const IkgatBlockView& b = m.blocks[l];
    product<V, R, NC, Then::Store>(h, Wp, rows, b.qkv_weight, Wp, 3 * Wp, b.qkv_bias, wide, 3 * Wp);
    for (int64_t f = 0; f < frames; ++f)
      attention<V, U, VectorDot>(m, b.pair_bias, wide + f * J * 3 * Wp, h + f * J * Wp, attention_scratch);
    product<V, R, NC, Then::AddTo>(h, Wp, rows, b.out_weight, Wp, Wp, b.out_bias, x, Wp);
    layer_norm<V>(x, rows, W, Wp, h);
    product<V, R, NC, Then::Silu>(h, Wp, rows, b.mlp1_weight, Wp, Ep, b.mlp1_bias, wide, Ep);
    product<V, R, NC, Then::AddTo>(wide, Ep, rows, b.mlp2_weight, Ep, Wp, b.mlp2_bias, x, Wp);
    layer_norm<V>(x, rows, W, Wp, h);  // the next block's first LayerNorm, or the final one
  }
  head<V, R, NC>(m, h, frames, wide, out);  // wide is free again: J frames kIkgatHeadColumns <= rows 3 Wp
}

// The forward for this head size: U the widest of 16, 8, 4 (<= V) that
// divides D, else 4 lanes with scalar dot products.
template <int V, int R, int NC>
void forward_any(const IkgatView& m, const float* inputs, int64_t frames, float* out, float* scratch) {
  const int D = m.width / m.heads;
  if (V >= 16 && D % 16 == 0)
    return forward_block<V, (V >= 16 ? 16 : 4), true, R, NC>(m, inputs, frames, out, scratch);
  if (V >= 8 && D % 8 == 0) return forward_block<V, (V >= 8 ? 8 : 4), true, R, NC>(m, inputs, frames, out, scratch);
  if (D % 4 == 0) return forward_block<V, 4, true, R, NC>(m, inputs, frames, out, scratch);
  forward_block<V, 4, false, R, NC>(m, inputs, frames, out, scratch);
}

}  // namespace
}  // namespace fastkin::detail::FASTKIN_ISA_NS

// FASTKIN_EXPORT_IKGAT(namespace, float lanes, tile rows, tile vectors).
#define FASTKIN_EXPORT_IKGAT(NS, V, R, NC)                                   \
  namespace fastkin::detail {                                               \
  IkgatKernel ikgat_kernel_##NS() { return {&NS::forward_any<V, R, NC>}; }    \
  }
