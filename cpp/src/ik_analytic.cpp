// Analytic IK entry points: the per-skeleton plan, and the batch split over
// the thread pool with the frame solvers for this CPU (ik_block.inl has the
// math; docs/ik.md the rules).
#include "fastkin/ik_analytic.h"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "dispatch.h"
#include "fastkin/cpu.h"
#include "fastkin/parallel.h"
#include "ik_kernels.h"

namespace fastkin {
namespace {

#include "ik_math.inl"

// Below this many joints per worker the pool costs more than it saves.
constexpr int64_t kMinJointsPerThread = 16384;
// An offset shorter than this fraction of the skeleton's longest bone has no
// direction (as in bone_frames); a joint with only such children is aimed
// through them.
constexpr double kZeroLength = 1e-9;

// Appends the targets of a joint reached through joint `via` (the joint
// itself, or a zero-length descendant): `to_joint` turns via's frame into the
// joint's, `base` is the vector from the joint to via in its frame. The
// targets of via are its children with a usable offset; only when it has
// none are its zero-length children looked through (so a joint with a real
// child is never aimed by vectors that assume a start rotation).
void collect_targets(const std::vector<std::vector<int32_t>>& children, double zero_length, int32_t via,
                     const double* to_joint, const double* base, AnalyticIkPlan& plan) {
  const auto usable = [&](int32_t child) {
    const double* offset = plan.offsets.data() + 3 * child;
    return std::sqrt(dot3(offset, offset)) > zero_length;
  };
  const bool look_through = std::none_of(children[via].begin(), children[via].end(), usable);
  for (int32_t child : children[via]) {
    double vector[3];
    mat_vec(to_joint, plan.offsets.data() + 3 * child, vector);
    for (int i = 0; i < 3; ++i) vector[i] += base[i];
    if (usable(child)) {
      plan.target_joint.push_back(child);
      plan.rest_vector.insert(plan.rest_vector.end(), vector, vector + 3);
    } else if (look_through) {
      double deeper[9];
      mul(to_joint, plan.rest_rotations.data() + 9 * child, deeper);
      collect_targets(children, zero_length, child, deeper, vector, plan);
    }
  }
}


// The frame solver for this CPU: AVX2 with FMA where the CPU has it (AVX-512
// CPUs too), else the baseline build. FASTKIN_ISA=scalar forces the latter.
template <class T>
detail::IkRange<T> range_solver() {
  static const detail::IkRange<T> solver = [] {
#if defined(FASTKIN_HAVE_X86_KERNELS)
    if (active_isa() != Isa::Scalar) return detail::ik_range_avx2<T>();
#endif
    return detail::ik_range_scalar<T>();
  }();
  return solver;
}

}  // namespace


AnalyticIkPlan make_analytic_ik_plan(const int32_t* parents, const double* offsets, const double* rest_quaternions,
                                     int64_t num_joints) {
  AnalyticIkPlan plan;
  const int64_t J = num_joints;
  plan.num_joints = J;
  plan.parents.assign(parents, parents + J);
  plan.offsets.assign(offsets, offsets + 3 * J);
  plan.rest_rotations.resize(9 * J);
  plan.rest_is_identity.assign(J, 0);
  plan.has_children.assign(J, 0);
  plan.first_root = -1;
  std::vector<std::vector<int32_t>> children(J);
  double longest = 0.0;
  for (int64_t j = 0; j < J; ++j) {
    const double* q = rest_quaternions + 4 * j;
    quat_matrix(q[0], q[1], q[2], q[3], plan.rest_rotations.data() + 9 * j);
    plan.rest_is_identity[j] = q[0] == 0.0 && q[1] == 0.0 && q[2] == 0.0;
    if (plan.rest_is_identity[j]) copy9(kIdentity, plan.rest_rotations.data() + 9 * j);
    if (parents[j] >= 0) {
      children[parents[j]].push_back(static_cast<int32_t>(j));
      plan.has_children[parents[j]] = 1;
      longest = std::max(longest, std::sqrt(dot3(offsets + 3 * j, offsets + 3 * j)));
    } else if (plan.first_root < 0) {
      plan.first_root = static_cast<int32_t>(j);
    }
  }
  const double zero_length = kZeroLength * longest;
  plan.target_begin.assign(J + 1, 0);
  const double origin[3] = {0, 0, 0};
  for (int64_t j = 0; j < J; ++j) {
    plan.target_begin[j] = static_cast<int32_t>(plan.target_joint.size());
    collect_targets(children, zero_length, static_cast<int32_t>(j), kIdentity, origin, plan);
  }
  plan.target_begin[J] = static_cast<int32_t>(plan.target_joint.size());
  const size_t count = plan.target_joint.size();
  plan.parent_vector.resize(3 * count);
  for (int64_t j = 0; j < J; ++j)
    for (int32_t k = plan.target_begin[j]; k < plan.target_begin[j + 1]; ++k)
      mat_vec(plan.rest_rotations.data() + 9 * j, plan.rest_vector.data() + 3 * k, plan.parent_vector.data() + 3 * k);
  return plan;
}

template <class T>
bool ik_analytic(const AnalyticIkPlan& plan, const AnalyticIkInputs<T>& in, T* local_rotations,
                 T* root_translation) {
  const int64_t J = plan.num_joints;
  if (J == 0 || in.batch == 0) return true;
  const detail::IkRange<T> solve = range_solver<T>();
  const detail::IkPlanView view{J,
                                plan.parents.data(),
                                plan.offsets.data(),
                                plan.rest_rotations.data(),
                                plan.rest_is_identity.data(),
                                plan.has_children.data(),
                                plan.first_root,
                                plan.target_begin.data(),
                                plan.target_joint.data(),
                                plan.parent_vector.data()};
  std::atomic<bool> ok{true};
  parallel_ranges(in.batch, J, kMinJointsPerThread, [&](int64_t begin, int64_t end) {
    double* scratch = detail::thread_scratch<double, 3>(detail::ik_scratch_size(J));
    if (!solve(view, in, begin, end, scratch, local_rotations, root_translation))
      ok.store(false, std::memory_order_relaxed);
  });
  return ok.load();
}

template bool ik_analytic<float>(const AnalyticIkPlan&, const AnalyticIkInputs<float>&, float*, float*);
template bool ik_analytic<double>(const AnalyticIkPlan&, const AnalyticIkInputs<double>&, double*, double*);

}  // namespace fastkin