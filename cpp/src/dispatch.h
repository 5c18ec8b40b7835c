// Internal helpers shared by the kernel entry points: picking the kernel
// table for this CPU and per-thread scratch memory.
#pragma once
#include <cstdint>
#include <vector>

#include "fastkin/cpu.h"

namespace fastkin::detail {

// The kernel table compiled for the best instruction set this CPU has (and
// FASTKIN_ISA allows).
template <class Kernel>
Kernel for_this_cpu(Kernel (*scalar)(), Kernel (*avx2)(), Kernel (*avx512)()) {
  switch (active_isa()) {
#if defined(FASTKIN_HAVE_X86_KERNELS)
    case Isa::Avx512: return avx512();
    case Isa::Avx2: return avx2();
#endif
    default:
      (void)avx2;
      (void)avx512;
      return scalar();
  }
}

// Scratch reused across calls on each thread (caller or pool worker), so a
// small call allocates nothing. Aligned for 64-byte SIMD rows.
template <class T, int Slot = 0>
T* thread_scratch(int64_t size) {
  constexpr int64_t kAlign = 64 / sizeof(T);
  thread_local std::vector<T> buffer;
  if (static_cast<int64_t>(buffer.size()) < size + kAlign) buffer.resize(size + kAlign);
  const auto address = reinterpret_cast<std::uintptr_t>(buffer.data());
  return buffer.data() + (64 - address % 64) % 64 / sizeof(T);
}

}  // namespace fastkin::detail
