// Run-time choice of instruction set for the batched kernels.
#pragma once

namespace fastkin {

enum class Isa { Scalar, Avx2, Avx512 };

// The best instruction set that is both compiled in and supported by this
// CPU and OS. FASTKIN_ISA=scalar|avx2|avx512 in the environment caps it (for
// testing every path on one machine).
Isa active_isa();
const char* isa_name(Isa isa);

}  // namespace fastkin
