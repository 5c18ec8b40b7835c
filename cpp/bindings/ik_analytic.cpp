// Bindings for analytic IK: shapes and dtypes checked, GIL released, kernel
// called.
#include "fastkin/ik_analytic.h"

#include <string>
#include <vector>

#include "arrays.h"
#include "module.h"

namespace fastkin::bindings {
namespace {

const std::vector<int64_t> kNoBatch;

Batch positions_batch(const ConstArray& positions, int64_t num_joints) {
  return leading_batch(shape_of(positions), "positions", {num_joints, 3});
}

// reference: (J, 4) or (J, 3, 3) for every frame, or the positions' batch
// shape followed by either.
template <class T>
void check_reference(const ConstArray& reference, const Batch& batch, int64_t num_joints,
                     AnalyticIkInputs<T>& in) {
  if (reference.dtype() != nb::dtype<T>())
    throw nb::type_error((std::string("reference must have dtype ") + (sizeof(T) == 4 ? "float32" : "float64") +
                          " like positions")
                             .c_str());
  const auto shape = shape_of(reference);
  const size_t n = shape.size();
  const bool quaternions = n >= 2 && shape[n - 1] == 4 && shape[n - 2] == num_joints;
  const bool matrices = n >= 3 && shape[n - 1] == 3 && shape[n - 2] == 3 && shape[n - 3] == num_joints;
  const size_t trailing = quaternions ? 2 : 3;
  bool match = quaternions || matrices;
  const bool shared = match && n == trailing;
  if (match && !shared) {
    match = n == batch.shape.size() + trailing;
    for (size_t i = 0; match && i < batch.shape.size(); ++i) match = shape[i] == batch.shape[i];
  }
  if (!match) {
    const std::string J = std::to_string(num_joints);
    const std::string lead = shape_string(batch.shape);
    throw nb::value_error(("reference must have shape (" + J + ", 4) or (" + J + ", 3, 3), optionally after the " +
                           "batch shape of positions " + lead + ", got " + shape_string(shape))
                              .c_str());
  }
  require_c_contiguous(reference, "reference");
  in.reference = static_cast<const T*>(reference.data());
  in.reference_form = quaternions ? RotationForm::Quaternion : RotationForm::Matrix;
  in.reference_batched = !shared;
}

template <class T>
nb::typed<nb::tuple, bool, NewArray, NewArray> solve(const AnalyticIkPlan& plan, const ConstArray& positions, const std::optional<ConstArray>& reference) {
  const int64_t J = plan.num_joints;
  const Batch batch = positions_batch(positions, J);
  AnalyticIkInputs<T> in{};
  in.positions = static_cast<const T*>(checked<T>(positions, "positions", batch.shape, {J, 3}));
  in.batch = batch.size;
  if (reference) check_reference<T>(*reference, batch, J, in);
  auto local_rotations = new_array<T>(batch.shape, {J, 3, 3});
  auto root_translation = new_array<T>(batch.shape, {3});
  bool ok;
  {
    nb::gil_scoped_release release;
    ok = ik_analytic<T>(plan, in, local_rotations.data(), root_translation.data());
  }
  return nb::make_tuple(ok, local_rotations, root_translation);
}

}  // namespace

void bind_ik_analytic(nb::module_& m) {
  nb::class_<AnalyticIkPlan>(m, "AnalyticIkPlan",
                             "What analytic IK precomputes for a skeleton: targets and rest vectors per joint.")
      .def(
          "__init__",
          [](AnalyticIkPlan* self, const ConstArray& parents, const ConstArray& offsets,
             const ConstArray& rest_rotations) {
            const int32_t* p = checked_parents(parents);
            const int64_t J = static_cast<int64_t>(parents.shape(0));
            const auto* o = static_cast<const double*>(checked<double>(offsets, "offsets", kNoBatch, {J, 3}));
            const auto* r =
                static_cast<const double*>(checked<double>(rest_rotations, "rest_rotations", kNoBatch, {J, 4}));
            new (self) AnalyticIkPlan(make_analytic_ik_plan(p, o, r, J));
          },
          nb::arg("parents"), nb::arg("offsets"), nb::arg("rest_rotations"))
      .def_prop_ro("num_joints", [](const AnalyticIkPlan& plan) { return plan.num_joints; })
      .def_prop_ro(
          "targets",
          [](const AnalyticIkPlan& plan) {
            nb::typed<nb::list, nb::typed<nb::tuple, int, nb::ellipsis>> joints;
            for (int64_t j = 0; j < plan.num_joints; ++j) {
              nb::list targets;
              for (int32_t k = plan.target_begin[j]; k < plan.target_begin[j + 1]; ++k)
                targets.append(plan.target_joint[k]);
              joints.append(nb::tuple(targets));
            }
            return joints;
          },
          "For each joint, the joints whose positions aim its bones (zero-length children looked through).");
  m.def(
      "ik_analytic",
      [](const AnalyticIkPlan& plan, const ConstArray& positions, const std::optional<ConstArray>& reference) {
        if (positions.dtype() == nb::dtype<double>()) return solve<double>(plan, positions, reference);
        if (positions.dtype() == nb::dtype<float>()) return solve<float>(plan, positions, reference);
        throw nb::type_error("positions must have dtype float32 or float64");
      },
      nb::arg("plan"), nb::arg("positions"), nb::arg("reference").none(),
      "(ok, local_rotations, root_translation) as new numpy arrays; ok is False when an input is not finite, "
      "a reference rotation is invalid or an output overflowed.");
}

}  // namespace fastkin::bindings
