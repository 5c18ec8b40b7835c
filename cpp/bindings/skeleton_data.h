// A Skeleton's constant data as the kernels read it, checked once when the
// Skeleton is made and kept in both dtypes, so per-call bindings pass one
// object instead of several arrays (and skip the parents check).
#pragma once
#include <cstdint>
#include <vector>

namespace fastkin::bindings {

struct SkeletonData {
  std::vector<int32_t> parents;
  std::vector<float> offsets_float;
  std::vector<double> offsets_double;
  std::vector<float> rest_float;  // (J, 3, 3) local rest rotations
  std::vector<double> rest_double;
  std::vector<int32_t> all_joints;  // 0 .. J - 1

  int64_t num_joints() const { return static_cast<int64_t>(parents.size()); }
  template <class T>
  const T* offsets() const {
    if constexpr (sizeof(T) == 4) {
      return offsets_float.data();
    } else {
      return offsets_double.data();
    }
  }
  template <class T>
  const T* rest() const {
    if constexpr (sizeof(T) == 4) {
      return rest_float.data();
    } else {
      return rest_double.data();
    }
  }
};

}  // namespace fastkin::bindings
