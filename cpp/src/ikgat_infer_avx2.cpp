// IKGAT kernels built with -mavx2 -mfma (see CMakeLists.txt): 8-float
// vectors, 6 x 16 product tiles (12 of the 16 registers accumulate).
#define FASTKIN_ISA_NS avx2
#include "ikgat_infer_block.inl"

FASTKIN_EXPORT_IKGAT(avx2, 8, 6, 2)
