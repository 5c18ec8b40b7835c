// The nanobind module fastkin._core: one bind_* function per kernel file.
#include <nanobind/stl/string.h>

#include "fastkin/cpu.h"
#include "fastkin/parallel.h"
#include "module.h"

namespace nb = nanobind;

NB_MODULE(_core, m) {
  m.doc() = "fastkin's compiled kernels. Use the fastkin package; this module's API is private.";
  m.def("isa", [] { return std::string(fastkin::isa_name(fastkin::active_isa())); },
        "Instruction set the batched kernels use on this CPU.");
  m.def("get_num_threads", &fastkin::get_num_threads);
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1) throw nb::value_error("num_threads must be >= 1");
        nb::gil_scoped_release release;
        fastkin::set_num_threads(n);
      },
      nb::arg("num_threads"));
  m.attr("compiler") =
#if defined(__clang__)
      "clang " __clang_version__;
#elif defined(__GNUC__)
      "gcc " __VERSION__;
#else
      "unknown";
#endif
  fastkin::bindings::bind_fk(m);
  fastkin::bindings::bind_bone_frames(m);
  fastkin::bindings::bind_parse(m);
  fastkin::bindings::bind_skinning(m);
  fastkin::bindings::bind_ik_solve(m);
  fastkin::bindings::bind_ik_chains(m);
  fastkin::bindings::bind_ik_analytic(m);
  fastkin::bindings::bind_ikgat_infer(m);
  fastkin::bindings::bind_rotations(m);
}
