// Analytic IK frame solvers for the baseline instruction set (SSE2 on
// x86-64, NEON on aarch64).
#include "ik_kernels.h"

#define FASTKIN_ISA_NS ik_scalar
#include "ik_block.inl"

FASTKIN_EXPORT_IK(ik_scalar, scalar)
