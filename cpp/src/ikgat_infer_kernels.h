// Internal: the IKGAT forward compiled once per instruction set
// (ikgat_infer_block.inl included by ikgat_infer_{scalar,avx2,avx512}.cpp)
// and the table the dispatcher in ikgat_infer.cpp picks from. Kernels see
// the weights through plain pointers only (no std:: in per-ISA code).
#pragma once
#include <cstdint>

namespace fastkin::detail {

// Attention items (query joint, head) per group: lanes of one SIMD softmax.
constexpr int kIkgatGroup = 16;
// Columns of each joint's packed head matrix (6 used): a multiple of every
// SIMD width, so the head runs as a plain matrix product.
constexpr int kIkgatHeadColumns = 16;

struct IkgatBlockView {
  const float *qkv_weight, *qkv_bias, *out_weight, *out_bias;
  const float *mlp1_weight, *mlp1_bias, *mlp2_weight, *mlp2_bias;
  const float* pair_bias;
};

struct IkgatView {
  int joints, width, heads, hidden;
  int width_pad, hidden_pad;
  int layers;
  int from_positions;  // 1: inputs are positions (J, 3) a frame; 0: features (J, F)
  int features;        // F
  int num_bones;       // joints with has_bone
  int groups;     // attention groups of 16 (query, head) items
  int max_slots;  // the most slots of a group
  const int32_t* parents;
  const uint8_t* has_bone;
  const int32_t* neighbour_start;
  const int32_t* neighbour_index;
  const int32_t* group_slots;
  const int32_t* query_offset;  // (groups, 16)
  const int32_t* key_offset;    // per group (slots, 16)
  const int32_t* column_head;   // (W,): the head of each feature column
  const float *embed_weight, *embed_bias;
  const IkgatBlockView* blocks;
  const float *head_weight, *head_bias;
};

struct IkgatKernel {
  // inputs (frames, J, 3 or F) -> out (frames, J, 3, 3); scratch holds
  // ikgat_scratch_floats(view, frames) floats, 64-byte aligned.
  void (*forward)(const IkgatView& view, const float* inputs, int64_t frames, float* out, float* scratch);
};

// Activations x and h (rows x Wp), qkv / hidden (rows x max(3 Wp, Ep)), and
// one attention group's weights; a row per (frame, joint).
inline int64_t ikgat_scratch_floats(const IkgatView& v, int64_t frames) {
  const int64_t rows = frames * v.joints;
  const int64_t wide = 3 * v.width_pad > v.hidden_pad ? 3 * v.width_pad : v.hidden_pad;
  const int64_t attention = static_cast<int64_t>(v.max_slots) * kIkgatGroup;
  return rows * (2 * v.width_pad + wide) + attention;
}

IkgatKernel ikgat_kernel_scalar();
IkgatKernel ikgat_kernel_avx2();
IkgatKernel ikgat_kernel_avx512();

}  // namespace fastkin::detail
