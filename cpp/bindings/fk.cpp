// Bindings for fk: shapes and dtypes checked, GIL released, kernel called.
#include "fastkin/fk.h"

#include <vector>

#include "arrays.h"
#include "module.h"
#include "skeleton_data.h"

namespace fastkin::bindings {
namespace {

const std::vector<int64_t> kNoBatch;

// The batch shape and rotation form read off `rotations` for J joints.
struct Layout {
  std::vector<int64_t> batch_shape;
  int64_t batch = 1;
  RotationForm form;
};

Layout rotation_layout(const ConstArray& rotations, int64_t num_joints) {
  const auto shape = shape_of(rotations);
  const size_t n = shape.size();
  Layout layout;
  size_t trailing;
  if (n >= 2 && shape[n - 1] == 4 && shape[n - 2] == num_joints) {
    layout.form = RotationForm::Quaternion;
    trailing = 2;
  } else if (n >= 3 && shape[n - 1] == 3 && shape[n - 2] == 3 && shape[n - 3] == num_joints) {
    layout.form = RotationForm::Matrix;
    trailing = 3;
  } else {
    throw nb::value_error(("rotations must have shape (..., " + std::to_string(num_joints) + ", 4) or (..., " +
                           std::to_string(num_joints) + ", 3, 3), got " + shape_string(shape))
                              .c_str());
  }
  layout.batch_shape.assign(shape.begin(), shape.end() - trailing);
  for (int64_t d : layout.batch_shape) layout.batch *= d;
  return layout;
}

template <class T, class A>
const void* checked_rotations(const A& a, const char* name, const Layout& layout, int64_t num_joints) {
  return layout.form == RotationForm::Quaternion ? checked<T>(a, name, layout.batch_shape, {num_joints, 4})
                                                 : checked<T>(a, name, layout.batch_shape, {num_joints, 3, 3});
}

template <class T>
const T* checked_root(const std::optional<ConstArray>& root_translation, const Layout& layout) {
  return root_translation
             ? static_cast<const T*>(checked<T>(*root_translation, "root_translation", layout.batch_shape, {3}))
             : nullptr;
}

template <class T>
FkInputs<T> make_inputs(const ConstArray& parents, const ConstArray& rotations,
                        const std::optional<ConstArray>& root_translation, const ConstArray& offsets,
                        Layout& layout) {
  FkInputs<T> in{};
  in.parents = checked_parents(parents);
  in.num_joints = static_cast<int64_t>(parents.shape(0));
  layout = rotation_layout(rotations, in.num_joints);
  in.batch = layout.batch;
  in.form = layout.form;
  in.rotations = static_cast<const T*>(
      checked_rotations<T>(rotations, "rotations", layout, in.num_joints));
  in.offsets_batched = offsets.ndim() != 2;
  in.offsets = static_cast<const T*>(
      checked<T>(offsets, "offsets", in.offsets_batched ? layout.batch_shape : kNoBatch, {in.num_joints, 3}));
  in.root_translation = checked_root<T>(root_translation, layout);
  return in;
}

// Checks the outputs, releases the GIL and runs the forward kernel.
template <class T>
bool run_forward(const FkInputs<T>& in, const Layout& layout, Array& world_rotations, Array& world_positions,
                 bool stream_large_outputs = true) {
  T* out_r = static_cast<T*>(const_cast<void*>(
      checked<T>(world_rotations, "world_rotations", layout.batch_shape, {in.num_joints, 3, 3})));
  T* out_p = static_cast<T*>(const_cast<void*>(
      checked<T>(world_positions, "world_positions", layout.batch_shape, {in.num_joints, 3})));
  nb::gil_scoped_release release;
  return fk_forward<T>(in, out_r, out_p, stream_large_outputs);
}

template <class T>
bool forward(const ConstArray& parents, const ConstArray& rotations, const std::optional<ConstArray>& root_translation,
             const ConstArray& offsets, Array& world_rotations, Array& world_positions, bool stream_large_outputs) {
  Layout layout;
  const FkInputs<T> in = make_inputs<T>(parents, rotations, root_translation, offsets, layout);
  // Caller-allocated outputs (torch.empty) are as fresh as new_array's,
  // which advises its own.
  advise_huge_pages(world_rotations.data(), world_rotations.nbytes());
  advise_huge_pages(world_positions.data(), world_positions.nbytes());
  return run_forward<T>(in, layout, world_rotations, world_positions, stream_large_outputs);
}

template <class T>
bool backward(const ConstArray& parents, const ConstArray& rotations, const ConstArray& offsets,
              const std::optional<ConstArray>& grad_world_rotations,
              const std::optional<ConstArray>& grad_world_positions, Array& grad_rotations,
              std::optional<Array>& grad_root_translation, std::optional<Array>& grad_offsets) {
  Layout layout;
  const FkInputs<T> in = make_inputs<T>(parents, rotations, std::nullopt, offsets, layout);
  const int64_t J = in.num_joints;
  const T* g_r = grad_world_rotations ? static_cast<const T*>(checked<T>(
                                            *grad_world_rotations, "grad_world_rotations", layout.batch_shape, {J, 3, 3}))
                                      : nullptr;
  const T* g_p = grad_world_positions ? static_cast<const T*>(checked<T>(
                                            *grad_world_positions, "grad_world_positions", layout.batch_shape, {J, 3}))
                                      : nullptr;
  FkGradients<T> grads{};
  grads.rotations = static_cast<T*>(const_cast<void*>(
      checked_rotations<T>(grad_rotations, "grad_rotations", layout, J)));
  grads.root_translation =
      grad_root_translation ? static_cast<T*>(const_cast<void*>(checked<T>(
                                  *grad_root_translation, "grad_root_translation", layout.batch_shape, {3})))
                            : nullptr;
  grads.offsets = grad_offsets ? static_cast<T*>(const_cast<void*>(checked<T>(
                                     *grad_offsets, "grad_offsets",
                                     in.offsets_batched ? layout.batch_shape : kNoBatch, {J, 3})))
                               : nullptr;
  nb::gil_scoped_release release;
  return fk_backward<T>(in, g_r, g_p, grads);
}

// `offsets` (shared or batched) overrides the skeleton's own when given.
template <class T>
bool forward_skeleton(const SkeletonData& skeleton, const ConstArray& rotations,
                      const std::optional<ConstArray>& root_translation, const std::optional<ConstArray>& offsets,
                      Array& world_rotations, Array& world_positions) {
  FkInputs<T> in{};
  in.parents = skeleton.parents.data();
  in.num_joints = static_cast<int64_t>(skeleton.parents.size());
  const Layout layout = rotation_layout(rotations, in.num_joints);
  in.batch = layout.batch;
  in.form = layout.form;
  in.rotations = static_cast<const T*>(checked_rotations<T>(rotations, "rotations", layout, in.num_joints));
  if (offsets) {
    in.offsets_batched = offsets->ndim() != 2;
    in.offsets = static_cast<const T*>(checked<T>(
        *offsets, "offsets", in.offsets_batched ? layout.batch_shape : kNoBatch, {in.num_joints, 3}));
  } else {
    in.offsets = skeleton.offsets<T>();
    in.offsets_batched = false;
  }
  in.root_translation = checked_root<T>(root_translation, layout);
  return run_forward<T>(in, layout, world_rotations, world_positions);
}

template <class T>
nb::typed<nb::tuple, bool, NewArray, NewArray> fk_new(const SkeletonData& skeleton, const ConstArray& rotations,
                                                      const std::optional<ConstArray>& root_translation,
                                                      const std::optional<ConstArray>& offsets) {
  const int64_t J = static_cast<int64_t>(skeleton.parents.size());
  const Layout layout = rotation_layout(rotations, J);
  auto world_rotations = new_array<T>(layout.batch_shape, {J, 3, 3});
  auto world_positions = new_array<T>(layout.batch_shape, {J, 3});
  Array r(world_rotations), p(world_positions);
  const bool finite = forward_skeleton<T>(skeleton, rotations, root_translation, offsets, r, p);
  return nb::make_tuple(finite, world_rotations, world_positions);
}


}  // namespace

void bind_fk(nb::module_& m) {
  nb::class_<SkeletonData>(m, "SkeletonData", "A Skeleton's constant data as the kernels read it.")
      .def(
          "__init__",
          [](SkeletonData* self, const ConstArray& parents, const ConstArray& offsets, const ConstArray& rest) {
            const int32_t* p = checked_parents(parents);
            const int64_t J = static_cast<int64_t>(parents.shape(0));
            const auto* o = static_cast<const double*>(checked<double>(offsets, "offsets", kNoBatch, {J, 3}));
            const auto* r = static_cast<const double*>(checked<double>(rest, "rest", kNoBatch, {J, 3, 3}));
            std::vector<int32_t> all(J);
            for (int64_t j = 0; j < J; ++j) all[j] = static_cast<int32_t>(j);
            new (self) SkeletonData{std::vector<int32_t>(p, p + J), std::vector<float>(o, o + 3 * J),
                                    std::vector<double>(o, o + 3 * J), std::vector<float>(r, r + 9 * J),
                                    std::vector<double>(r, r + 9 * J), std::move(all)};
          },
          nb::arg("parents"), nb::arg("offsets"), nb::arg("rest_rotations"));
  m.def(
      "fk_skeleton",
      [](const SkeletonData& skeleton, const ConstArray& rotations, const std::optional<ConstArray>& root_translation,
         const std::optional<ConstArray>& offsets) {
        return is_double(rotations, "rotations") ? fk_new<double>(skeleton, rotations, root_translation, offsets)
                                                 : fk_new<float>(skeleton, rotations, root_translation, offsets);
      },
      nb::arg("skeleton"), nb::arg("rotations"), nb::arg("root_translation").none(), nb::arg("offsets").none(),
      "(finite, world_rotations, world_positions) as new cache-line-aligned numpy arrays; `offsets` (shared "
      "(J, 3) or batched) overrides the skeleton's.");
  m.def(
      "fk_skeleton_into",
      [](const SkeletonData& skeleton, const ConstArray& rotations, const std::optional<ConstArray>& root_translation,
         const std::optional<ConstArray>& offsets, Array world_rotations, Array world_positions) {
        return is_double(rotations, "rotations")
                   ? forward_skeleton<double>(skeleton, rotations, root_translation, offsets, world_rotations,
                                              world_positions)
                   : forward_skeleton<float>(skeleton, rotations, root_translation, offsets, world_rotations,
                                             world_positions);
      },
      nb::arg("skeleton"), nb::arg("rotations"), nb::arg("root_translation").none(), nb::arg("offsets").none(),
      nb::arg("world_rotations"), nb::arg("world_positions"),
      "fk_skeleton into caller-allocated outputs (reused across calls, a large batch skips the page faults of "
      "fresh memory). Returns False when an output is not finite.");
  m.def(
      "fk_forward",
      [](const ConstArray& parents, const ConstArray& rotations, const std::optional<ConstArray>& root_translation,
         const ConstArray& offsets, Array world_rotations, Array world_positions, bool stream_large_outputs) {
        return is_double(rotations, "rotations")
                   ? forward<double>(parents, rotations, root_translation, offsets, world_rotations, world_positions,
                                     stream_large_outputs)
                   : forward<float>(parents, rotations, root_translation, offsets, world_rotations, world_positions,
                                    stream_large_outputs);
      },
      nb::arg("parents"), nb::arg("rotations"), nb::arg("root_translation").none(), nb::arg("offsets"),
      nb::arg("world_rotations"), nb::arg("world_positions"), nb::arg("stream_large_outputs") = true,
      "Batched forward kinematics into caller-allocated outputs. Returns False when an output is not finite. "
      "Outputs over 2 MB bypass the cache unless stream_large_outputs is False (for outputs read straight back).");
  m.def(
      "fk_backward",
      [](const ConstArray& parents, const ConstArray& rotations, const ConstArray& offsets,
         const std::optional<ConstArray>& grad_world_rotations, const std::optional<ConstArray>& grad_world_positions,
         Array grad_rotations, std::optional<Array> grad_root_translation, std::optional<Array> grad_offsets) {
        return is_double(rotations, "rotations")
                   ? backward<double>(parents, rotations, offsets, grad_world_rotations, grad_world_positions,
                                      grad_rotations, grad_root_translation, grad_offsets)
                   : backward<float>(parents, rotations, offsets, grad_world_rotations, grad_world_positions,
                                     grad_rotations, grad_root_translation, grad_offsets);
      },
      nb::arg("parents"), nb::arg("rotations"), nb::arg("offsets"), nb::arg("grad_world_rotations").none(),
      nb::arg("grad_world_positions").none(), nb::arg("grad_rotations"), nb::arg("grad_root_translation").none(),
      nb::arg("grad_offsets").none(),
      "Vector-Jacobian product of fk_forward into caller-allocated gradients (None: not wanted). Returns False when "
      "one is not finite.");
}

}  // namespace fastkin::bindings
