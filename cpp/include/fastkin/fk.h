// Batched forward kinematics and its vector-Jacobian product.
//
// Conventions (docs/conventions.md): parents[j] < j (roots are -1), local
// rotation R_j from an xyzw quaternion (normalised inside: the rotation of
// q / |q|) or a row-major 3x3 matrix, local transform T_j = [R_j | o_j],
// world W_j = W_parent(j) T_j, and each root gets o_root + root_translation.
#pragma once
#include <cstdint>

namespace fastkin {

enum class RotationForm { Quaternion, Matrix };

// Everything fk reads. Arrays are C-contiguous with a leading batch of
// `batch` poses: rotations (B, J, 4 | 3x3), root_translation (B, 3) or null,
// offsets (J, 3) shared by all poses (offsets_batched == false) or (B, J, 3).
template <class T>
struct FkInputs {
  const int32_t* parents;
  int64_t num_joints;
  int64_t batch;
  const T* rotations;
  RotationForm form;
  const T* root_translation;
  const T* offsets;
  bool offsets_batched;
};

// Gradients of a scalar loss with respect to the fk inputs. The offset
// gradient is (J, 3) summed over the batch when the offsets are shared, else
// (B, J, 3). root_translation and offsets may be null when they are not
// wanted (a null offsets skips that part of the pass, ~5% of it).
template <class T>
struct FkGradients {
  T* rotations;
  T* root_translation;
  T* offsets;
};

// Writes world rotations (B, J, 3, 3) and positions (B, J, 3). Returns false
// when an output is not finite (a non-finite input or a zero quaternion).
// Outputs over 2 MB bypass the cache (non-temporal stores) unless
// `stream_large_outputs` is false: streaming is the faster write, but a
// caller that reads the outputs straight back (an autograd loss) then
// fetches them from memory instead of the cache.
template <class T>
bool fk_forward(const FkInputs<T>& in, T* world_rotations, T* world_positions, bool stream_large_outputs = true);

// Pulls the output gradients back to the inputs. Either output gradient may
// be null (treated as zero). Returns false when a gradient is not finite.
template <class T>
bool fk_backward(const FkInputs<T>& in, const T* grad_world_rotations,
                 const T* grad_world_positions, const FkGradients<T>& grads);

}  // namespace fastkin
