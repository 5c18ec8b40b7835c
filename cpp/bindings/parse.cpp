// Binding for the number parser: bytes in, float64 numpy array out.
#include "fastkin/parse.h"

#include "module.h"
#include <nanobind/ndarray.h>

namespace fastkin::bindings {

void bind_parse(nanobind::module_& m) {
  namespace nb = nanobind;
  m.def(
      "parse_numbers",
      [](nb::bytes text) -> nb::typed<nb::tuple, nb::ndarray<nb::numpy, double>, int64_t> {
        const char* data = text.c_str();
        const int64_t size = static_cast<int64_t>(text.size());
        const int64_t capacity = size / 2 + 1;
        double* values = new double[capacity];
        nb::capsule owner(values, [](void* p) noexcept { delete[] static_cast<double*>(p); });
        ParseResult result;
        {
          nb::gil_scoped_release release;
          result = parse_numbers(data, size, values, capacity);
        }
        const size_t shape[1] = {static_cast<size_t>(result.count)};
        return nb::make_tuple(nb::ndarray<nb::numpy, double, nb::ndim<1>>(values, 1, shape, owner), result.error_at);
      },
      nb::arg("text"),
      "(numbers, error_at): the whitespace-separated numbers of `text` (bytes) as a float64 array, and the byte "
      "offset of the first malformed token (-1 if none; the numbers before it are returned).");
}

}  // namespace fastkin::bindings
