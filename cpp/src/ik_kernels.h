// Internal: the analytic IK frame solvers compiled once per instruction set
// (ik_block.inl included by ik_scalar.cpp and ik_avx2.cpp) and what the
// dispatcher in ik_analytic.cpp picks from.
#pragma once
#include <cstdint>

#include "fastkin/ik_analytic.h"

namespace fastkin::detail {

// Frames solved together when there is no reference.
constexpr int kIkBlockLanes = 8;

// Doubles of scratch one worker needs: solved world rotations of a block
// (9 per joint and lane), or with a reference, world rotations, the
// reference's world rotations and positions of one frame (21 per joint).
inline int64_t ik_scratch_size(int64_t num_joints) { return 9 * kIkBlockLanes * num_joints; }

// The plan as plain pointers: the solvers touch nothing of std:: (a copy of
// a std::vector accessor compiled with -mavx2 could be merged by the
// linker into the baseline build).
struct IkPlanView {
  int64_t num_joints;
  const int32_t* parents;
  const double* offsets;
  const double* rest_rotations;
  const char* rest_is_identity;
  const char* has_children;
  int32_t first_root;
  const int32_t* target_begin;
  const int32_t* target_joint;
  const double* parent_vector;
};

// Solves frames [begin, end) of a call into local_rotations and
// root_translation; false when an input or output is not finite or a
// reference rotation is bad.
template <class T>
using IkRange = bool (*)(const IkPlanView& plan, const AnalyticIkInputs<T>& in, int64_t begin, int64_t end,
                         double* scratch, T* local_rotations, T* root_translation);

template <class T> IkRange<T> ik_range_scalar();
template <class T> IkRange<T> ik_range_avx2();

}  // namespace fastkin::detail
