// Bindings for the Levenberg-Marquardt IK solver: shapes, dtypes and
// indices checked, outputs allocated, GIL released, kernel called.
#include "fastkin/ik_solve.h"

#include <cmath>
#include <string>
#include <vector>

#include "arrays.h"
#include "module.h"
#include "skeleton_data.h"

namespace fastkin::bindings {
namespace {

const std::vector<int64_t> kNone;

template <class T>
const T* data_of(const ConstArray& a, const char* name, const std::vector<int64_t>& leading,
                 std::initializer_list<int64_t> trailing) {
  return static_cast<const T*>(checked<T>(a, name, leading, trailing));
}

template <class T>
const T* optional_data(const std::optional<ConstArray>& a, const char* name, const std::vector<int64_t>& leading,
                       std::initializer_list<int64_t> trailing) {
  return a ? data_of<T>(*a, name, leading, trailing) : nullptr;
}

template <class T>
void require_finite(const T* values, int64_t count, const char* name) {
  for (int64_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i]))
      throw nb::value_error((std::string(name) + " must be finite (it holds NaN or infinity)").c_str());
}

const int32_t* checked_indices(const ConstArray& a, const char* name, int64_t limit) {
  if (a.dtype() != nb::dtype<int32_t>() || a.ndim() != 1)
    throw nb::type_error((std::string(name) + " must be a 1-D int32 array").c_str());
  require_c_contiguous(a, name);
  const auto* v = static_cast<const int32_t*>(a.data());
  for (size_t i = 0; i < a.shape(0); ++i)
    if (v[i] < 0 || v[i] >= limit)
      throw nb::value_error((std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(v[i]) +
                             " is not a joint index in [0, " + std::to_string(limit) + ")")
                                .c_str());
  return v;
}

template <class T>
void solve(const SkeletonData& skeleton, const std::optional<ConstArray>& target_joints, const ConstArray& targets,
                const std::optional<ConstArray>& target_weights, const std::optional<ConstArray>& orientation_targets,
                double orientation_weight, const ConstArray& init_rotations, const std::optional<ConstArray>& init_root,
                double regularization, double root_regularization, bool fixed_root, const std::optional<ConstArray>& limits,
                double huber_delta, int max_iters, double tol, bool sequential, Array& rotations, Array& root,
                Array& error, Array& iterations, Array& converged) {
  IkProblem<T> p{};
  p.parents = skeleton.parents.data();
  p.num_joints = skeleton.num_joints();
  const int64_t J = p.num_joints;
  p.offsets = skeleton.offsets<T>();
  p.rest_rotations = skeleton.rest<T>();
  if (target_joints) {
    p.target_joints = checked_indices(*target_joints, "joints", J);
    p.num_targets = static_cast<int64_t>(target_joints->shape(0));
  } else {  // every joint
    p.target_joints = skeleton.all_joints.data();
    p.num_targets = J;
  }
  const int64_t T_ = p.num_targets;
  if (targets.ndim() != 3) throw nb::value_error("targets must have shape (B, T, 3)");
  p.batch = static_cast<int64_t>(targets.shape(0));
  const std::vector<int64_t> batch{p.batch};
  p.targets = data_of<T>(targets, "targets", batch, {T_, 3});
  p.target_weights = optional_data<T>(target_weights, "weights", kNone, {T_});
  p.orientation_targets = optional_data<T>(orientation_targets, "orientation_targets", batch, {T_, 3, 3});
  p.orientation_weight = static_cast<T>(orientation_weight);
  // init: per frame or shared, quaternions or matrices.
  const size_t n = init_rotations.ndim();
  p.init_form = n >= 1 && init_rotations.shape(n - 1) == 4 ? RotationForm::Quaternion : RotationForm::Matrix;
  const bool quaternions = p.init_form == RotationForm::Quaternion;
  p.init_shared = n == (quaternions ? 2u : 3u);
  const std::vector<int64_t>& init_batch = p.init_shared ? kNone : batch;
  p.init_rotations = quaternions ? data_of<T>(init_rotations, "init", init_batch, {J, 4})
                                 : data_of<T>(init_rotations, "init", init_batch, {J, 3, 3});
  std::vector<T> roots;
  if (!init_root) {
    p.init_root = nullptr;  // the solver starts from the first root's target
  } else if (init_root->ndim() == 1) {  // one start translation for every frame
    const T* r = data_of<T>(*init_root, "init_root", kNone, {3});
    roots.resize(p.batch * 3);
    for (int64_t b = 0; b < p.batch; ++b) std::copy(r, r + 3, roots.begin() + b * 3);
    p.init_root = roots.data();
  } else {
    p.init_root = data_of<T>(*init_root, "init_root", batch, {3});
  }
  p.regularization = static_cast<T>(regularization);
  p.root_regularization = static_cast<T>(root_regularization);
  p.fixed_root = fixed_root;
  p.limits = optional_data<T>(limits, "joint_limits", kNone, {J, 3, 2});
  p.huber_delta = static_cast<T>(huber_delta);
  p.max_iters = max_iters;
  p.tol = static_cast<T>(tol);
  p.sequential = sequential;
  require_finite(p.targets, p.batch * T_ * 3, "targets");
  require_finite(p.init_rotations, (p.init_shared ? 1 : p.batch) * J * (quaternions ? 4 : 9), "init");
  if (quaternions)
    for (int64_t i = 0; i < (p.init_shared ? 1 : p.batch) * J; ++i) {
      const T* q = p.init_rotations + 4 * i;
      if (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3] == T(0))
        throw nb::value_error("init holds a zero quaternion, which is no rotation");
    }
  if (p.init_root) require_finite(p.init_root, p.batch * 3, "init_root");
  if (p.orientation_targets) require_finite(p.orientation_targets, p.batch * T_ * 9, "orientation_targets");
  if (p.target_weights)
    for (int64_t t = 0; t < T_; ++t)
      if (!(p.target_weights[t] >= 0) || !std::isfinite(p.target_weights[t]))
        throw nb::value_error(("weights[" + std::to_string(t) + "] must be finite and >= 0").c_str());
  if (iterations.dtype() != nb::dtype<int32_t>() || converged.dtype() != nb::dtype<bool>())
    throw nb::type_error("iterations must be int32 and converged bool");
  IkSolution<T> out{static_cast<T*>(const_cast<void*>(checked<T>(rotations, "rotations", batch, {J, 4}))),
                    static_cast<T*>(const_cast<void*>(checked<T>(root, "root", batch, {3}))),
                    static_cast<T*>(const_cast<void*>(checked<T>(error, "error", batch, {}))),
                    static_cast<int32_t*>(iterations.data()), static_cast<uint8_t*>(converged.data())};
  if (iterations.ndim() != 1 || converged.ndim() != 1 || static_cast<int64_t>(iterations.shape(0)) != p.batch ||
      static_cast<int64_t>(converged.shape(0)) != p.batch)
    throw nb::value_error("iterations and converged must have shape (B,)");
  require_c_contiguous(iterations, "iterations");
  require_c_contiguous(converged, "converged");
  nb::gil_scoped_release release;
  ik_solve<T>(p, out);
}

}  // namespace

void bind_ik_solve(nb::module_& m) {
  m.def(
      "ik_solve",
      [](const SkeletonData& skeleton, const std::optional<ConstArray>& target_joints, const ConstArray& targets, const std::optional<ConstArray>& target_weights,
         const std::optional<ConstArray>& orientation_targets, double orientation_weight,
         const ConstArray& init_rotations, const std::optional<ConstArray>& init_root, double regularization,
         double root_regularization, bool fixed_root, const std::optional<ConstArray>& limits, double huber_delta,
         int max_iters, double tol, bool sequential, Array rotations, Array root, Array error, Array iterations,
         Array converged) {
        if (targets.dtype() == nb::dtype<double>())
          return solve<double>(skeleton, target_joints, targets, target_weights,
                               orientation_targets, orientation_weight, init_rotations, init_root, regularization,
                               root_regularization, fixed_root, limits, huber_delta, max_iters, tol, sequential,
                               rotations, root, error, iterations, converged);
        if (targets.dtype() == nb::dtype<float>())
          return solve<float>(skeleton, target_joints, targets, target_weights,
                              orientation_targets, orientation_weight, init_rotations, init_root, regularization,
                              root_regularization, fixed_root, limits, huber_delta, max_iters, tol, sequential,
                              rotations, root, error, iterations, converged);
        throw nb::type_error("targets must have dtype float32 or float64");
      },
      nb::arg("skeleton"), nb::arg("target_joints").none(), nb::arg("targets"),
      nb::arg("target_weights").none(), nb::arg("orientation_targets").none(), nb::arg("orientation_weight"),
      nb::arg("init_rotations"), nb::arg("init_root").none(), nb::arg("regularization"), nb::arg("root_regularization"), nb::arg("fixed_root"),
      nb::arg("limits").none(), nb::arg("huber_delta"), nb::arg("max_iters"), nb::arg("tol"), nb::arg("sequential"), nb::arg("rotations"), nb::arg("root"), nb::arg("error"),
      nb::arg("iterations"), nb::arg("converged"),
      "Levenberg-Marquardt IK over a batch (B, ...); init (B | -, J, 4 | 3x3), init_root (B | -, 3). Writes "
      "rotations (B, J, 4) xyzw, root (B, 3), error (B,), iterations (B,) int32 and converged (B,) bool.");
}

}  // namespace fastkin::bindings
