// Axis-angle kernels for the scalar instruction set (flags in CMakeLists.txt).
#define FASTKIN_ISA_NS scalar
#include "axis_angle_block.inl"

FASTKIN_EXPORT_AXIS_ANGLE_KERNELS(scalar)
