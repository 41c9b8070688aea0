// Python bindings of the weighted sampling kernels: buffer checks, then the kernel without the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "bindings/buffer_checks.hpp"
#include "bindings/register.hpp"
#include "bindings/released_gil.hpp"
#include "core/weighted_sampling.hpp"

namespace py = pybind11;

namespace fastloader::bindings {
namespace {

void bind_alias_table(py::module_& m) {
  py::class_<AliasTable, std::shared_ptr<AliasTable>>(
      m, "AliasTable", "Vose alias table over non-negative weights (O(n) build, O(1) per draw).")
      .def(py::init([](const py::array& weights) {
             const double* data = input_vector<double>(weights, "weights");
             const int64_t n = weights.shape(0);
             // Safe without the GIL: `weights` is held by the caller for the whole call and the
             // table is a new object no other thread can see yet.
             ReleasedGil release;
             return std::make_shared<AliasTable>(data, n);
           }),
           py::arg("weights"))
      .def("__len__", &AliasTable::size)
      .def(
          "draw",
          [](const AliasTable& table, uint64_t seed, uint64_t stream, int64_t start,
             const py::array& out, int64_t count, int threads) {
            int64_t* dst = output_vector<int64_t>(out, "out", non_negative(count, "count"));
            // Safe without the GIL: the table is immutable after construction and `out` is kept
            // alive by this frame; the kernel touches no Python object.
            ReleasedGil release;
            table.draw(seed, stream, start, count, dst, threads);
          },
          py::arg("seed"), py::arg("stream"), py::arg("start"), py::arg("out"), py::arg("count"),
          py::arg("threads") = 1,
          "Write draws start..start+count-1 of (seed, stream) into out[:count].")
      .def(
          "draw_strided",
          [](const AliasTable& table, uint64_t seed, uint64_t stream, int64_t start,
             int64_t stride, const py::array& out, int64_t count, int threads) {
            int64_t* dst = output_vector<int64_t>(out, "out", non_negative(count, "count"));
            // Safe without the GIL: as for draw.
            ReleasedGil release;
            table.draw_strided(seed, stream, start, stride, count, dst, threads);
          },
          py::arg("seed"), py::arg("stream"), py::arg("start"), py::arg("stride"), py::arg("out"),
          py::arg("count"), py::arg("threads") = 1,
          "Write draws start, start+stride, ... (count of them) of (seed, stream) into out[:count].")
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
        const double* data = input_vector<double>(weights, "weights");
        const int64_t n = weights.shape(0);
        int64_t* dst = output_vector<int64_t>(out, "out", non_negative(k, "k"));
        // Safe without the GIL: both buffers are owned by the caller's frame for the call, and
        // the kernel's scratch comes from the thread-safe BufferPool.
        ReleasedGil release;
        sample_without_replacement(data, n, k, seed, stream, dst, threads);
      },
      py::arg("weights"), py::arg("k"), py::arg("seed"), py::arg("stream"), py::arg("out"),
      py::arg("threads") = 1,
      "Efraimidis-Spirakis: write k distinct indices, in successive-sampling order, into out[:k].");
}

}  // namespace fastloader::bindings
