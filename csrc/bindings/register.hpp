// Declarations of the per-feature registration functions called by module.cpp.
#pragma once

#include <pybind11/pybind11.h>

namespace fastloader::bindings {

void register_sampler(pybind11::module_& m);
void register_collate(pybind11::module_& m);
void register_buffer_pool(pybind11::module_& m);
void register_policies(pybind11::module_& m);
void register_coco(pybind11::module_& m);
void register_augment(pybind11::module_& m);
void register_jpeg(pybind11::module_& m);

}  // namespace fastloader::bindings
