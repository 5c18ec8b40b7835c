// Argument checks shared by the bindings: every failure is a Python
// ValueError or TypeError that names the argument.
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <initializer_list>
#include <new>
#include <string>
#include <vector>

namespace fastkin::bindings {

namespace nb = nanobind;

// Inputs are any CPU array with DLPack or the buffer protocol (numpy arrays
// and torch tensors alike). The array_api tag changes no check; it makes the
// generated stubs say so instead of numpy-only.
using Array = nb::ndarray<nb::device::cpu, nb::array_api>;
using ConstArray = nb::ndarray<nb::ro, nb::device::cpu, nb::array_api>;
// A numpy array that a binding allocated and returns.
using NewArray = nb::ndarray<nb::numpy>;

std::string shape_string(const std::vector<int64_t>& shape);

template <class A>
std::vector<int64_t> shape_of(const A& a) {
  std::vector<int64_t> s(a.ndim());
  for (size_t i = 0; i < a.ndim(); ++i) s[i] = static_cast<int64_t>(a.shape(i));
  return s;
}

template <class A>
void require_c_contiguous(const A& a, const char* name) {
  if (a.size() == 0) return;  // no elements, no layout (strides of empty arrays vary)
  int64_t expected = 1;
  for (size_t i = a.ndim(); i-- > 0;) {
    if (a.shape(i) != 1 && a.stride(i) != expected)
      throw nb::value_error((std::string(name) + " must be C-contiguous").c_str());
    expected *= static_cast<int64_t>(a.shape(i));
  }
}

// Checks dtype == T and that the shape is `leading` followed by `trailing`
// (no allocation unless the check fails: this runs on every call).
template <class T, class A>
const void* checked(const A& a, const char* name, const std::vector<int64_t>& leading,
                    std::initializer_list<int64_t> trailing) {
  if (a.dtype() != nb::dtype<T>())
    throw nb::type_error((std::string(name) + " must have dtype " + (sizeof(T) == 4 ? "float32" : "float64") +
                          " like the rotations")
                             .c_str());
  bool match = a.ndim() == leading.size() + trailing.size();
  for (size_t i = 0; match && i < leading.size(); ++i) match = static_cast<int64_t>(a.shape(i)) == leading[i];
  size_t i = leading.size();
  for (int64_t d : trailing) {
    if (!match) break;
    match = static_cast<int64_t>(a.shape(i++)) == d;
  }
  if (!match) {
    std::vector<int64_t> want = leading;
    want.insert(want.end(), trailing.begin(), trailing.end());
    throw nb::value_error((std::string(name) + " must have shape " + shape_string(want) + ", got " +
                           shape_string(shape_of(a)))
                              .c_str());
  }
  require_c_contiguous(a, name);
  return a.data();
}

// Asks the kernel (Linux; a no-op elsewhere and below 4 MiB) to back an
// output buffer that is about to be written with transparent huge pages,
// as numpy does for its own large arrays. A fresh 75 MB output otherwise
// takes ~18k page faults, which cost more than the kinematics that fill it
// (fk at B = 65536: ~48 ms per call against ~11 ms into reused memory).
void advise_huge_pages(void* data, size_t bytes);

// A new C-contiguous numpy array of shape leading + trailing that owns its
// memory, aligned to a cache line: the kernels stream large outputs with
// non-temporal stores, and a misaligned start splits a line at every block
// boundary (measured ~8% slower fk at B = 4096).
constexpr std::align_val_t kArrayAlignment{64};

template <class T>
nb::ndarray<nb::numpy, T> new_array(const std::vector<int64_t>& leading, std::initializer_list<int64_t> trailing) {
  std::vector<size_t> shape(leading.begin(), leading.end());
  shape.insert(shape.end(), trailing.begin(), trailing.end());
  size_t size = 1;
  for (size_t d : shape) size *= d;
  T* data = new (kArrayAlignment) T[size > 0 ? size : 1];
  advise_huge_pages(data, sizeof(T) * size);
  nb::capsule owner(data, [](void* p) noexcept { ::operator delete[](p, kArrayAlignment); });
  return nb::ndarray<nb::numpy, T>(data, shape.size(), shape.data(), owner);
}

// True for float64, false for float32; a TypeError naming `name` otherwise.
bool is_double(const ConstArray& a, const char* name);

// The leading batch shape of an array whose shape ends in `trailing`, and
// its size; a ValueError naming `name` when it does not.
struct Batch {
  std::vector<int64_t> shape;
  int64_t size = 1;
};
Batch leading_batch(const std::vector<int64_t>& shape, const char* name, std::initializer_list<int64_t> trailing);

// parents: int32 (J,), each parents[j] in [-1, j).
const int32_t* checked_parents(const ConstArray& parents);

}  // namespace fastkin::bindings
