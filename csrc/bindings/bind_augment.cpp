// Python bindings of the detection augmentation core: op specs from dicts, plans with their drawn
// parameters, and rendering from a strided uint8 image into a strided output view.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bindings/register.hpp"
#include "bindings/released_gil.hpp"
#include "core/augment.hpp"

namespace py = pybind11;

namespace fastloader::bindings {
namespace {

using augment::Interp;
using augment::OpKind;
using augment::OpSpec;
using augment::OutDType;
using augment::OutputSpec;
using augment::Pipeline;
using augment::Plan;

OpKind op_kind(const std::string& name) {
  if (name == "square_crop") return OpKind::SquareCrop;
  if (name == "iou_crop") return OpKind::IoUCrop;
  if (name == "distort") return OpKind::Distort;
  if (name == "expand") return OpKind::Expand;
  if (name == "flip") return OpKind::Flip;
  if (name == "pad_to_square") return OpKind::PadToSquare;
  if (name == "resize") return OpKind::Resize;
  throw py::value_error("unknown op kind '" + name + "'");
}

// Reads dict[key] into `into` when present; every key must be consumed (typos are errors).
template <typename T>
void take(py::dict& d, const char* key, T& into) {
  if (d.contains(key)) {
    into = d[key].cast<T>();
    d.attr("pop")(key);
  }
}

OpSpec op_spec(const py::dict& given) {
  py::dict d = given.attr("copy")();
  OpSpec op;
  if (!d.contains("kind")) throw py::value_error("every op dict needs a 'kind'");
  op.kind = op_kind(d["kind"].cast<std::string>());
  d.attr("pop")("kind");
  take(d, "probability", op.probability);
  take(d, "scales", op.scales);
  take(d, "scale_min", op.scale_min);
  take(d, "scale_max", op.scale_max);
  take(d, "full_probability", op.full_probability);
  take(d, "max_tries", op.max_tries);
  take(d, "pad_on_failure", op.pad_on_failure);
  take(d, "min_ious", op.min_ious);
  take(d, "aspect_min", op.aspect_min);
  take(d, "aspect_max", op.aspect_max);
  take(d, "trials", op.trials);
  take(d, "max_options", op.max_options);
  take(d, "part_probability", op.part_probability);
  take(d, "brightness_delta", op.brightness_delta);
  take(d, "contrast_min", op.contrast_min);
  take(d, "contrast_max", op.contrast_max);
  take(d, "saturation_min", op.saturation_min);
  take(d, "saturation_max", op.saturation_max);
  take(d, "hue_delta", op.hue_delta);
  take(d, "max_ratio", op.max_ratio);
  take(d, "flip_pairs", op.flip_pairs);
  take(d, "out_width", op.out_width);
  take(d, "out_height", op.out_height);
  take(d, "shorter_sizes", op.shorter_sizes);
  take(d, "max_size", op.max_size);
  take(d, "size_divisibility", op.size_divisibility);
  if (d.contains("interps")) {
    op.interps.clear();
    for (int m : d["interps"].cast<std::vector<int>>()) op.interps.push_back(static_cast<Interp>(m));
    d.attr("pop")("interps");
  }
  if (py::len(d) != 0)
    throw py::value_error("unknown op field(s): " + std::string(py::str(d.attr("keys")())));
  return op;
}

OutputSpec output_spec(const py::dict& given) {
  py::dict d = given.attr("copy")();
  OutputSpec out;
  take(d, "input_rgb", out.input_rgb);
  take(d, "output_rgb", out.output_rgb);
  if (d.contains("dtype")) {
    const std::string name = d["dtype"].cast<std::string>();
    d.attr("pop")("dtype");
    if (name == "uint8") out.dtype = OutDType::UInt8;
    else if (name == "float32") out.dtype = OutDType::Float32;
    else if (name == "float16") out.dtype = OutDType::Float16;
    else if (name == "bfloat16") out.dtype = OutDType::BFloat16;
    else throw py::value_error("dtype must be uint8, float32, float16 or bfloat16, got " + name);
  }
  take(d, "mean", out.mean);
  take(d, "std", out.std);
  take(d, "fill", out.fill);
  take(d, "clip_boxes", out.clip_boxes);
  take(d, "min_box_size", out.min_box_size);
  take(d, "normalize_boxes", out.normalize_boxes);
  if (py::len(d) != 0)
    throw py::value_error("unknown output field(s): " + std::string(py::str(d.attr("keys")())));
  return out;
}

int64_t element_size(OutDType t) { return t == OutDType::UInt8 ? 1 : t == OutDType::Float32 ? 4 : 2; }

py::array_t<float> float_rows(const std::vector<float>& values, int64_t cols) {
  const int64_t rows = cols > 0 ? static_cast<int64_t>(values.size()) / cols : 0;
  py::array_t<float> out({rows, cols});
  if (!values.empty()) std::memcpy(out.mutable_data(), values.data(), values.size() * sizeof(float));
  return out;
}

}  // namespace

void register_augment(py::module_& m) {
  py::class_<Plan, std::shared_ptr<Plan>>(m, "AugmentPlan",
                                          "One sample's drawn parameters and moved targets.")
      .def(py::init<>(), "An empty plan (plans come from AugmentCore.plan).")
      .def_property_readonly("out_height", [](const Plan& p) { return p.out_height; })
      .def_property_readonly("out_width", [](const Plan& p) { return p.out_width; })
      .def_property_readonly("content_height", [](const Plan& p) { return p.content_height; })
      .def_property_readonly("content_width", [](const Plan& p) { return p.content_width; })
      .def_property_readonly("canvas_height", [](const Plan& p) { return p.canvas_height; })
      .def_property_readonly("canvas_width", [](const Plan& p) { return p.canvas_width; })
      .def_property_readonly("src_height", [](const Plan& p) { return p.src_height; })
      .def_property_readonly("src_width", [](const Plan& p) { return p.src_width; })
      .def_property_readonly(
          "source_rect",
          [](const Plan& p) {
            const augment::SourceRect r = augment::source_rect(p);
            return py::make_tuple(r.top, r.left, r.height, r.width);
          },
          "(top, left, height, width) of the source pixels the render reads (0 x 0: none).")
      .def_property_readonly("interp", [](const Plan& p) { return static_cast<int>(p.interp); })
      .def_property_readonly("resized", [](const Plan& p) { return p.resized; })
      .def_property_readonly("boxes", [](const Plan& p) { return float_rows(p.boxes, 4); })
      .def_property_readonly("landmarks",
                             [](const Plan& p) {
                               const int64_t n = static_cast<int64_t>(p.keep.size());
                               return float_rows(p.landmarks, n > 0 ? static_cast<int64_t>(p.landmarks.size()) / n : 0);
                             })
      .def_property_readonly("keep",
                             [](const Plan& p) {
                               py::array_t<int64_t> out(static_cast<py::ssize_t>(p.keep.size()));
                               if (!p.keep.empty())
                                 std::memcpy(out.mutable_data(), p.keep.data(), p.keep.size() * sizeof(int64_t));
                               return out;
                             })
      .def_property_readonly("records", [](const Plan& p) {
        py::list out;
        for (const auto& r : p.records) {
          py::dict values;
          for (const auto& [name, value] : r.values) values[py::str(name)] = value;
          out.append(py::make_tuple(r.name, r.applied, values));
        }
        return out;
      });

  py::class_<Pipeline, std::shared_ptr<Pipeline>>(m, "AugmentCore",
                                                  "A validated detection augmentation op list.")
      .def(py::init([](const py::list& ops, const py::dict& output) {
             std::vector<OpSpec> specs;
             for (const py::handle& op : ops) {
               if (!py::isinstance<py::dict>(op)) throw py::type_error("each op must be a dict");
               specs.push_back(op_spec(py::reinterpret_borrow<py::dict>(op)));
             }
             return std::make_shared<Pipeline>(std::move(specs), output_spec(output));
           }),
           py::arg("ops"), py::arg("output"))
      .def(
          "plan",
          [](const Pipeline& self, int64_t height, int64_t width, const py::array& boxes_in,
             const std::optional<py::array>& landmarks_in, uint64_t seed, uint64_t epoch,
             uint64_t index) {
            using Floats = py::array_t<float, py::array::c_style | py::array::forcecast>;
            const Floats boxes = Floats::ensure(boxes_in);
            if (!boxes) throw py::type_error("boxes should convert to float32");
            std::optional<Floats> landmarks;
            if (landmarks_in) {
              landmarks = Floats::ensure(*landmarks_in);
              if (!*landmarks) throw py::type_error("landmarks should convert to float32");
            }
            if (boxes.ndim() != 2 || boxes.shape(1) != 4)
              throw py::value_error("boxes should have shape [N, 4]");
            augment::BoxesIn in;
            in.boxes = boxes.data();
            in.count = boxes.shape(0);
            if (landmarks && landmarks->size() > 0) {
              if (landmarks->ndim() != 2 || landmarks->shape(0) != in.count || landmarks->shape(1) % 2)
                throw py::value_error("landmarks should have shape [N, 2 * points] with N = " +
                                      std::to_string(in.count));
              in.landmarks = landmarks->data();
              in.points = landmarks->shape(1) / 2;
            }
            auto plan = std::make_shared<Plan>();
            {
              // Safe without the GIL: boxes and landmarks are arrays this frame owns (forcecast
              // copies) and the pipeline is immutable; the core touches no Python object.
              ReleasedGil release;
              *plan = self.plan(height, width, in, seed, epoch, index);
            }
            return plan;
          },
          py::arg("height"), py::arg("width"), py::arg("boxes"), py::arg("landmarks"),
          py::arg("seed"), py::arg("epoch"), py::arg("index"),
          "Draw one sample's parameters and move its targets (the image is not read).")
      .def(
          "plan_for_reduced_source",
          [](const Pipeline& self, const Plan& plan, int64_t height, int64_t width) {
            return std::make_shared<Plan>(self.for_reduced_source(plan, height, width));
          },
          py::arg("plan"), py::arg("height"), py::arg("width"),
          "The plan re-expressed for the same image decoded at height x width (a reduced-DCT "
          "JPEG decode).")
      .def(
          "plan_for_source_rect",
          [](const Pipeline&, const Plan& plan, int64_t top, int64_t left, int64_t height,
             int64_t width) {
            return std::make_shared<Plan>(
                augment::for_source_rect(plan, augment::SourceRect{top, left, height, width}));
          },
          py::arg("plan"), py::arg("top"), py::arg("left"), py::arg("height"), py::arg("width"),
          "The plan re-expressed for a source holding only that rectangle of the planned one "
          "(a region-decoded JPEG): the same output.")
      .def(
          "render",
          [](const Pipeline& self, const Plan& plan, py::array image, py::array out, bool channels_first) {
            if (!py::isinstance<py::array_t<uint8_t>>(image))
              throw py::type_error("image should be a uint8 array, got dtype " +
                                   std::string(py::str(image.dtype())));
            if (image.ndim() != 2 && image.ndim() != 3)
              throw py::value_error("image should be [H, W] or [H, W, C]");
            augment::ImageView src;
            src.data = static_cast<const uint8_t*>(image.data());
            src.height = image.shape(0);
            src.width = image.shape(1);
            src.channels = image.ndim() == 3 ? image.shape(2) : 1;
            src.row_stride = image.strides(0);
            src.col_stride = image.strides(1);
            src.channel_stride = image.ndim() == 3 ? image.strides(2) : 1;
            if (src.row_stride < 0 || src.col_stride < 0 || src.channel_stride < 0)
              throw py::value_error("image should have non-negative strides");
            const int64_t es = element_size(self.output().dtype);
            if (!out.writeable()) throw py::value_error("out should be writeable");
            if (out.itemsize() != es)
              throw py::value_error("out has " + std::to_string(out.itemsize()) + "-byte elements, the "
                                    "pipeline writes " + std::to_string(es) + "-byte ones");
            if (out.ndim() != 3) throw py::value_error("out should be 3-D");
            const int cdim = channels_first ? 0 : 2, ydim = channels_first ? 1 : 0, xdim = channels_first ? 2 : 1;
            if (out.shape(cdim) != 3 || out.shape(ydim) != plan.out_height || out.shape(xdim) != plan.out_width)
              throw py::value_error("out should have shape " +
                                    std::string(channels_first ? "[3, H, W]" : "[H, W, 3]") + " with H, W = " +
                                    std::to_string(plan.out_height) + ", " + std::to_string(plan.out_width));
            for (int d = 0; d < 3; ++d)
              if (out.strides(d) < 0 || out.strides(d) % es)
                throw py::value_error("out should have non-negative strides in whole elements");
            augment::OutputView dst;
            dst.data = out.mutable_data();
            dst.channel_stride = out.strides(cdim) / es;
            dst.row_stride = out.strides(ydim) / es;
            dst.col_stride = out.strides(xdim) / es;
            // Safe without the GIL: image and out are arrays held by this frame, the plan and the
            // pipeline are immutable; the kernel touches no Python object.
            ReleasedGil release;
            self.render(plan, src, dst);
          },
          py::arg("plan"), py::arg("image"), py::arg("out"), py::arg("channels_first"),
          "Write the augmented image of plan into out ([3, H, W] or [H, W, 3] by channels_first).");

  m.def(
      "augment_distort_pixels",
      [](const py::array& pixels_in, int blue_index, const py::dict& params) {
        if (!py::isinstance<py::array_t<uint8_t>>(pixels_in) ||
            !(pixels_in.flags() & py::array::c_style))
          throw py::type_error("pixels should be a C-contiguous uint8 array");
        py::array_t<uint8_t> pixels = py::reinterpret_borrow<py::array_t<uint8_t>>(pixels_in);
        if (pixels.ndim() != 2 || pixels.shape(1) != 3) throw py::value_error("pixels should be [N, 3]");
        if (!pixels.writeable()) throw py::value_error("pixels should be writeable");
        augment::PhotometricParams p;
        p.active = true;
        py::dict d = params.attr("copy")();
        take(d, "contrast_first", p.contrast_first);
        take(d, "brightness_on", p.brightness_on);
        take(d, "beta", p.beta);
        take(d, "contrast_on", p.contrast_on);
        take(d, "alpha", p.alpha);
        take(d, "saturation_on", p.saturation_on);
        take(d, "saturation", p.saturation);
        take(d, "hue_on", p.hue_on);
        take(d, "hue", p.hue);
        if (py::len(d) != 0)
          throw py::value_error("unknown distortion field(s): " + std::string(py::str(d.attr("keys")())));
        augment::detail::distort_pixels(pixels.mutable_data(), pixels.shape(0), blue_index, p);
      },
      py::arg("pixels"), py::arg("blue_index"), py::arg("params"),
      "Apply the photometric distortion to [N, 3] uint8 pixels in place (for tests).");
}

}  // namespace fastloader::bindings
