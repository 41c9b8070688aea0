// The fastloader._C extension module: one register_* call per feature.
#include <pybind11/pybind11.h>

#include "bindings/register.hpp"

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastloader native kernels (no libtorch: buffers in, buffers out)";
  fastloader::bindings::register_sampler(m);
  fastloader::bindings::register_collate(m);
  fastloader::bindings::register_buffer_pool(m);
  fastloader::bindings::register_policies(m);
  fastloader::bindings::register_coco(m);
  fastloader::bindings::register_augment(m);
  fastloader::bindings::register_jpeg(m);
}
