// Python bindings of the detection sampling policies: buffer checks, then kernels without the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

#include "bindings/buffer_checks.hpp"
#include "bindings/register.hpp"
#include "bindings/released_gil.hpp"
#include "core/detection_sampling.hpp"

namespace py = pybind11;

namespace fastloader::bindings {
namespace {

using Int64Array = py::array_t<int64_t, py::array::c_style>;
using DoubleArray = py::array_t<double, py::array::c_style>;

ImageLabels label_table(const py::array& labels, const py::array& offsets, int64_t num_classes) {
  const int64_t* offset_data = input_vector<int64_t>(offsets, "offsets");
  if (offsets.shape(0) < 1) throw py::value_error("offsets must hold num_images + 1 items");
  const int64_t* label_data = input_vector<int64_t>(labels, "labels");
  const int64_t num_images = offsets.shape(0) - 1;
  if (offset_data[num_images] != labels.shape(0))
    throw py::value_error("offsets[-1] must equal the number of labels");
  return {label_data, offset_data, num_images, num_classes};
}

ClassReduce reduce_mode(const std::string& how) {
  if (how == "max") return ClassReduce::kMax;
  if (how == "mean") return ClassReduce::kMean;
  if (how == "sum") return ClassReduce::kSum;
  throw py::value_error("reduce must be 'max', 'mean' or 'sum', not '" + how + "'");
}

void register_label_statistics(py::module_& m) {
  m.def(
      "images_per_class",
      [](const py::array& labels, const py::array& offsets, int64_t num_classes) {
        const ImageLabels table = label_table(labels, offsets, num_classes);
        Int64Array counts(num_classes);
        int64_t* dst = counts.mutable_data();
        // Safe without the GIL: the inputs are held by the caller and `counts` is not shared yet.
        ReleasedGil release;
        images_per_class(table, dst);
        return counts;
      },
      py::arg("labels"), py::arg("offsets"), py::arg("num_classes"),
      "Images holding each class (labels in CSR form: image i holds "
      "labels[offsets[i]:offsets[i+1]]).");

  m.def(
      "class_members",
      [](const py::array& labels, const py::array& offsets, int64_t num_classes,
         const py::array& class_offsets) {
        const ImageLabels table = label_table(labels, offsets, num_classes);
        const int64_t* bounds =
            input_vector<int64_t>(class_offsets, "class_offsets", num_classes + 1);
        Int64Array members(bounds[num_classes]);
        int64_t* dst = members.mutable_data();
        // Safe without the GIL: inputs are held by the caller, `members` is ours alone.
        ReleasedGil release;
        class_members(table, bounds, dst);
        return members;
      },
      py::arg("labels"), py::arg("offsets"), py::arg("num_classes"), py::arg("class_offsets"),
      "The images of each class, increasing, at members[class_offsets[c]:class_offsets[c+1]].");

  m.def(
      "reduce_class_values",
      [](const py::array& labels, const py::array& offsets, const py::array& class_values,
         const std::string& how, double empty_value, int threads) {
        const int64_t num_classes = class_values.ndim() == 1 ? class_values.shape(0) : -1;
        const double* values = input_vector<double>(class_values, "class_values");
        const ImageLabels table = label_table(labels, offsets, num_classes);
        const ClassReduce mode = reduce_mode(how);
        DoubleArray out(table.num_images);
        double* dst = out.mutable_data();
        // Safe without the GIL: inputs are held by the caller, `out` is ours alone.
        ReleasedGil release;
        reduce_class_values(table, values, mode, empty_value, dst, threads);
        return out;
      },
      py::arg("labels"), py::arg("offsets"), py::arg("class_values"), py::arg("reduce"),
      py::arg("empty_value"), py::arg("threads") = 1,
      "Per image: max, mean or sum of class_values over its distinct classes "
      "(empty_value if none).");
}

void register_epochs(py::module_& m) {
  m.def(
      "repeat_factor_epoch_size",
      [](const py::array& factors, uint64_t seed, uint64_t epoch, int threads) {
        const double* data = input_vector<double>(factors, "factors");
        const int64_t n = factors.shape(0);
        // Safe without the GIL: `factors` is held by the caller and only read.
        ReleasedGil release;
        return repeat_factor_epoch_size(data, n, seed, epoch, threads);
      },
      py::arg("factors"), py::arg("seed"), py::arg("epoch"), py::arg("threads") = 1,
      "How many indices the (seed, epoch) repeat-factor epoch holds.");

  m.def(
      "repeat_factor_epoch",
      [](const py::array& factors, uint64_t seed, uint64_t epoch, int threads) {
        const double* data = input_vector<double>(factors, "factors");
        const int64_t n = factors.shape(0);
        std::unique_ptr<RepeatFactorEpoch> plan;
        {
          // Safe without the GIL: `factors` is held by the caller and only read.
          ReleasedGil release;
          plan = std::make_unique<RepeatFactorEpoch>(data, n, seed, epoch, threads);
        }
        Int64Array out(plan->size());
        int64_t* dst = out.mutable_data();
        // Safe without the GIL: the plan and `out` belong to this frame.
        ReleasedGil release;
        plan->write(dst, threads);
        return out;
      },
      py::arg("factors"), py::arg("seed"), py::arg("epoch"), py::arg("threads") = 1,
      "The shuffled image indices of one repeat-factor epoch (stochastic rounding of each "
      "factor).");

  m.def(
      "class_aware_epoch",
      [](const py::array& class_offsets, const py::array& members, int64_t num_sample_class,
         uint64_t seed, uint64_t epoch, int64_t length, int threads) {
        const int64_t* bounds = input_vector<int64_t>(class_offsets, "class_offsets");
        const int64_t num_classes = class_offsets.shape(0) - 1;
        if (num_classes < 0) throw py::value_error("class_offsets must hold num_classes + 1 items");
        const int64_t* member_data = input_vector<int64_t>(members, "members", bounds[num_classes]);
        if (length < 0) throw py::value_error("length must be non-negative");
        Int64Array out(length);
        int64_t* dst = out.mutable_data();
        // Safe without the GIL: inputs are held by the caller, `out` is ours alone.
        ReleasedGil release;
        class_aware_epoch(bounds, member_data, num_classes, num_sample_class, seed, epoch, length,
                          dst, threads);
        return out;
      },
      py::arg("class_offsets"), py::arg("members"), py::arg("num_sample_class"), py::arg("seed"),
      py::arg("epoch"), py::arg("length"), py::arg("threads") = 1,
      "The first `length` indices of the (seed, epoch) class-aware stream.");

  m.def(
      "group_batches",
      [](const py::array& indices, const py::array& group_ids, int64_t num_groups,
         int64_t batch_size, int64_t wanted_batches) {
        const int64_t* index_data = input_vector<int64_t>(indices, "indices");
        if (batch_size <= 0) throw py::value_error("batch_size must be positive");
        const int64_t count = indices.shape(0);
        const int64_t capacity = std::max(count / batch_size, std::max<int64_t>(0, wanted_batches));
        py::array_t<int64_t> out({capacity, batch_size});
        int64_t* dst = out.mutable_data();
        const int64_t num_ids = group_ids.ndim() == 1 ? group_ids.shape(0) : 0;
        // One instantiation per id width; anything else is refused rather than converted.
        auto run = [&](const auto* ids) {
          // Safe without the GIL: inputs are held by the caller, `out` is ours alone.
          ReleasedGil release;
          return group_batches(index_data, count, ids, num_ids, num_groups, batch_size,
                               wanted_batches, dst, capacity);
        };
        int64_t rows = 0;
        if (py::isinstance<py::array_t<uint8_t>>(group_ids))
          rows = run(input_vector<uint8_t>(group_ids, "group_ids"));
        else if (py::isinstance<py::array_t<int32_t>>(group_ids))
          rows = run(input_vector<int32_t>(group_ids, "group_ids"));
        else
          rows = run(input_vector<int64_t>(group_ids, "group_ids"));
        if (rows < capacity) out.resize({rows, batch_size});
        return out;
      },
      py::arg("indices"), py::arg("group_ids"), py::arg("num_groups"), py::arg("batch_size"),
      py::arg("wanted_batches"),
      "torchvision GroupedBatchSampler's batches of a finished index stream, as "
      "[rows, batch_size];\n"
      "group_ids may be uint8, int32 or int64.");
}

}  // namespace

void register_policies(py::module_& m) {
  register_label_statistics(m);
  register_epochs(m);
}

}  // namespace fastloader::bindings
