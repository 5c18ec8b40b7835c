#include "arrays.h"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace fastkin::bindings {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

void advise_huge_pages(void* data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr size_t kMinBytes = size_t(4) << 20;
  if (bytes < kMinBytes) return;
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(data);
  const uintptr_t aligned = (begin + page - 1) / page * page;  // madvise wants a page-aligned start
  // Only a hint: a kernel without transparent huge pages refuses it, and
  // the buffer works the same either way.
  madvise(reinterpret_cast<void*>(aligned), bytes - (aligned - begin), MADV_HUGEPAGE);
#else
  (void)data;
  (void)bytes;
#endif
}

bool is_double(const ConstArray& a, const char* name) {
  if (a.dtype() == nb::dtype<double>()) return true;
  if (a.dtype() == nb::dtype<float>()) return false;
  throw nb::type_error((std::string(name) + " must have dtype float32 or float64").c_str());
}

Batch leading_batch(const std::vector<int64_t>& shape, const char* name, std::initializer_list<int64_t> trailing) {
  const size_t n = shape.size(), t = trailing.size();
  bool match = n >= t;
  for (size_t i = 0; match && i < t; ++i) match = shape[n - t + i] == trailing.begin()[i];
  if (!match) {
    std::string want = "(...";
    for (int64_t d : trailing) want += ", " + std::to_string(d);
    throw nb::value_error((std::string(name) + " must have shape " + want + "), got " + shape_string(shape)).c_str());
  }
  Batch batch;
  batch.shape.assign(shape.begin(), shape.end() - t);
  for (int64_t d : batch.shape) batch.size *= d;
  return batch;
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
