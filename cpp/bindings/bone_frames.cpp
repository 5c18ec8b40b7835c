// Bindings for the bone-frame kernels: shapes and dtypes checked, GIL
// released, kernel called.
#include "fastkin/bone_frames.h"

#include <string>
#include <vector>

#include "arrays.h"
#include "module.h"

namespace fastkin::bindings {
namespace {

const std::vector<int64_t> kNoBatch;

template <class A>
Batch matrix_batch(const A& a, const char* name, int64_t num_joints) {
  return leading_batch(shape_of(a), name, {num_joints, 3, 3});
}

// constants: (J, 3, 3) of dtype T; J is read from it.
template <class T>
const T* checked_constants(const ConstArray& constants, int64_t& num_joints) {
  if (constants.ndim() != 3)
    throw nb::value_error(("constants must have shape (J, 3, 3), got " + shape_string(shape_of(constants))).c_str());
  num_joints = static_cast<int64_t>(constants.shape(0));
  return static_cast<const T*>(checked<T>(constants, "constants", kNoBatch, {num_joints, 3, 3}));
}

template <class T>
T* checked_output(Array& out, const char* name, const Batch& batch, int64_t num_joints) {
  return static_cast<T*>(const_cast<void*>(checked<T>(out, name, batch.shape, {num_joints, 3, 3})));
}

template <class T>
bool right_multiply(const ConstArray& matrices, const ConstArray& constants, bool transpose, Array& out) {
  int64_t J = 0;
  const T* c = checked_constants<T>(constants, J);
  const Batch batch = matrix_batch(matrices, "matrices", J);
  const T* m = static_cast<const T*>(checked<T>(matrices, "matrices", batch.shape, {J, 3, 3}));
  T* o = checked_output<T>(out, "out", batch, J);
  nb::gil_scoped_release release;
  return bone_right_multiply<T>(m, c, batch.size, J, transpose, o);
}

// Parents and constants must describe the same J joints.
int64_t joint_count(const ConstArray& parents, int64_t num_joints) {
  if (static_cast<int64_t>(parents.shape(0)) != num_joints)
    throw nb::value_error(("parents has " + std::to_string(parents.shape(0)) + " joints but constants has " +
                           std::to_string(num_joints))
                              .c_str());
  return num_joints;
}

template <class T>
bool world_to_local(const ConstArray& parents, const ConstArray& bone_rotations, const ConstArray& constants,
                    Array& local_rotations) {
  const int32_t* p = checked_parents(parents);
  int64_t J = 0;
  const T* c = checked_constants<T>(constants, J);
  joint_count(parents, J);
  const Batch batch = matrix_batch(bone_rotations, "bone_rotations", J);
  const T* q = static_cast<const T*>(checked<T>(bone_rotations, "bone_rotations", batch.shape, {J, 3, 3}));
  T* out = checked_output<T>(local_rotations, "local_rotations", batch, J);
  nb::gil_scoped_release release;
  return bone_world_to_local<T>(p, q, c, batch.size, J, out);
}

template <class T>
bool world_to_local_backward(const ConstArray& parents, const ConstArray& bone_rotations,
                             const ConstArray& constants, const ConstArray& grad_local_rotations,
                             Array& grad_bone_rotations) {
  const int32_t* p = checked_parents(parents);
  int64_t J = 0;
  const T* c = checked_constants<T>(constants, J);
  joint_count(parents, J);
  const Batch batch = matrix_batch(bone_rotations, "bone_rotations", J);
  const T* q = static_cast<const T*>(checked<T>(bone_rotations, "bone_rotations", batch.shape, {J, 3, 3}));
  const T* g = static_cast<const T*>(
      checked<T>(grad_local_rotations, "grad_local_rotations", batch.shape, {J, 3, 3}));
  T* out = checked_output<T>(grad_bone_rotations, "grad_bone_rotations", batch, J);
  nb::gil_scoped_release release;
  return bone_world_to_local_backward<T>(p, q, c, g, batch.size, J, out);
}


}  // namespace

void bind_bone_frames(nb::module_& m) {
  m.def(
      "bone_right_multiply",
      [](const ConstArray& matrices, const ConstArray& constants, bool transpose, Array out) {
        return is_double(matrices, "matrices") ? right_multiply<double>(matrices, constants, transpose, out)
                                               : right_multiply<float>(matrices, constants, transpose, out);
      },
      nb::arg("matrices"), nb::arg("constants"), nb::arg("transpose"), nb::arg("out"),
      "out_j = matrices_j @ constants_j (constants_j transposed when `transpose`); out may be matrices. "
      "Returns False when an output is not finite.");
  m.def(
      "bone_world_to_local",
      [](const ConstArray& parents, const ConstArray& bone_rotations, const ConstArray& constants,
         Array local_rotations) {
        return is_double(bone_rotations, "bone_rotations")
                   ? world_to_local<double>(parents, bone_rotations, constants, local_rotations)
                   : world_to_local<float>(parents, bone_rotations, constants, local_rotations);
      },
      nb::arg("parents"), nb::arg("bone_rotations"), nb::arg("constants"), nb::arg("local_rotations"),
      "Local rotations from bone-aligned world rotations into a caller-allocated array. "
      "Returns False when an output is not finite.");
  m.def(
      "bone_world_to_local_backward",
      [](const ConstArray& parents, const ConstArray& bone_rotations, const ConstArray& constants,
         const ConstArray& grad_local_rotations, Array grad_bone_rotations) {
        return is_double(bone_rotations, "bone_rotations")
                   ? world_to_local_backward<double>(parents, bone_rotations, constants, grad_local_rotations,
                                                     grad_bone_rotations)
                   : world_to_local_backward<float>(parents, bone_rotations, constants, grad_local_rotations,
                                                    grad_bone_rotations);
      },
      nb::arg("parents"), nb::arg("bone_rotations"), nb::arg("constants"), nb::arg("grad_local_rotations"),
      nb::arg("grad_bone_rotations"),
      "Vector-Jacobian product of bone_world_to_local into a caller-allocated array. "
      "Returns False when a gradient is not finite.");
}

}  // namespace fastkin::bindings
