// Python bindings of the weighted sampling kernels: buffer checks, then the kernel without the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "bindings/register.hpp"
#include "core/weighted_sampling.hpp"

namespace py = pybind11;

namespace fastloader::bindings {
namespace {

using WeightArray = py::array_t<double, py::array::c_style>;
using IndexArray = py::array_t<int64_t, py::array::c_style>;

// Accepts only what the Python layer promises to pass: no silent conversion (a converted copy
// would hide the caller's mistake and cost a copy), so a plain py::array is checked and then
// viewed as the typed array.
WeightArray weight_array(const py::array& weights) {
  if (!py::isinstance<WeightArray>(weights) || weights.ndim() != 1)
    throw py::type_error("weights must be a contiguous 1-D float64 numpy array");
  return py::reinterpret_borrow<WeightArray>(weights);
}

// `out` must be a writeable contiguous 1-D int64 array of at least `needed` items.
int64_t* index_out(const py::array& out, int64_t needed) {
  if (!py::isinstance<IndexArray>(out) || out.ndim() != 1)
    throw py::type_error("out must be a contiguous 1-D int64 numpy array");
  if (!out.writeable()) throw py::value_error("out must be writeable, but it is read-only");
  if (needed < 0)
    throw py::value_error("count must be non-negative, but got " + std::to_string(needed));
  if (out.shape(0) < needed)
    throw py::value_error("out holds " + std::to_string(out.shape(0)) + " items, " +
                          std::to_string(needed) + " needed");
  return static_cast<int64_t*>(py::reinterpret_borrow<IndexArray>(out).mutable_data());
}

// k itself, or a ValueError naming it when negative.
int64_t draw_count(int64_t k) {
  if (k < 0) throw py::value_error("k must be non-negative, but got " + std::to_string(k));
  return k;
}

void bind_alias_table(py::module_& m) {
  py::class_<AliasTable, std::shared_ptr<AliasTable>>(
      m, "AliasTable", "Vose alias table over non-negative weights (O(n) build, O(1) per draw).")
      .def(py::init([](const py::array& weights) {
             const WeightArray typed = weight_array(weights);
             const double* data = typed.data();
             const int64_t n = typed.shape(0);
             // Safe without the GIL: `weights` is held by the caller for the whole call and the
             // table is a new object no other thread can see yet.
             py::gil_scoped_release release;
             return std::make_shared<AliasTable>(data, n);
           }),
           py::arg("weights"))
      .def("__len__", &AliasTable::size)
      .def(
          "draw",
          [](const AliasTable& table, uint64_t seed, uint64_t stream, int64_t start,
             const py::array& out, int64_t count, int threads) {
            int64_t* dst = index_out(out, count);
            // Safe without the GIL: the table is immutable after construction and `out` is kept
            // alive by this frame; the kernel touches no Python object.
            py::gil_scoped_release release;
            table.draw(seed, stream, start, count, dst, threads);
          },
          py::arg("seed"), py::arg("stream"), py::arg("start"), py::arg("out"), py::arg("count"),
          py::arg("threads") = 1,
          "Write draws start..start+count-1 of (seed, stream) into out[:count].")
      .def("acceptance",
           [](const AliasTable& t) {
             py::array_t<double> out(t.size());
             auto* dst = out.mutable_data();
             for (const auto& cell : t.cells()) *dst++ = cell.accept;
             return out;
           })
      .def("alias", [](const AliasTable& t) {
        py::array_t<int64_t> out(t.size());
        auto* dst = out.mutable_data();
        for (const auto& cell : t.cells()) *dst++ = cell.alias;
        return out;
      });
}

}  // namespace

void register_sampler(py::module_& m) {
  m.def(
      "stream_version", [] { return kStreamVersion; },
      "Bumped whenever a (seed, stream, position) can give a different index than before.");
  bind_alias_table(m);
  m.def(
      "sample_without_replacement",
      [](const py::array& weights, int64_t k, uint64_t seed, uint64_t stream, const py::array& out,
         int threads) {
        const WeightArray typed = weight_array(weights);
        const double* data = typed.data();
        const int64_t n = typed.shape(0);
        int64_t* dst = index_out(out, draw_count(k));
        // Safe without the GIL: both buffers are owned by the caller's frame for the call, and
        // the kernel's scratch comes from the thread-safe BufferPool.
        py::gil_scoped_release release;
        sample_without_replacement(data, n, k, seed, stream, dst, threads);
      },
      py::arg("weights"), py::arg("k"), py::arg("seed"), py::arg("stream"), py::arg("out"),
      py::arg("threads") = 1,
      "Efraimidis-Spirakis: write k distinct indices, in successive-sampling order, into out[:k].");
}

}  // namespace fastloader::bindings
