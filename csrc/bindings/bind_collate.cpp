// Python bindings of the collate kernels: numpy arrays and writable buffers in, checked, GIL-free copies.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bindings/buffer_checks.hpp"
#include "bindings/register.hpp"
#include "bindings/released_gil.hpp"
#include "core/collate.hpp"

namespace py = pybind11;

namespace fastloader::bindings {
namespace {

// Strided views of numpy arrays: address, shape and strides come from each array itself (never
// from integers passed by Python), and every array must have `element_size`-byte elements.
// `keep` holds a reference to every array, so the views stay valid while the GIL is released
// even if another thread empties the caller's list.
std::vector<StridedView> array_views(const py::sequence& arrays, int64_t element_size,
                                     const char* what, std::vector<py::array>& keep) {
  if (element_size <= 0) throw py::value_error("element_size must be positive");
  const size_t count = py::len(arrays);
  std::vector<StridedView> views;
  views.reserve(count);
  keep.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    py::object item = arrays[i];
    if (!py::isinstance<py::array>(item))
      throw py::type_error(std::string(what) + " " + std::to_string(i) +
                           " should be a numpy array, but got " +
                           std::string(py::str(py::type::of(item).attr("__name__"))));
    py::array array = py::reinterpret_borrow<py::array>(item);
    if (array.itemsize() != element_size)
      throw py::value_error(std::string(what) + " " + std::to_string(i) + " has " +
                            std::to_string(array.itemsize()) + "-byte elements, expected " +
                            std::to_string(element_size));
    const auto ndim = static_cast<size_t>(array.ndim());
    StridedView view;
    view.data = static_cast<const unsigned char*>(array.data());
    view.shape.assign(array.shape(), array.shape() + ndim);
    view.strides.assign(array.strides(), array.strides() + ndim);
    views.push_back(std::move(view));
    keep.push_back(std::move(array));
  }
  return views;
}

// A writable, contiguous 1-D byte range of any buffer-protocol object (a numpy view of a torch
// tensor's storage, a PooledBuffer, a bytearray): its size comes from the buffer, not the caller.
struct WritableBytes {
  py::buffer_info info;  // holds the buffer export until destroyed (with the GIL held)
  unsigned char* data = nullptr;
  int64_t bytes = 0;
};

WritableBytes writable_bytes(const py::buffer& out, const char* what) {
  WritableBytes result;
  try {
    result.info = out.request(/*writable=*/true);
  } catch (py::error_already_set& error) {
    throw py::value_error(std::string(what) + " should be a writable buffer: " + error.what());
  }
  const py::buffer_info& info = result.info;
  if (info.ndim != 1)
    throw py::value_error(std::string(what) + " should be 1-D, but has " +
                          std::to_string(info.ndim) + " dimensions");
  if (info.size > 1 && info.strides[0] != info.itemsize)
    throw py::value_error(std::string(what) + " should be contiguous, but has stride " +
                          std::to_string(info.strides[0]) + " for " +
                          std::to_string(info.itemsize) + "-byte items");
  result.bytes = checked_mul(info.size, info.itemsize, what);
  result.data = static_cast<unsigned char*>(info.ptr);
  return result;
}

int checked_threads(int threads) {
  if (threads < 1) throw py::value_error("threads must be at least 1");
  return threads;
}

}  // namespace

void register_collate(py::module_& m) {
  m.def(
      "pad_images",
      [](const py::sequence& images, int64_t channels, int64_t height, int64_t width,
         const py::bytes& fill, bool channels_last, const py::buffer& out, int threads) {
        const std::string pattern = fill;
        if (pattern.empty()) throw py::value_error("fill must hold one element (element_size bytes)");
        ImageBatchSpec spec;
        spec.channels = channels;
        spec.height = height;
        spec.width = width;
        spec.element_size = static_cast<int64_t>(pattern.size());
        spec.channels_last = channels_last;
        std::vector<py::array> keep;
        const std::vector<StridedView> views = array_views(images, spec.element_size, "image", keep);
        WritableBytes dst = writable_bytes(out, "out");
        threads = checked_threads(threads);
        // Safe without the GIL: `keep` and `dst.info` hold every image and the output for the
        // call and are released only after the GIL is taken back (declared before `release`);
        // `pattern` and `views` belong to this frame; the kernel touches no Python object.
        ReleasedGil release;
        pad_images(views, spec, reinterpret_cast<const unsigned char*>(pattern.data()), dst.data,
                   dst.bytes, threads);
      },
      py::arg("images"), py::arg("channels"), py::arg("height"), py::arg("width"), py::arg("fill"),
      py::arg("channels_last"), py::arg("out"), py::arg("threads") = 1,
      "Copy numpy images [C, H_i, W_i] into the padded [B, C, H, W] (or channels_last) batch in the "
      "writable byte buffer `out`; `fill` is one element's bytes and sets the element size.");

  m.def(
      "pack_arrays",
      [](const py::sequence& sources, int64_t element_size, const py::buffer& out, int threads) {
        std::vector<py::array> keep;
        const std::vector<StridedView> views = array_views(sources, element_size, "array", keep);
        WritableBytes dst = writable_bytes(out, "out");
        threads = checked_threads(threads);
        // Safe without the GIL: `keep` and `dst.info` (declared before `release`) hold sources
        // and output until the GIL is back; `views` belongs to this frame; no Python object is
        // touched by the kernel.
        ReleasedGil release;
        pack_arrays(views, element_size, dst.data, dst.bytes, threads);
      },
      py::arg("sources"), py::arg("element_size"), py::arg("out"), py::arg("threads") = 1,
      "Copy each numpy array's elements in C order back to back into the writable byte buffer "
      "`out`.");

  m.def(
      "write_index_block",
      [](const std::vector<int64_t>& counts, const std::vector<int64_t>& image_sizes,
         py::array out) {
        int64_t* data = output_vector<int64_t>(out, "out");
        const int64_t length = out.size();
        // Safe without the GIL: `counts` and `image_sizes` are C++ copies and `out` (held by the
        // argument for the whole call) is only written, not resized.
        ReleasedGil release;
        write_index_block(counts, image_sizes, data, length);
      },
      py::arg("counts"), py::arg("image_sizes"), py::arg("out"),
      "Write a batch's int64 index block into `out`: counts [B] | offsets [B+1] | image_sizes "
      "[B, 2] (given flat, H and W per image) | batch_index [sum counts].");
}

}  // namespace fastloader::bindings
