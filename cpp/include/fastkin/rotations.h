// Rotation-representation conversions over batches.
#pragma once
#include <cstdint>

namespace fastkin {

// Unit xyzw quaternions (count, 4) with w >= 0 from row-major rotation
// matrices (count, 3, 3), by Shepperd's method: the best-conditioned of the
// four classical formulas per matrix (the same choice, ties to the first, as
// fastkin.rotations.matrix_to_quat). Returns false when an output is not
// finite.
template <class T>
bool matrix_to_quat(const T* matrices, int64_t count, T* quaternions);

// Unit xyzw quaternions (count, 4) of axis-angle vectors (count, 3): axis
// times angle in radians, (sin(theta/2) v / theta, cos(theta/2)), 1/2 v for
// the sine term at theta -> 0. Computed in T's precision: the error is a few
// roundings plus that of the angle itself (about theta * 1e-7 for float).
template <class T>
void axis_angle_to_quat(const T* axis_angle, int64_t count, T* quaternions);

// The vector-Jacobian product of axis_angle_to_quat: grad_axis_angle
// (count, 3) for grad_quaternions (count, 4). Finite at theta = 0.
template <class T>
void axis_angle_to_quat_backward(const T* axis_angle, const T* grad_quaternions, int64_t count,
                                 T* grad_axis_angle);

}  // namespace fastkin
