// IKGAT inference entry point: picks the kernel for this CPU, cuts the batch
// into blocks of frames small enough for their activations to stay in L2,
// and spreads the blocks over the thread pool.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "dispatch.h"
#include "fastkin/ikgat_infer.h"
#include "fastkin/parallel.h"
#include "ikgat_infer_kernels.h"

namespace fastkin {
namespace {

static_assert(detail::kIkgatGroup == kIkgatPad, "pair_bias rows are packed kIkgatPad wide");

// Tokens (frames x joints) per block: about 300 rows keep the activations
// (~1.3 kB a row) in L2 while each weight panel is reused across all rows.
constexpr int64_t kTokensPerBlock = 300;

const detail::IkgatKernel& kernel() {
  static const detail::IkgatKernel k = detail::for_this_cpu<detail::IkgatKernel>(
      &detail::ikgat_kernel_scalar, &detail::ikgat_kernel_avx2, &detail::ikgat_kernel_avx512);
  return k;
}

detail::IkgatView view_of(const IkgatWeights& w, std::vector<detail::IkgatBlockView>& blocks) {
  for (const IkgatBlock& b : w.blocks)
    blocks.push_back({b.qkv.weight.data(), b.qkv.bias.data(), b.out.weight.data(), b.out.bias.data(),
                      b.mlp1.weight.data(), b.mlp1.bias.data(), b.mlp2.weight.data(), b.mlp2.bias.data(),
                      b.pair_bias.data()});
  detail::IkgatView v{};
  v.joints = w.joints;
  v.width = w.width;
  v.heads = w.heads;
  v.hidden = w.hidden;
  v.width_pad = w.width_pad;
  v.hidden_pad = w.hidden_pad;
  v.layers = static_cast<int>(w.blocks.size());
  v.from_positions = w.from_positions ? 1 : 0;
  v.features = w.features;
  v.num_bones = static_cast<int>(std::count(w.has_bone.begin(), w.has_bone.end(), uint8_t{1}));
  v.groups = static_cast<int>(w.group_slots.size());
  v.max_slots = *std::max_element(w.group_slots.begin(), w.group_slots.end());
  v.parents = w.parents.data();
  v.has_bone = w.has_bone.data();
  v.neighbour_start = w.neighbour_start.data();
  v.neighbour_index = w.neighbour_index.data();
  v.group_slots = w.group_slots.data();
  v.query_offset = w.query_offset.data();
  v.key_offset = w.key_offset.data();
  v.column_head = w.column_head.data();
  v.embed_weight = w.embed_weight.data();
  v.embed_bias = w.embed_bias.data();
  v.blocks = blocks.data();
  v.head_weight = w.head_weight.data();
  v.head_bias = w.head_bias.data();
  return v;
}

}  // namespace

void ikgat_forward(const IkgatWeights& weights, const float* inputs, int64_t batch, float* out) {
  if (batch <= 0) return;
  std::vector<detail::IkgatBlockView> blocks;
  const detail::IkgatView view = view_of(weights, blocks);
  const detail::IkgatKernel& k = kernel();
  const int64_t J = weights.joints;
  const int64_t per_frame = J * (weights.from_positions ? 3 : weights.features);
  const int64_t frames = std::min<int64_t>(batch, std::max<int64_t>(1, kTokensPerBlock / J));
  const int64_t count = (batch + frames - 1) / frames;
  const int64_t scratch = detail::ikgat_scratch_floats(view, frames);
  // One block is worth a worker: it takes tens of microseconds or more.
  parallel_ranges(count, 1, 1, [&](int64_t begin, int64_t end) {
    float* s = detail::thread_scratch<float, 1>(scratch);
    for (int64_t b = begin; b < end; ++b) {
      const int64_t first = b * frames, n = std::min(frames, batch - first);
      k.forward(view, inputs + first * per_frame, n, out + first * J * 9, s);
    }
  });
}

}  // namespace fastkin
