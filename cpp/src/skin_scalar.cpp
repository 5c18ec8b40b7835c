// Skinning kernels for the scalar instruction set (flags in CMakeLists.txt).
#include "skin_kernels.h"

#define FASTKIN_ISA_NS scalar
#include "skin_block.inl"

FASTKIN_EXPORT_SKIN_KERNELS(scalar)
