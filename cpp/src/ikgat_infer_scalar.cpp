// IKGAT kernels for the baseline instruction set (SSE2 on x86-64, NEON on
// aarch64): 4-float vectors, 6 x 8 product tiles.
#define FASTKIN_ISA_NS scalar
#include "ikgat_infer_block.inl"

FASTKIN_EXPORT_IKGAT(scalar, 4, 6, 2)
