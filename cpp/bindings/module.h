#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>

namespace fastkin::bindings {
void bind_fk(nanobind::module_& m);
void bind_bone_frames(nanobind::module_& m);
void bind_parse(nanobind::module_& m);
void bind_skinning(nanobind::module_& m);
void bind_ik_solve(nanobind::module_& m);
void bind_ik_chains(nanobind::module_& m);
void bind_ik_analytic(nanobind::module_& m);
void bind_ikgat_infer(nanobind::module_& m);
void bind_rotations(nanobind::module_& m);
}
