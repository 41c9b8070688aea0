// Python binding of AliasTable.draw_strided (one rank's shard of a global stream), added to the
// AliasTable class that bind_sampler.cpp registers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "bindings/register.hpp"
#include "core/weighted_sampling.hpp"

namespace py = pybind11;

namespace fastloader::bindings {

void register_strided_draw(py::module_& m) {
  // Reopens the class registered by register_sampler (called first in module.cpp).
  auto table = py::reinterpret_borrow<py::class_<AliasTable, std::shared_ptr<AliasTable>>>(
      m.attr("AliasTable"));
  table.def(
      "draw_strided",
      [](const AliasTable& self, uint64_t seed, uint64_t stream, int64_t start, int64_t stride,
         py::array out, int64_t count, int threads) {
        if (!py::isinstance<py::array_t<int64_t>>(out) || out.ndim() != 1 ||
            !(out.flags() & py::array::c_style) || !out.writeable())
          throw py::type_error("out must be a writeable contiguous 1-D int64 numpy array");
        if (count < 0) throw py::value_error("count must be non-negative");
        if (out.shape(0) < count)
          throw py::value_error("out holds " + std::to_string(out.shape(0)) + " items, " +
                                std::to_string(count) + " needed");
        auto* dst = static_cast<int64_t*>(out.mutable_data());
        // Safe without the GIL: the table is immutable after construction and `out` is kept
        // alive by this frame; the kernel touches no Python object.
        py::gil_scoped_release release;
        self.draw_strided(seed, stream, start, stride, count, dst, threads);
      },
      py::arg("seed"), py::arg("stream"), py::arg("start"), py::arg("stride"), py::arg("out"),
      py::arg("count"), py::arg("threads") = 1,
      "Write draws start, start+stride, ... (count of them) of (seed, stream) into out[:count].");
}

}  // namespace fastloader::bindings
