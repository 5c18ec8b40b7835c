// Analytic (factorised) inverse kinematics: local rotations from world joint
// positions, one joint at a time from the roots down (docs/ik.md has the
// math and the rules).
//
// Every matrix is a row-major 3x3 rotating column vectors. Batched arrays are
// C-contiguous: positions (B, J, 3), local rotations (B, J, 3, 3), root
// translation (B, 3), reference (B or 1, J, 4 | 3x3).
#pragma once
#include <cstdint>
#include <vector>

#include "fastkin/fk.h"  // RotationForm

namespace fastkin {

// What analytic IK needs of a skeleton, independent of the frame: built once
// per skeleton (parents[j] < j, roots -1).
//
// The *targets* of joint j are the joints whose positions aim its bones:
// its children whose offsets are usable (not shorter than 1e-9 of the
// skeleton's longest bone). When j has none, its zero-length children are
// looked through: their targets become j's, reached through the child's rest
// rotation (recursively). Each target stores the vector from j to it in j's
// frame at rest (`rest_vector`, u) and in j's parent's frame at rest
// (`parent_vector`, R0_j u).
struct AnalyticIkPlan {
  int64_t num_joints = 0;
  std::vector<int32_t> parents;
  std::vector<double> offsets;         // (J, 3)
  std::vector<double> rest_rotations;  // (J, 9): R0_j
  std::vector<char> rest_is_identity;  // (J): R0_j == I exactly
  std::vector<char> has_children;      // (J): some joint's parent is j
  int32_t first_root = 0;
  std::vector<int32_t> target_begin;   // (J + 1): joint j's targets are [begin[j], begin[j + 1])
  std::vector<int32_t> target_joint;  // (n): the joint whose position is aimed at
  std::vector<double> rest_vector;     // (n, 3): u, from j to the target in j's frame at rest
  std::vector<double> parent_vector;   // (n, 3): R0_j u, the same in the parent's frame
};

// Builds the plan. offsets (J, 3); rest_quaternions (J, 4) xyzw, unit.
AnalyticIkPlan make_analytic_ik_plan(const int32_t* parents, const double* offsets,
                                     const double* rest_quaternions, int64_t num_joints);

// One call's arrays. reference may be null; with it, `reference_batched`
// says whether it has one pose per frame (B, J, ...) or one for all (J, ...).
template <class T>
struct AnalyticIkInputs {
  const T* positions;
  int64_t batch;
  const T* reference;
  RotationForm reference_form;
  bool reference_batched;
};

// Writes local rotations (B, J, 3, 3) and the root translation (B, 3).
// Computes in double for either T. Returns false when a position or
// reference value is not finite, a reference quaternion is zero, a reference
// matrix is not a rotation (|RᵀR - I| > 1e-5 or det <= 0), or an output
// overflowed; the caller says which.
template <class T>
bool ik_analytic(const AnalyticIkPlan& plan, const AnalyticIkInputs<T>& in, T* local_rotations,
                 T* root_translation);

}  // namespace fastkin
