// Bindings for the rotation conversions: shapes and dtypes checked, GIL
// released, kernel called.
#include "fastkin/rotations.h"

#include "arrays.h"
#include "module.h"

namespace fastkin::bindings {
namespace {

template <class T>
bool to_quat(const ConstArray& matrices, Array& out) {
  const Batch batch = leading_batch(shape_of(matrices), "matrices", {3, 3});
  const T* m = static_cast<const T*>(checked<T>(matrices, "matrices", batch.shape, {3, 3}));
  T* q = static_cast<T*>(const_cast<void*>(checked<T>(out, "out", batch.shape, {4})));
  nb::gil_scoped_release release;
  return matrix_to_quat<T>(m, batch.size, q);
}

template <class T>
void aa_to_quat(const ConstArray& axis_angle, Array& out) {
  const Batch batch = leading_batch(shape_of(axis_angle), "axis_angle", {3});
  const T* v = static_cast<const T*>(checked<T>(axis_angle, "axis_angle", batch.shape, {3}));
  T* q = static_cast<T*>(const_cast<void*>(checked<T>(out, "out", batch.shape, {4})));
  nb::gil_scoped_release release;
  axis_angle_to_quat<T>(v, batch.size, q);
}

template <class T>
void aa_to_quat_backward(const ConstArray& axis_angle, const ConstArray& grad_quaternions, Array& out) {
  const Batch batch = leading_batch(shape_of(axis_angle), "axis_angle", {3});
  const T* v = static_cast<const T*>(checked<T>(axis_angle, "axis_angle", batch.shape, {3}));
  const T* g = static_cast<const T*>(checked<T>(grad_quaternions, "grad_quaternions", batch.shape, {4}));
  T* grad = static_cast<T*>(const_cast<void*>(checked<T>(out, "out", batch.shape, {3})));
  nb::gil_scoped_release release;
  axis_angle_to_quat_backward<T>(v, g, batch.size, grad);
}

}  // namespace

void bind_rotations(nb::module_& m) {
  m.def(
      "matrix_to_quat",
      [](const ConstArray& matrices, Array out) {
        return is_double(matrices, "matrices") ? to_quat<double>(matrices, out) : to_quat<float>(matrices, out);
      },
      nb::arg("matrices"), nb::arg("out"),
      "xyzw quaternions (w >= 0) of (..., 3, 3) rotation matrices into a caller-allocated (..., 4) array. "
      "Returns False when an output is not finite.");
  m.def(
      "axis_angle_to_quat",
      [](const ConstArray& axis_angle, Array out) {
        is_double(axis_angle, "axis_angle") ? aa_to_quat<double>(axis_angle, out) : aa_to_quat<float>(axis_angle, out);
      },
      nb::arg("axis_angle"), nb::arg("out"),
      "xyzw quaternions of (..., 3) axis-angle vectors into a caller-allocated (..., 4) array.");
  m.def(
      "axis_angle_to_quat_backward",
      [](const ConstArray& axis_angle, const ConstArray& grad_quaternions, Array out) {
        is_double(axis_angle, "axis_angle") ? aa_to_quat_backward<double>(axis_angle, grad_quaternions, out)
                                            : aa_to_quat_backward<float>(axis_angle, grad_quaternions, out);
      },
      nb::arg("axis_angle"), nb::arg("grad_quaternions"), nb::arg("out"),
      "Gradient (..., 3) with respect to the axis-angles of axis_angle_to_quat, for the quaternions' gradient "
      "(..., 4), into a caller-allocated array.");
}

}  // namespace fastkin::bindings
