// fk kernels built with -mavx2 -mfma (see CMakeLists.txt).
#include "fk_kernels.h"

#define FASTKIN_ISA_NS avx2
#include "fk_block.inl"

FASTKIN_EXPORT_KERNELS(avx2, 8, 4)
