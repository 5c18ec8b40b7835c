// Analytic IK frame solvers built with -mavx2 -mfma (see CMakeLists.txt);
// also used on AVX-512 CPUs, where 512-bit vectors measured slower.
#include "ik_kernels.h"

#define FASTKIN_ISA_NS ik_avx2
#include "ik_block.inl"

FASTKIN_EXPORT_IK(ik_avx2, avx2)
