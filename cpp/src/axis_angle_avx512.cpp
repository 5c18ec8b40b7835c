// Axis-angle kernels for the avx512 instruction set (flags in CMakeLists.txt).
#define FASTKIN_ISA_NS avx512
#include "axis_angle_block.inl"

FASTKIN_EXPORT_AXIS_ANGLE_KERNELS(avx512)
