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

}  // namespace fastkin
