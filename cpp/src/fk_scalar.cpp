// fk kernels for the baseline instruction set (SSE2 on x86-64, NEON on aarch64).
#include "fk_kernels.h"

#define FASTKIN_ISA_NS scalar
#include "fk_block.inl"

FASTKIN_EXPORT_KERNELS(scalar, 4, 2)
