// Batched inverse kinematics by Levenberg-Marquardt on the rotation
// manifold (docs/ik.md).
//
// Unknowns per frame: a world-frame rotation increment w_j for every joint
// (rotating j's whole subtree about j; applied as the local update
// R_j <- R_j exp(W_jᵀ w_j), so there are no Euler singularities) and, unless
// the root is fixed, the root translation. Position targets give the
// Jacobian blocks -[p_k - p_a]x for each strict ancestor a of the target
// joint k, so the normal matrix only couples joints that are ancestor and
// descendant: factorised leaves first, that pattern has no fill-in, and one
// iteration costs O(sum of squared depths) instead of O((3J)^3).
#pragma once
#include <cstdint>

#include "fastkin/fk.h"  // RotationForm

namespace fastkin {

// One problem over a batch of B frames. Arrays are C-contiguous.
template <class T>
struct IkProblem {
  const int32_t* parents;  // (J,), parents[j] < j, roots -1
  int64_t num_joints;
  const T* offsets;         // (J, 3) rest local translations
  const T* rest_rotations;  // (J, 3, 3) local rest rotations; limits are relative to them
  int64_t batch;
  int64_t num_targets;
  const int32_t* target_joints;  // (T,) joints with a position target
  const T* targets;              // (B, T, 3)
  const T* target_weights;       // (T,), or null for all 1
  const T* orientation_targets;  // (B, T, 3, 3) world rotations of the target joints, or null
  T orientation_weight;
  const T* init_rotations;  // local rotations to start from: (B, J, 4 | 3x3), or (J, 4 | 3x3) when init_shared
  RotationForm init_form;   // xyzw quaternions (used as q / |q|) or matrices
  bool init_shared;         // one start pose for every frame
  const T* init_root;       // (B, 3) root translation to start from; null: the first root's target
                            // minus its offset when it has one, else zero
  T regularization;         // weight of |log(P_jᵀ R_j)|² with P the start (or previous frame)
  T root_regularization;    // weight of |t - t_start|² for the root translation t
  bool fixed_root;          // keep init_root
  const T* limits;          // (J, 3, 2) [min, max] of the rotation vector of R0_jᵀ R_j, or null
  T huber_delta;            // > 0: Huber loss on position residuals; 0: squares
  int max_iters;
  T tol;            // converged when every target joint is within tol of its target
  bool sequential;  // frame b starts from (and is regularised towards) frame b - 1's solution
};

template <class T>
struct IkSolution {
  T* rotations;         // (B, J, 4) local rotations as xyzw quaternions
  T* root_translation;  // (B, 3)
  T* error;             // (B,) largest distance of a target joint from its target
  int32_t* iterations;  // (B,)
  uint8_t* converged;   // (B,) 1: within tol, or at a stationary point (targets out of reach)
};

template <class T>
void ik_solve(const IkProblem<T>& problem, const IkSolution<T>& solution);

}  // namespace fastkin
