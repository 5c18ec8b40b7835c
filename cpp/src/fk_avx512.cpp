// fk kernels built with AVX-512 flags (see CMakeLists.txt): 16 floats or 8
// doubles per block, one 512-bit register per scratch row.
#include "fk_kernels.h"

#define FASTKIN_ISA_NS avx512
#include "fk_block.inl"

FASTKIN_EXPORT_KERNELS(avx512, 16, 8)
