// Inference for the learned IK model fastkin.learned.IKGAT: (B, J, 3) joint
// positions -> (B, J, 3, 3) bone-aligned world rotations, float32 on the CPU.
//
// IkgatParams points at the trained tensors in torch's layout; IkgatWeights
// is an owned copy rearranged for the kernels (LayerNorm affine folded into
// the next linear map, the attention scale folded into the queries, rows
// padded for SIMD, the attention mask turned into neighbour lists).
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace fastkin {

// One transformer block's tensors, torch layout (nn.Linear weight is (out, in)).
struct IkgatBlockParams {
  const float* norm1_weight;  // (W,)
  const float* norm1_bias;    // (W,)
  const float* qkv_weight;    // (3W, W)
  const float* qkv_bias;      // (3W,)
  const float* pair_bias;     // (H, J, J)
  const float* out_weight;    // (W, W)
  const float* out_bias;      // (W,)
  const float* norm2_weight;  // (W,)
  const float* norm2_bias;    // (W,)
  const float* mlp1_weight;   // (E, W), E the MLP's hidden width
  const float* mlp1_bias;     // (E,)
  const float* mlp2_weight;   // (W, E)
  const float* mlp2_bias;     // (W,)
};

struct IkgatParams {
  int joints = 0;  // J
  int width = 0;   // W
  int heads = 0;   // H, divides W
  int hidden = 0;  // E
  const int32_t* parents = nullptr;   // (J,), roots point to themselves
  const uint8_t* has_bone = nullptr;  // (J,), 0 or 1
  const uint8_t* blocked = nullptr;   // (J, J), 1 where attention is masked
  // The tokens' inputs: the 6 position features IKGAT computes itself
  // (root-relative position and offset from the parent, over the mean bone
  // length), or `features` values per joint that the caller gives.
  bool from_positions = true;
  int features = 6;                     // F (6 when from_positions)
  const float* embed_weight = nullptr;  // (J, F, W)
  const float* embed_bias = nullptr;    // (J, W)
  std::vector<IkgatBlockParams> blocks;
  const float* norm_weight = nullptr;  // (W,)
  const float* norm_bias = nullptr;    // (W,)
  const float* head_weight = nullptr;  // (J, W, 6)
  const float* head_bias = nullptr;    // (J, 6)
};

// 64-byte aligned storage, so that packed rows start on cache lines.
template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <class U>
  bool operator==(const Aligned64<U>&) const { return true; }
  template <class U>
  bool operator!=(const Aligned64<U>&) const { return false; }
};
using AlignedFloats = std::vector<float, Aligned64<float>>;

// A linear map y = x B + bias, packed as B (rows, cols) row-major with both
// sides padded with zeros to multiples of kIkgatPad.
struct IkgatLinear {
  AlignedFloats weight;
  AlignedFloats bias;
};

struct IkgatBlock {
  IkgatLinear qkv;    // LayerNorm 1 folded in; columns [q | k | v], each Wp wide, q pre-scaled
  IkgatLinear out;
  IkgatLinear mlp1;   // LayerNorm 2 folded in
  IkgatLinear mlp2;
  // Per attention group g in turn (see IkgatWeights::group_slots): (slots_g,
  // kIkgatPad), row k holding each item's bias for its k-th neighbour, or
  // -1e30 past its last one (a weight of ~0 after the softmax).
  AlignedFloats pair_bias;
};

// Padding of feature rows: a multiple of every SIMD width the kernels use.
constexpr int kIkgatPad = 16;

struct IkgatWeights {
  int joints = 0, width = 0, heads = 0, hidden = 0;
  int width_pad = 0, hidden_pad = 0;  // W and E rounded up to kIkgatPad
  bool from_positions = true;         // see IkgatParams
  int features = 6;                   // F
  std::vector<int32_t> parents;     // roots point to themselves
  std::vector<uint8_t> has_bone;
  std::vector<int32_t> neighbour_start;  // (J + 1,): joint i attends to neighbour_index[start[i] : start[i+1]]
  std::vector<int32_t> neighbour_index;
  // Attention items (query joint i, head h), numbered i * H + h, in groups of
  // kIkgatPad: a group's softmaxes run side by side in SIMD lanes over its
  // slots, the most neighbours any of its queries has.
  std::vector<int32_t> group_slots;
  // Where the group's items read, in floats from the start of a frame's qkv
  // rows (3 Wp wide): each item's query, (groups, kIkgatPad), and its k-th
  // neighbour's key, per group (slots_g, kIkgatPad). Padding points at
  // joint 0's key: a finite score that its -1e30 bias cancels.
  std::vector<int32_t> query_offset;
  std::vector<int32_t> key_offset;
  std::vector<int32_t> column_head;  // (W,): c / (W / H), the head of feature column c
  AlignedFloats embed_weight;  // (J, F, Wp)
  AlignedFloats embed_bias;    // (J, Wp)
  std::vector<IkgatBlock> blocks;
  AlignedFloats head_weight;   // (J, Wp, detail::kIkgatHeadColumns), the final LayerNorm folded in; columns >= 6 zero
  AlignedFloats head_bias;     // (J, detail::kIkgatHeadColumns)
};

// Packs the parameters (copies them). Throws std::invalid_argument when the
// sizes or the mask make no model (a query joint with no allowed key, say).
IkgatWeights make_ikgat_weights(const IkgatParams& params);

// FLOPs (multiply and add counted apart) of the forward pass for one frame.
int64_t ikgat_flops_per_frame(const IkgatWeights& weights);

// inputs -> out (B, J, 3, 3), both C-contiguous float32: inputs are
// positions (B, J, 3) when weights.from_positions, else features (B, J, F).
// The matrices' columns are the bone frame's axes (6D head, Gram-Schmidt).
// Large batches are spread over the thread pool. Inputs must be finite (not
// checked here).
void ikgat_forward(const IkgatWeights& weights, const float* inputs, int64_t batch, float* out);

}  // namespace fastkin
