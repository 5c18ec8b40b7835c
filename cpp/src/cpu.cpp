#include "fastkin/cpu.h"

#include <cstdlib>
#include <cstring>

namespace fastkin {
namespace {

Isa detect() {
#if defined(FASTKIN_HAVE_X86_KERNELS)
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the OS saves the wide registers.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
    return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
#endif
  return Isa::Scalar;
}

Isa capped(Isa best) {
  const char* cap = std::getenv("FASTKIN_ISA");
  if (!cap) return best;
  Isa wanted = best;
  if (std::strcmp(cap, "scalar") == 0) wanted = Isa::Scalar;
  if (std::strcmp(cap, "avx2") == 0) wanted = Isa::Avx2;
  if (std::strcmp(cap, "avx512") == 0) wanted = Isa::Avx512;
  return static_cast<int>(wanted) < static_cast<int>(best) ? wanted : best;
}

}  // namespace

Isa active_isa() {
  static const Isa isa = capped(detect());
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace fastkin
