// Python bindings of the COCO / LVIS reader and the JSON validator: the packed columns leave as
// numpy arrays that own the C++ vectors (no copy).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "bindings/register.hpp"
#include "bindings/released_gil.hpp"
#include "core/coco_index.hpp"
#include "core/json_scanner.hpp"

namespace py = pybind11;

namespace fastloader::bindings {
namespace {

// A numpy array viewing `values`, which it keeps alive through a capsule. `columns` > 0 makes it
// [size / columns, columns].
template <typename T>
py::array to_numpy(std::vector<T>&& values, py::ssize_t columns = 0) {
  const py::ssize_t size = static_cast<py::ssize_t>(values.size());
  std::vector<py::ssize_t> shape{size};
  if (columns > 0) shape = {size / columns, columns};
  if (values.empty()) return py::array_t<T>(shape);
  auto* owned = new std::vector<T>(std::move(values));
  py::capsule owner(owned, [](void* data) { delete static_cast<std::vector<T>*>(data); });
  return py::array_t<T>(shape, owned->data(), owner);
}

std::vector<uint8_t> as_bytes(std::vector<char>&& text) {
  return std::vector<uint8_t>(text.begin(), text.end());
}

}  // namespace

void register_coco(py::module_& m) {
  m.def(
      "load_coco_index",
      [](const std::string& path) {
        CocoIndex index;
        {
          // Safe without the GIL: the reader touches only its own file mapping and vectors.
          ReleasedGil release;
          index = load_coco_index(path);
        }
        const int64_t k = index.num_keypoints;
        py::dict out;
        out["image_ids"] = to_numpy(std::move(index.image_ids));
        out["image_sizes"] = to_numpy(std::move(index.image_sizes), 2);
        out["file_names"] = to_numpy(as_bytes(std::move(index.file_names)));
        out["file_name_offsets"] = to_numpy(std::move(index.file_name_offsets));
        out["has_lvis_image_fields"] = index.has_lvis_image_fields;
        out["not_exhaustive_offsets"] = to_numpy(std::move(index.not_exhaustive_offsets));
        out["not_exhaustive"] = to_numpy(std::move(index.not_exhaustive));
        out["negative_offsets"] = to_numpy(std::move(index.negative_offsets));
        out["negative"] = to_numpy(std::move(index.negative));
        out["category_ids"] = to_numpy(std::move(index.category_ids));
        out["category_names"] = to_numpy(as_bytes(std::move(index.category_names)));
        out["category_name_offsets"] = to_numpy(std::move(index.category_name_offsets));
        out["category_frequency"] = to_numpy(std::move(index.category_frequency));
        out["num_keypoints"] = k;
        out["object_offsets"] = to_numpy(std::move(index.object_offsets));
        out["annotation_ids"] = to_numpy(std::move(index.annotation_ids));
        out["boxes"] = to_numpy(std::move(index.boxes), 4);
        out["labels"] = to_numpy(std::move(index.labels));
        out["crowd"] = to_numpy(std::move(index.crowd));
        out["areas"] = to_numpy(std::move(index.areas));
        out["keypoints"] = to_numpy(std::move(index.keypoints), 2 * k);
        return out;
      },
      py::arg("path"),
      "Read a COCO / LVIS detection JSON file into packed numpy columns (see "
      "core/coco_index.hpp).");

  m.def(
      "json_validate",
      [](py::bytes data) {
        const std::string_view text(data);
        try {
          // Safe without the GIL: `data` is immutable and held by this frame.
          ReleasedGil release;
          json_validate(text.data(), text.size());
        } catch (const JsonError& error) {
          size_t line, column;
          json_line_column(text.data(), text.size(), error.offset, line, column);
          throw py::value_error("invalid JSON at byte " + std::to_string(error.offset) + " (line " +
                                std::to_string(line) + ", column " + std::to_string(column) +
                                "): " + error.what());
        }
      },
      py::arg("data"), "Raise ValueError (with the byte offset) unless data is one JSON text.");
}

}  // namespace fastloader::bindings
