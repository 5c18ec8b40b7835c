// Binding for the number parser: bytes in, float64 numpy array out.
#include "fastkin/parse.h"

#include <string>

#include "module.h"
#include <nanobind/ndarray.h>

namespace fastkin::bindings {

void bind_parse(nanobind::module_& m) {
  namespace nb = nanobind;
  m.def(
      "parse_numbers",
      [](nb::bytes text) {
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
        if (result.error_at >= 0) {
          const int64_t stop = result.error_at + 20 < size ? result.error_at + 20 : size;
          throw nb::value_error(("malformed number at byte " + std::to_string(result.error_at) + ": '" +
                                 std::string(data + result.error_at, data + stop) + "'")
                                    .c_str());
        }
        const size_t shape[1] = {static_cast<size_t>(result.count)};
        return nb::ndarray<nb::numpy, double, nb::ndim<1>>(values, 1, shape, owner);
      },
      nb::arg("text"), "Whitespace-separated numbers in `text` (bytes) as a float64 array.");
}

}  // namespace fastkin::bindings
