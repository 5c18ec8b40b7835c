// Bindings for the two-bone and FABRIK kernels: shapes, dtypes and indices
// checked, GIL released, kernel called.
#include "fastkin/ik_chains.h"

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "arrays.h"
#include "module.h"

namespace fastkin::bindings {
namespace {

const std::vector<int64_t> kShared;


// An input of `trailing` shape per frame, either one per frame (leading
// dimension `batch`) or one shared by every frame (no leading dimension;
// stride 0). Returns the data and sets the stride between frames.
template <class T>
const T* per_frame_or_shared(const ConstArray& a, const char* name, int64_t batch,
                             std::initializer_list<int64_t> trailing, int64_t& stride) {
  if (a.ndim() == trailing.size()) {
    stride = 0;
    return static_cast<const T*>(checked<T>(a, name, kShared, trailing));
  }
  int64_t size = 1;
  for (int64_t d : trailing) size *= d;
  stride = size;
  return static_cast<const T*>(checked<T>(a, name, {batch}, trailing));
}

template <class T>
T* output(Array& a, const char* name, int64_t batch, std::initializer_list<int64_t> trailing) {
  return static_cast<T*>(const_cast<void*>(checked<T>(a, name, {batch}, trailing)));
}

int64_t batch_of(const Array& out, const char* name, size_t ndim) {
  if (out.ndim() != ndim)
    throw nb::value_error((std::string(name) + " must have " + std::to_string(ndim) + " dimensions, got " +
                           shape_string(shape_of(out)))
                              .c_str());
  return static_cast<int64_t>(out.shape(0));
}

template <class T>
bool two_bone(const ConstArray& roots, const ConstArray& mids, const ConstArray& ends, const ConstArray& targets,
              const std::optional<ConstArray>& poles, Array& new_mids, Array& new_ends,
              std::optional<Array>& upper_rotations, std::optional<Array>& lower_rotations) {
  const int64_t batch = batch_of(new_mids, "new_mids", 2);
  int64_t rs, ms, es, ts, ps = 0;
  const T* r = per_frame_or_shared<T>(roots, "root", batch, {3}, rs);
  const T* m = per_frame_or_shared<T>(mids, "mid", batch, {3}, ms);
  const T* e = per_frame_or_shared<T>(ends, "end", batch, {3}, es);
  const T* t = per_frame_or_shared<T>(targets, "target", batch, {3}, ts);
  const T* p = poles ? per_frame_or_shared<T>(*poles, "pole", batch, {3}, ps) : nullptr;
  T* nm = output<T>(new_mids, "new_mids", batch, {3});
  T* ne = output<T>(new_ends, "new_ends", batch, {3});
  if (upper_rotations.has_value() != lower_rotations.has_value())
    throw nb::value_error("upper_rotations and lower_rotations must both be given or both be None");
  T* ur = upper_rotations ? output<T>(*upper_rotations, "upper_rotations", batch, {3, 3}) : nullptr;
  T* lr = lower_rotations ? output<T>(*lower_rotations, "lower_rotations", batch, {3, 3}) : nullptr;
  nb::gil_scoped_release release;
  return two_bone_ik<T>(r, rs, m, ms, e, es, t, ts, p, ps, batch, nm, ne, ur, lr);
}

// target_joints: int32 (T,), T >= 1, distinct joint indices in [0, J).
const int32_t* checked_target_joints(const ConstArray& target_joints, int64_t num_joints) {
  if (target_joints.dtype() != nb::dtype<int32_t>() || target_joints.ndim() != 1)
    throw nb::type_error("target_joints must be a 1-D int32 array");
  require_c_contiguous(target_joints, "target_joints");
  const int64_t n = static_cast<int64_t>(target_joints.shape(0));
  if (n == 0) throw nb::value_error("target_joints must name at least one joint");
  const auto* t = static_cast<const int32_t*>(target_joints.data());
  std::vector<char> seen(static_cast<size_t>(num_joints), 0);
  for (int64_t i = 0; i < n; ++i) {
    if (t[i] < 0 || t[i] >= num_joints)
      throw nb::value_error(("target_joints[" + std::to_string(i) + "] = " + std::to_string(t[i]) +
                             " is not a joint index in [0, " + std::to_string(num_joints) + ")")
                                .c_str());
    if (seen[t[i]]++)
      throw nb::value_error(
          ("target_joints must be distinct; joint " + std::to_string(t[i]) + " appears twice").c_str());
  }
  return t;
}

template <class T>
bool fabrik_call(const ConstArray& parents, const ConstArray& target_joints, const ConstArray& positions,
                 const ConstArray& targets, int max_iters, double tol, double relative_tol, bool fixed_root,
                 Array& out_positions, Array& iterations, Array& converged) {
  const int32_t* par = checked_parents(parents);
  const int64_t J = static_cast<int64_t>(parents.shape(0));
  if (J == 0) throw nb::value_error("parents must have at least one joint");
  const int32_t* tj = checked_target_joints(target_joints, J);
  const int64_t num_targets = static_cast<int64_t>(target_joints.shape(0));
  if (max_iters < 1) throw nb::value_error("max_iters must be >= 1");
  if (!(tol >= 0.0) || !(relative_tol >= 0.0) || !std::isfinite(tol) || !std::isfinite(relative_tol) ||
      tol + relative_tol <= 0.0)
    throw nb::value_error("tol must be finite and > 0");
  const int64_t batch = batch_of(out_positions, "out_positions", 3);
  int64_t ps, ts;
  const T* p = per_frame_or_shared<T>(positions, "positions", batch, {J, 3}, ps);
  const T* t = per_frame_or_shared<T>(targets, "targets", batch, {num_targets, 3}, ts);
  T* out = output<T>(out_positions, "out_positions", batch, {J, 3});
  if (iterations.dtype() != nb::dtype<int32_t>()) throw nb::type_error("iterations must have dtype int32");
  if (converged.dtype() != nb::dtype<bool>()) throw nb::type_error("converged must have dtype bool");
  if (iterations.ndim() != 1 || static_cast<int64_t>(iterations.shape(0)) != batch)
    throw nb::value_error(("iterations must have shape (" + std::to_string(batch) + ",)").c_str());
  if (converged.ndim() != 1 || static_cast<int64_t>(converged.shape(0)) != batch)
    throw nb::value_error(("converged must have shape (" + std::to_string(batch) + ",)").c_str());
  require_c_contiguous(iterations, "iterations");
  require_c_contiguous(converged, "converged");
  auto* it = static_cast<int32_t*>(iterations.data());
  auto* conv = static_cast<uint8_t*>(converged.data());
  FabrikOptions<T> options;
  options.max_iters = max_iters;
  options.tol = static_cast<T>(tol);
  options.relative_tol = static_cast<T>(relative_tol);
  options.fixed_root = fixed_root;
  nb::gil_scoped_release release;
  return fabrik<T>(par, J, tj, num_targets, p, ps, t, ts, batch, options, out, it, conv);
}

}  // namespace

void bind_ik_chains(nb::module_& m) {
  m.def(
      "two_bone_ik",
      [](const ConstArray& roots, const ConstArray& mids, const ConstArray& ends, const ConstArray& targets,
         std::optional<ConstArray> poles, Array new_mids, Array new_ends, std::optional<Array> upper_rotations,
         std::optional<Array> lower_rotations) {
        return is_double(roots, "root")
                   ? two_bone<double>(roots, mids, ends, targets, poles, new_mids, new_ends, upper_rotations,
                                      lower_rotations)
                   : two_bone<float>(roots, mids, ends, targets, poles, new_mids, new_ends, upper_rotations,
                                     lower_rotations);
      },
      nb::arg("roots"), nb::arg("mids"), nb::arg("ends"), nb::arg("targets"), nb::arg("poles").none(),
      nb::arg("new_mids"), nb::arg("new_ends"), nb::arg("upper_rotations").none(),
      nb::arg("lower_rotations").none(),
      "Two-bone IK into caller-allocated (B, 3) new_mids/new_ends and optional (B, 3, 3) rotations; inputs "
      "are (B, 3) or (3,) (shared). Returns False when an output is not finite.");
  m.def(
      "fabrik",
      [](const ConstArray& parents, const ConstArray& target_joints, const ConstArray& positions,
         const ConstArray& targets, int max_iters, double tol, double relative_tol, bool fixed_root,
         Array out_positions, Array iterations, Array converged) {
        return is_double(positions, "positions")
                   ? fabrik_call<double>(parents, target_joints, positions, targets, max_iters, tol, relative_tol,
                                         fixed_root, out_positions, iterations, converged)
                   : fabrik_call<float>(parents, target_joints, positions, targets, max_iters, tol, relative_tol,
                                        fixed_root, out_positions, iterations, converged);
      },
      nb::arg("parents"), nb::arg("target_joints"), nb::arg("positions"), nb::arg("targets"), nb::arg("max_iters"),
      nb::arg("tol"), nb::arg("relative_tol"), nb::arg("fixed_root"), nb::arg("out_positions"),
      nb::arg("iterations"), nb::arg("converged"),
      "FABRIK into caller-allocated (B, J, 3) out_positions, (B,) int32 iterations and (B,) bool converged; "
      "positions are (B, J, 3) or (J, 3), targets (B, T, 3) or (T, 3). Returns False when an output is not "
      "finite.");
}

}  // namespace fastkin::bindings
