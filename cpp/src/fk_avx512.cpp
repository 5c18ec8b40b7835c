// fk kernels built with AVX-512 flags (see CMakeLists.txt). float blocks are
// 8 lanes: measured faster here than 16 (the 16 x 16 transposes spill
// registers), while still using AVX-512 instructions and registers.
#include "fk_kernels.h"

#define FASTKIN_ISA_NS avx512
#include "fk_block.inl"

FASTKIN_EXPORT_KERNELS(avx512, 8, 8)
