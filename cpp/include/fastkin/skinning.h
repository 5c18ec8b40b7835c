// Skinning: linear blend (LBS) and dual-quaternion (DQS), forward and
// vector-Jacobian product, over a batch of poses sharing one set of
// per-vertex influences.
//
// Conventions (docs/skinning.md): vertex v has K influences (joint index,
// weight). LBS: v' = sum_k w_k M_j(k) [v; 1] / sum_k w_k with M_j the 3x4
// row-major skinning transform of joint j. DQS blends the joints' unit dual
// quaternions (real xyzw, dual xyzw) with the weights, flipping each to the
// hemisphere of the vertex's first influence, and applies the blend divided
// by its real part's norm. Directions (normals) skip the translation.
#pragma once
#include <cstdint>

namespace fastkin {

enum class SkinMethod { Linear, DualQuaternion };

// Everything a skinning call reads. Arrays are C-contiguous: transforms
// (B, J, 3, 4) for Linear or (B, J, 8) dual quaternions for DualQuaternion,
// vertices (V, 3) shared (vertices_batched == false) or (B, V, 3),
// joint_indices and weights (V, K).
template <class T>
struct SkinInputs {
  int64_t batch;
  int64_t num_joints;
  int64_t num_vertices;
  int64_t num_influences;
  const T* transforms;
  const T* vertices;
  bool vertices_batched;
  const int32_t* joint_indices;
  const T* weights;
  bool points;  // false: directions, which the translation does not move
};

// What check_influences found: the first offending vertex and influence.
struct InfluenceCheck {
  enum Problem : int { Ok = 0, JointIndex = 1, BadWeight = 2, ZeroWeights = 3 };
  Problem problem = Ok;
  int64_t vertex = -1;
  int64_t influence = -1;
  int64_t unnormalized = 0;  // vertices whose weights do not sum to 1 (within 1e-3)
};

// Checks joint indices in [0, J) and weights finite, >= 0, not all zero;
// the slow, thorough check that names the offending influence.
template <class T>
InfluenceCheck check_influences(int64_t num_vertices, int64_t num_influences, int64_t num_joints,
                                const int32_t* joint_indices, const T* weights);

// Whether every joint index is in [0, J) and every weight finite and >= 0:
// the fast check of every call (memory safety rests on it). On failure,
// check_influences says where.
template <class T>
bool influences_valid(int64_t num_vertices, int64_t num_influences, int64_t num_joints,
                      const int32_t* joint_indices, const T* weights);

struct SkinResult {
  bool finite = true;        // false: an output is not finite (bad input, or a vertex whose weights are all zero)
  int64_t unnormalized = 0;  // vertices whose weights do not sum to 1 (within 1e-3)
};

// Writes skinned vertices (B, V, 3). The influences must be valid
// (influences_valid).
template <class T>
SkinResult skin_forward(SkinMethod method, const SkinInputs<T>& in, T* out);

// Pulls grad_out (B, V, 3) back to the transforms (same shape as
// in.transforms), the vertices (shape of in.vertices; null: not wanted) and
// the weights ((V, K) summed over the batch; null: not wanted). Returns false
// when a gradient is not finite.
template <class T>
bool skin_backward(SkinMethod method, const SkinInputs<T>& in, const T* grad_out, T* grad_transforms,
                   T* grad_vertices, T* grad_weights);

// Unit dual quaternions (count, 8) of rigid 3x4 transforms (count, 3, 4).
// Returns the index of the first transform that is not a rotation plus a
// translation (to 1e-4), or -1.
template <class T>
int64_t rigid_to_dual_quaternions(int64_t count, const T* transforms, T* dual_quaternions);

}  // namespace fastkin
