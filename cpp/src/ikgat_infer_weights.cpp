// Packs IKGAT's torch tensors into IkgatWeights: transposed linear maps
// padded for SIMD, LayerNorm affines folded into the maps after them, the
// attention scale folded into the queries, and the mask as neighbour lists.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include "fastkin/ikgat_infer.h"
#include "ikgat_infer_kernels.h"

namespace fastkin {
namespace {

int padded(int n) { return (n + kIkgatPad - 1) / kIkgatPad * kIkgatPad; }

// y = (n * gamma + beta) W^T + b, with n the normalised input, is
// n (diag(gamma) W^T) + (beta W^T + b): packs the bracketed map, times
// `scale`, for the weight rows [row0, row0 + out) of W (rows x in).
// gamma/beta null: no LayerNorm before this map.
void pack_linear(const float* w, const float* b, int in, int row0, int out, const float* gamma, const float* beta,
                 double scale, float* packed, int packed_cols, int col0, float* packed_bias) {
  for (int o = 0; o < out; ++o) {
    const float* row = w + static_cast<int64_t>(row0 + o) * in;
    double bias = b[row0 + o];
    for (int k = 0; k < in; ++k) {
      const double g = gamma ? gamma[k] : 1.0;
      packed[static_cast<int64_t>(k) * packed_cols + col0 + o] = static_cast<float>(scale * g * row[k]);
      if (beta) bias += static_cast<double>(beta[k]) * row[k];
    }
    packed_bias[col0 + o] = static_cast<float>(scale * bias);
  }
}

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

}  // namespace

IkgatWeights make_ikgat_weights(const IkgatParams& p) {
  require(p.joints >= 1 && p.width >= 1 && p.heads >= 1 && p.hidden >= 1, "IKGAT sizes must be positive");
  require(p.width % p.heads == 0, "heads must divide width");
  require(p.features >= 1, "the embedding needs at least one input feature");
  require(!p.from_positions || p.features == 6, "position inputs give 6 features a joint");
  IkgatWeights w;
  const int J = p.joints, W = p.width, H = p.heads, E = p.hidden;
  w.joints = J;
  w.width = W;
  w.heads = H;
  w.hidden = E;
  w.from_positions = p.from_positions;
  const int F = w.features = p.features;
  const int Wp = w.width_pad = padded(W);
  const int Ep = w.hidden_pad = padded(E);

  w.parents.assign(p.parents, p.parents + J);
  w.has_bone.assign(p.has_bone, p.has_bone + J);
  for (int j = 0; j < J; ++j)
    require(w.parents[j] >= 0 && w.parents[j] < J, "parents[" + std::to_string(j) + "] is not a joint index");
  w.neighbour_start.assign(1, 0);
  for (int i = 0; i < J; ++i) {
    for (int k = 0; k < J; ++k)
      if (!p.blocked[static_cast<int64_t>(i) * J + k]) w.neighbour_index.push_back(k);
    require(static_cast<int>(w.neighbour_index.size()) > w.neighbour_start.back(),
            "blocked[" + std::to_string(i) + "] masks every joint: softmax over nothing");
    w.neighbour_start.push_back(static_cast<int32_t>(w.neighbour_index.size()));
  }

  for (int item0 = 0; item0 < J * H; item0 += kIkgatPad) {
    int slots = 1;
    for (int item = item0; item < item0 + kIkgatPad && item < J * H; ++item) {
      const int i = item / H;
      slots = std::max(slots, w.neighbour_start[i + 1] - w.neighbour_start[i]);
    }
    w.group_slots.push_back(slots);
  }
  const int D = W / H;
  for (int c = 0; c < W; ++c) w.column_head.push_back(c / D);
  for (int g = 0; g < static_cast<int>(w.group_slots.size()); ++g) {
    for (int u = 0; u < kIkgatPad; ++u) {
      const int item = g * kIkgatPad + u, i = item / H, h = item % H;
      w.query_offset.push_back(i < J ? i * 3 * Wp + h * D : 0);
    }
    for (int k = 0; k < w.group_slots[g]; ++k)
      for (int u = 0; u < kIkgatPad; ++u) {
        const int item = g * kIkgatPad + u, i = item / H, h = item % H;
        const bool real = i < J && k < w.neighbour_start[i + 1] - w.neighbour_start[i];
        w.key_offset.push_back(real ? w.neighbour_index[w.neighbour_start[i] + k] * 3 * Wp + Wp + h * D : Wp);
      }
  }

  w.embed_weight.assign(static_cast<size_t>(J) * F * Wp, 0.0f);
  w.embed_bias.assign(static_cast<size_t>(J) * Wp, 0.0f);
  for (int j = 0; j < J; ++j) {
    for (int c = 0; c < F; ++c)
      for (int o = 0; o < W; ++o)
        w.embed_weight[(static_cast<size_t>(j) * F + c) * Wp + o] = p.embed_weight[(static_cast<size_t>(j) * F + c) * W + o];
    for (int o = 0; o < W; ++o) w.embed_bias[static_cast<size_t>(j) * Wp + o] = p.embed_bias[static_cast<size_t>(j) * W + o];
  }

  const double query_scale = 1.0 / std::sqrt(static_cast<double>(W / H));
  for (const IkgatBlockParams& b : p.blocks) {
    IkgatBlock out;
    out.qkv.weight.assign(static_cast<size_t>(Wp) * 3 * Wp, 0.0f);
    out.qkv.bias.assign(3 * Wp, 0.0f);
    for (int part = 0; part < 3; ++part)
      pack_linear(b.qkv_weight, b.qkv_bias, W, part * W, W, b.norm1_weight, b.norm1_bias, part == 0 ? query_scale : 1.0,
                  out.qkv.weight.data(), 3 * Wp, part * Wp, out.qkv.bias.data());
    out.out.weight.assign(static_cast<size_t>(Wp) * Wp, 0.0f);
    out.out.bias.assign(Wp, 0.0f);
    pack_linear(b.out_weight, b.out_bias, W, 0, W, nullptr, nullptr, 1.0, out.out.weight.data(), Wp, 0,
                out.out.bias.data());
    out.mlp1.weight.assign(static_cast<size_t>(Wp) * Ep, 0.0f);
    out.mlp1.bias.assign(Ep, 0.0f);
    pack_linear(b.mlp1_weight, b.mlp1_bias, W, 0, E, b.norm2_weight, b.norm2_bias, 1.0, out.mlp1.weight.data(), Ep, 0,
                out.mlp1.bias.data());
    out.mlp2.weight.assign(static_cast<size_t>(Ep) * Wp, 0.0f);
    out.mlp2.bias.assign(Wp, 0.0f);
    pack_linear(b.mlp2_weight, b.mlp2_bias, E, 0, W, nullptr, nullptr, 1.0, out.mlp2.weight.data(), Wp, 0,
                out.mlp2.bias.data());
    out.pair_bias.clear();
    for (int g = 0; g < static_cast<int>(w.group_slots.size()); ++g)
      for (int k = 0; k < w.group_slots[g]; ++k)
        for (int u = 0; u < kIkgatPad; ++u) {
          const int item = g * kIkgatPad + u, i = item / H, h = item % H;
          const bool real = i < J && k < w.neighbour_start[i + 1] - w.neighbour_start[i];
          out.pair_bias.push_back(
              real ? b.pair_bias[(static_cast<size_t>(h) * J + i) * J + w.neighbour_index[w.neighbour_start[i] + k]]
                   : -1e30f);
        }
    w.blocks.push_back(std::move(out));
  }

  // The head, per joint: r6[c] = sum_k (n_k gamma_k + beta_k) head[j, k, c] + bias[j, c],
  // as a (Wp x kIkgatHeadColumns) matrix whose columns past 6 are zero.
  w.head_weight.assign(static_cast<size_t>(J) * Wp * detail::kIkgatHeadColumns, 0.0f);
  w.head_bias.assign(static_cast<size_t>(J) * detail::kIkgatHeadColumns, 0.0f);
  for (int j = 0; j < J; ++j)
    for (int c = 0; c < 6; ++c) {
      double bias = p.head_bias[j * 6 + c];
      for (int k = 0; k < W; ++k) {
        const float h = p.head_weight[(static_cast<size_t>(j) * W + k) * 6 + c];
        w.head_weight[(static_cast<size_t>(j) * Wp + k) * detail::kIkgatHeadColumns + c] = p.norm_weight[k] * h;
        bias += static_cast<double>(p.norm_bias[k]) * h;
      }
      w.head_bias[j * detail::kIkgatHeadColumns + c] = static_cast<float>(bias);
    }
  return w;
}

int64_t ikgat_flops_per_frame(const IkgatWeights& w) {
  const int64_t J = w.joints, W = w.width, E = w.hidden;
  const int64_t pairs = static_cast<int64_t>(w.neighbour_index.size());
  const int64_t block = 2 * J * W * 3 * W  // qkv
                        + 2 * 2 * pairs * W  // scores and weighted values, all heads
                        + 2 * J * W * W      // out
                        + 2 * 2 * J * W * E;  // mlp
  return 2 * J * w.features * W + block * static_cast<int64_t>(w.blocks.size()) + 2 * J * W * 6;
}

}  // namespace fastkin
