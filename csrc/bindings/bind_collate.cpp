// Python bindings of the collate kernels: raw addresses from torch/numpy in, GIL-free copies.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "bindings/register.hpp"
#include "core/collate.hpp"

namespace py = pybind11;

namespace fastloader::bindings {
namespace {

// (address of element 0, shape, byte strides): what tensor.data_ptr()/.stride() or numpy's
// .ctypes.data/.strides give. The Python layer checks device, dtype and lifetime before calling.
using ViewTuple = std::tuple<uintptr_t, std::vector<int64_t>, std::vector<int64_t>>;

std::vector<StridedView> to_views(const std::vector<ViewTuple>& tuples) {
  std::vector<StridedView> views;
  views.reserve(tuples.size());
  for (const auto& [address, shape, strides] : tuples)
    views.push_back({reinterpret_cast<const unsigned char*>(address), shape, strides});
  return views;
}

unsigned char* out_address(uintptr_t address, int64_t bytes) {
  if (address == 0 && bytes > 0) throw py::value_error("out address is null");
  if (bytes < 0) throw py::value_error("out_bytes must be non-negative");
  return reinterpret_cast<unsigned char*>(address);
}

}  // namespace

void register_collate(py::module_& m) {
  m.def(
      "pad_images",
      [](const std::vector<ViewTuple>& images, int64_t channels, int64_t height, int64_t width,
         const py::bytes& fill, bool channels_last, uintptr_t out, int64_t out_bytes,
         int threads) {
        const std::string pattern = fill;
        if (pattern.empty()) throw py::value_error("fill must hold one element (element_size bytes)");
        ImageBatchSpec spec;
        spec.channels = channels;
        spec.height = height;
        spec.width = width;
        spec.element_size = static_cast<int64_t>(pattern.size());
        spec.channels_last = channels_last;
        std::vector<StridedView> views = to_views(images);
        unsigned char* dst = out_address(out, out_bytes);
        // Safe without the GIL: the caller keeps every image and the output alive until this
        // returns, `pattern` and `views` are owned by this frame, and no Python object is touched.
        py::gil_scoped_release release;
        pad_images(views, spec, reinterpret_cast<const unsigned char*>(pattern.data()), dst,
                   out_bytes, threads);
      },
      py::arg("images"), py::arg("channels"), py::arg("height"), py::arg("width"), py::arg("fill"),
      py::arg("channels_last"), py::arg("out"), py::arg("out_bytes"), py::arg("threads") = 1,
      "Copy images [C, H_i, W_i] into a padded [B, C, H, W] (or channels_last) buffer at `out`; "
      "`fill` is one element's bytes and sets the element size.");

  m.def(
      "pack_arrays",
      [](const std::vector<ViewTuple>& sources, int64_t element_size, uintptr_t out,
         int64_t out_bytes, int threads) {
        std::vector<StridedView> views = to_views(sources);
        unsigned char* dst = out_address(out, out_bytes);
        // Safe without the GIL: sources and output are kept alive by the caller for the call,
        // `views` belongs to this frame, and the kernel touches no Python object.
        py::gil_scoped_release release;
        pack_arrays(views, element_size, dst, out_bytes, threads);
      },
      py::arg("sources"), py::arg("element_size"), py::arg("out"), py::arg("out_bytes"),
      py::arg("threads") = 1,
      "Copy each source's elements in C order back to back into the contiguous buffer at `out`.");

  m.def(
      "write_object_index",
      [](const std::vector<int64_t>& counts, uintptr_t offsets, uintptr_t batch_index,
         int64_t batch_index_len) {
        if (offsets == 0 || (batch_index == 0 && batch_index_len > 0))
          throw py::value_error("offsets and batch_index must be valid addresses");
        // Safe without the GIL: `counts` is a C++ copy and both outputs are held by the caller.
        py::gil_scoped_release release;
        write_object_index(counts, reinterpret_cast<int64_t*>(offsets),
                           reinterpret_cast<int64_t*>(batch_index), batch_index_len);
      },
      py::arg("counts"), py::arg("offsets"), py::arg("batch_index"), py::arg("batch_index_len"),
      "Write offsets [B+1] and batch_index [sum counts] (int64) for per-image object counts.");
}

}  // namespace fastloader::bindings
