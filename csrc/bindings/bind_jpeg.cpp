// Python binding of the JPEG region decoder: bytes in, a uint8 [H, W, 3] array out.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "bindings/register.hpp"
#include "bindings/released_gil.hpp"
#include "core/jpeg_region.hpp"

namespace py = pybind11;

namespace fastloader::bindings {
namespace {

using jpeg::RegionDecoder;

// The bytes of a JPEG held by a bytes-like object (bytes, bytearray, memoryview, uint8 array).
py::buffer_info jpeg_bytes(const py::buffer& data) {
  py::buffer_info info = data.request();
  if (info.ndim != 1 || info.itemsize != 1 || info.strides[0] != 1)
    throw py::type_error("data should be contiguous bytes (bytes, bytearray, memoryview)");
  if (info.size == 0) throw py::value_error("data is empty: not a JPEG");
  return info;
}

}  // namespace

void register_jpeg(py::module_& m) {
  py::class_<RegionDecoder>(m, "JpegRegionDecoder",
                            "libjpeg-turbo (opened at run time) decoding rectangles of JPEGs.")
      .def(py::init<const std::string&>(), py::arg("library_path"))
      .def_property_readonly("library_path", &RegionDecoder::path)
      .def(
          "header",
          [](const RegionDecoder& self, const py::buffer& data) {
            py::buffer_info info = jpeg_bytes(data);
            jpeg::Header h;
            {
              ReleasedGil release;  // `info` keeps the bytes alive and unmoved
              h = self.header(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size));
            }
            return py::make_tuple(h.height, h.width, h.components, h.region_decodable);
          },
          py::arg("data"),
          "(height, width, components, region_decodable) from the JPEG's header.")
      .def(
          "decode_into",
          [](const RegionDecoder& self, const py::buffer& data, int64_t top, int64_t left,
             int64_t height, int64_t width, const py::array& out, bool bgr) {
            py::buffer_info info = jpeg_bytes(data);
            if (top < 0 || left < 0 || height < 1 || width < 1 || height > 65535 || width > 65535)
              throw py::value_error("region rows " + std::to_string(top) + "+" +
                                    std::to_string(height) + ", columns " + std::to_string(left) +
                                    "+" + std::to_string(width) + ": not a rectangle of a JPEG");
            const int64_t capacity = width + jpeg::region_slack;
            if (!py::isinstance<py::array_t<uint8_t>>(out) || out.ndim() != 3 ||
                !(out.flags() & py::array::c_style) || out.shape(0) != height ||
                out.shape(1) < capacity || out.shape(2) != 3)
              throw py::type_error("out should be a C-contiguous uint8 array of shape [" +
                                   std::to_string(height) + ", >= " + std::to_string(capacity) +
                                   ", 3] (width + JPEG_REGION_SLACK columns)");
            if (!out.writeable()) throw py::value_error("out should be writable");
            uint8_t* pixels = static_cast<uint8_t*>(const_cast<void*>(out.data()));
            const int64_t row_stride = out.shape(1) * 3;
            jpeg::Region r;
            {
              ReleasedGil release;  // `info` and `out` keep both buffers alive and unmoved
              r = self.decode_region(static_cast<const uint8_t*>(info.ptr),
                                     static_cast<size_t>(info.size), top, left, height, width, bgr,
                                     pixels, row_stride, out.shape(1));
            }
            return py::make_tuple(r.left, r.width);
          },
          py::arg("data"), py::arg("top"), py::arg("left"), py::arg("height"), py::arg("width"),
          py::arg("out"), py::arg("bgr") = false,
          "Decode rows [top, top + height) and at least columns [left, left + width) as uint8 RGB "
          "(BGR with bgr=True) into out [height, >= width + JPEG_REGION_SLACK, 3]; returns "
          "(first, columns): out[:, :columns] holds the image's columns [first, first + "
          "columns), equal to a full decode's.");
  m.attr("JPEG_REGION_SLACK") = jpeg::region_slack;
}

}  // namespace fastloader::bindings
