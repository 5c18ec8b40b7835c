#include "arrays.h"

namespace fastkin::bindings {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

const int32_t* checked_parents(const ConstArray& parents) {
  if (parents.dtype() != nb::dtype<int32_t>() || parents.ndim() != 1)
    throw nb::type_error("parents must be a 1-D int32 array");
  require_c_contiguous(parents, "parents");
  const auto* p = static_cast<const int32_t*>(parents.data());
  for (int64_t j = 0; j < static_cast<int64_t>(parents.shape(0)); ++j)
    if (p[j] < -1 || p[j] >= j)
      throw nb::value_error(("parents[" + std::to_string(j) + "] = " + std::to_string(p[j]) +
                             " must be -1 or a joint index below " + std::to_string(j))
                                .c_str());
  return p;
}

}  // namespace fastkin::bindings
