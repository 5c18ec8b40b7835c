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
}

}  // namespace fastkin::bindings
