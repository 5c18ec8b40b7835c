// IKGAT kernels built with AVX-512 flags (see CMakeLists.txt): 16-float
// vectors, 6 x 64 product tiles (24 of the 32 registers accumulate).
#define FASTKIN_ISA_NS avx512
#include "ikgat_infer_block.inl"

FASTKIN_EXPORT_IKGAT(avx512, 16, 6, 4)
