// Bindings for skinning: shapes, dtypes and influences checked, GIL
// released, kernel called.
#include "fastkin/skinning.h"

#include <nanobind/stl/string.h>

#include <string>
#include <vector>

#include "arrays.h"
#include "module.h"

namespace fastkin::bindings {
namespace {

SkinMethod method_of(const std::string& name) {
  if (name == "linear") return SkinMethod::Linear;
  if (name == "dual_quaternion") return SkinMethod::DualQuaternion;
  throw nb::value_error("method must be 'linear' or 'dual_quaternion'");
}

// The batch shape and joint count read off `transforms`: (..., J, 3, 4)
// matrices, or (..., J, 8) dual quaternions where `dual_allowed`.
struct Layout {
  std::vector<int64_t> batch_shape;
  int64_t batch = 1;
  int64_t num_joints = 0;
  bool dual = false;  // transforms are dual quaternions
};

Layout transform_layout(const ConstArray& transforms, bool dual_allowed) {
  const auto shape = shape_of(transforms);
  const size_t n = shape.size();
  Layout layout;
  size_t trailing;
  if (n >= 3 && shape[n - 2] == 3 && shape[n - 1] == 4) {
    trailing = 3;
  } else if (dual_allowed && n >= 2 && shape[n - 1] == 8) {
    layout.dual = true;
    trailing = 2;
  } else {
    throw nb::value_error(("transforms must have shape (..., J, 3, 4)" +
                           std::string(dual_allowed ? " or (..., J, 8)" : "") + ", got " + shape_string(shape))
                              .c_str());
  }
  layout.num_joints = shape[n - trailing];
  layout.batch_shape.assign(shape.begin(), shape.end() - trailing);
  for (int64_t d : layout.batch_shape) layout.batch *= d;
  return layout;
}

const std::vector<int64_t> kShared;

// Checks an array shaped like the transforms (matrices or dual quaternions).
template <class T, class A>
void* checked_like_transforms(const A& a, const char* name, const Layout& layout) {
  const void* data = layout.dual ? checked<T>(a, name, layout.batch_shape, {layout.num_joints, 8})
                                 : checked<T>(a, name, layout.batch_shape, {layout.num_joints, 3, 4});
  return const_cast<void*>(data);
}

// Reads and checks everything but the transforms' values.
template <class T>
SkinInputs<T> make_inputs(const Layout& layout, const ConstArray& transforms, const ConstArray& vertices,
                          const ConstArray& joint_indices, const ConstArray& weights, bool points) {
  if (joint_indices.dtype() != nb::dtype<int32_t>())
    throw nb::type_error("joint_indices must have dtype int32");
  if (joint_indices.ndim() != 2)
    throw nb::value_error(("joint_indices must have shape (V, K), got " + shape_string(shape_of(joint_indices))).c_str());
  if (joint_indices.shape(1) < 1)
    throw nb::value_error("joint_indices must have at least one influence per vertex (K >= 1)");
  require_c_contiguous(joint_indices, "joint_indices");
  SkinInputs<T> in{};
  in.batch = layout.batch;
  in.num_joints = layout.num_joints;
  in.num_vertices = static_cast<int64_t>(joint_indices.shape(0));
  in.num_influences = static_cast<int64_t>(joint_indices.shape(1));
  in.joint_indices = static_cast<const int32_t*>(joint_indices.data());
  in.transforms = static_cast<const T*>(transforms.data());
  in.weights = static_cast<const T*>(checked<T>(weights, "weights", kShared, {in.num_vertices, in.num_influences}));
  in.vertices_batched = vertices.ndim() != 2;
  in.vertices = static_cast<const T*>(
      checked<T>(vertices, "vertices", in.vertices_batched ? layout.batch_shape : kShared, {in.num_vertices, 3}));
  in.points = points;
  return in;
}

// Raises the ValueError for influences that fail check_influences.
template <class T>
void raise_for_influences(const SkinInputs<T>& in) {
  const InfluenceCheck c =
      check_influences<T>(in.num_vertices, in.num_influences, in.num_joints, in.joint_indices, in.weights);
  const std::string at = "[" + std::to_string(c.vertex) + ", " + std::to_string(c.influence) + "]";
  switch (c.problem) {
    case InfluenceCheck::JointIndex:
      throw nb::value_error(("joint_indices" + at + " = " +
                             std::to_string(in.joint_indices[c.vertex * in.num_influences + c.influence]) +
                             " is not a joint index in [0, " + std::to_string(in.num_joints) + ")")
                                .c_str());
    case InfluenceCheck::BadWeight:
      throw nb::value_error(("weights" + at + " must be finite and >= 0").c_str());
    case InfluenceCheck::ZeroWeights:
      throw nb::value_error(("weights[" + std::to_string(c.vertex) + "] are all zero: vertex " +
                             std::to_string(c.vertex) + " has no influence")
                                .c_str());
    default:
      return;
  }
}

template <class T>
void require_valid_influences(const SkinInputs<T>& in) {
  if (!influences_valid<T>(in.num_vertices, in.num_influences, in.num_joints, in.joint_indices, in.weights)) {
    raise_for_influences(in);
    throw nb::value_error("joint_indices or weights are invalid");  // unreachable: the checks agree
  }
}

template <class T>
nb::typed<nb::tuple, bool, int64_t, std::optional<NewArray>> forward(SkinMethod method, const ConstArray& transforms, const ConstArray& vertices,
                  const ConstArray& joint_indices, const ConstArray& weights, bool points,
                  std::optional<Array>& out) {
  const Layout layout = transform_layout(transforms, method == SkinMethod::DualQuaternion);
  checked_like_transforms<T>(transforms, "transforms", layout);
  SkinInputs<T> in = make_inputs<T>(layout, transforms, vertices, joint_indices, weights, points);
  nb::object result_array = nb::none();
  T* o;
  if (out) {
    o = static_cast<T*>(const_cast<void*>(checked<T>(*out, "out", layout.batch_shape, {in.num_vertices, 3})));
  } else {
    auto fresh = new_array<T>(layout.batch_shape, {in.num_vertices, 3});
    o = fresh.data();
    result_array = nb::cast(fresh);
  }
  require_valid_influences(in);
  std::vector<T> duals;
  if (method == SkinMethod::DualQuaternion && !layout.dual) {
    duals.resize(in.batch * in.num_joints * 8);
    const int64_t bad = rigid_to_dual_quaternions<T>(in.batch * in.num_joints, in.transforms, duals.data());
    if (bad >= 0)
      throw nb::value_error(("transforms[" + std::to_string(bad / in.num_joints) + "][" +
                             std::to_string(bad % in.num_joints) +
                             "] is not rigid (a rotation and a translation): dual quaternion skinning needs rigid "
                             "transforms; use lbs for scaled or sheared ones")
                                .c_str());
    in.transforms = duals.data();
  }
  SkinResult result;
  {
    nb::gil_scoped_release release;
    result = skin_forward<T>(method, in, o);
  }
  if (!result.finite) raise_for_influences(in);  // a vertex without influence, else the inputs
  return nb::make_tuple(result.finite, result.unnormalized, result_array);
}

template <class T>
bool backward(SkinMethod method, const ConstArray& transforms, const ConstArray& vertices,
              const ConstArray& joint_indices, const ConstArray& weights, bool points, const ConstArray& grad_out,
              Array& grad_transforms, std::optional<Array>& grad_vertices, std::optional<Array>& grad_weights) {
  const Layout layout = transform_layout(transforms, method == SkinMethod::DualQuaternion);
  if (method == SkinMethod::DualQuaternion && !layout.dual)
    throw nb::value_error("dual quaternion skinning backward takes transforms as (..., J, 8) dual quaternions");
  checked_like_transforms<T>(transforms, "transforms", layout);
  const SkinInputs<T> in = make_inputs<T>(layout, transforms, vertices, joint_indices, weights, points);
  require_valid_influences(in);
  const T* g = static_cast<const T*>(checked<T>(grad_out, "grad_out", layout.batch_shape, {in.num_vertices, 3}));
  T* g_t = static_cast<T*>(checked_like_transforms<T>(grad_transforms, "grad_transforms", layout));
  T* g_v = grad_vertices ? static_cast<T*>(const_cast<void*>(checked<T>(
                               *grad_vertices, "grad_vertices", in.vertices_batched ? layout.batch_shape : kShared,
                               {in.num_vertices, 3})))
                         : nullptr;
  T* g_w = grad_weights ? static_cast<T*>(const_cast<void*>(
                              checked<T>(*grad_weights, "grad_weights", kShared, {in.num_vertices, in.num_influences})))
                        : nullptr;
  nb::gil_scoped_release release;
  return skin_backward<T>(method, in, g, g_t, g_v, g_w);
}


}  // namespace

void bind_skinning(nb::module_& m) {
  m.def(
      "skin_forward",
      [](const std::string& method, const ConstArray& transforms, const ConstArray& vertices,
         const ConstArray& joint_indices, const ConstArray& weights, bool points, std::optional<Array> out) {
        const SkinMethod s = method_of(method);
        return is_double(transforms, "transforms") ? forward<double>(s, transforms, vertices, joint_indices, weights, points, out)
                                     : forward<float>(s, transforms, vertices, joint_indices, weights, points, out);
      },
      nb::arg("method"), nb::arg("transforms"), nb::arg("vertices"), nb::arg("joint_indices"), nb::arg("weights"),
      nb::arg("points"), nb::arg("out").none(),
      "Skins vertices into out (..., V, 3), or a new numpy array when out is None. Returns (finite, number of "
      "vertices whose weights do not sum to 1, the new array or None).");
  m.def(
      "skin_backward",
      [](const std::string& method, const ConstArray& transforms, const ConstArray& vertices,
         const ConstArray& joint_indices, const ConstArray& weights, bool points, const ConstArray& grad_out,
         Array grad_transforms, std::optional<Array> grad_vertices, std::optional<Array> grad_weights) {
        const SkinMethod s = method_of(method);
        return is_double(transforms, "transforms")
                   ? backward<double>(s, transforms, vertices, joint_indices, weights, points, grad_out,
                                      grad_transforms, grad_vertices, grad_weights)
                   : backward<float>(s, transforms, vertices, joint_indices, weights, points, grad_out,
                                     grad_transforms, grad_vertices, grad_weights);
      },
      nb::arg("method"), nb::arg("transforms"), nb::arg("vertices"), nb::arg("joint_indices"), nb::arg("weights"),
      nb::arg("points"), nb::arg("grad_out"), nb::arg("grad_transforms"), nb::arg("grad_vertices").none(),
      nb::arg("grad_weights").none(),
      "Vector-Jacobian product of skin_forward (dual quaternion transforms as (..., J, 8)). Returns False when a "
      "gradient is not finite.");
  m.def(
      "rigid_to_dual_quaternions",
      [](const ConstArray& transforms, Array out) {
        const Layout layout = transform_layout(transforms, false);
        const bool dbl = is_double(transforms, "transforms");
        const int64_t count = layout.batch * layout.num_joints;
        int64_t bad;
        if (dbl) {
          checked<double>(out, "out", layout.batch_shape, {layout.num_joints, 8});
          bad = rigid_to_dual_quaternions<double>(count, static_cast<const double*>(checked<double>(
                                                             transforms, "transforms", layout.batch_shape,
                                                             {layout.num_joints, 3, 4})),
                                                  static_cast<double*>(out.data()));
        } else {
          checked<float>(out, "out", layout.batch_shape, {layout.num_joints, 8});
          bad = rigid_to_dual_quaternions<float>(count, static_cast<const float*>(checked<float>(
                                                           transforms, "transforms", layout.batch_shape,
                                                           {layout.num_joints, 3, 4})),
                                                 static_cast<float*>(out.data()));
        }
        return bad;
      },
      nb::arg("transforms"), nb::arg("out"),
      "Unit dual quaternions (..., J, 8) of rigid transforms; returns the flat index of the first non-rigid one or -1.");
}

}  // namespace fastkin::bindings
