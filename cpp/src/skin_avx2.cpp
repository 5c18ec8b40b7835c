// Skinning kernels for the avx2 instruction set (flags in CMakeLists.txt).
#include "skin_kernels.h"

#define FASTKIN_ISA_NS avx2
#include "skin_block.inl"

FASTKIN_EXPORT_SKIN_KERNELS(avx2)
