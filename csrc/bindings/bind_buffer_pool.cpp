// Python bindings of the host buffer pool: blocks as buffer-protocol objects numpy/torch can view.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "bindings/register.hpp"
#include "bindings/released_gil.hpp"
#include "core/buffer_pool.hpp"

namespace py = pybind11;

namespace fastloader::bindings {

void register_buffer_pool(py::module_& m) {
  // torch.from_numpy(np.asarray(block)) keeps the block alive through the array; when the last
  // tensor viewing it is freed the block's destructor hands the memory back to the pool.
  py::class_<PooledBuffer, std::unique_ptr<PooledBuffer>>(
      m, "PooledBuffer", py::buffer_protocol(),
      "A writeable byte buffer from the recycling pool; returned to the pool when freed.")
      .def(py::init([](int64_t bytes) {
             if (bytes < 0) throw py::value_error("bytes must be non-negative");
             // size_t may be narrower than int64 (32-bit builds): never truncate a request.
             if (static_cast<uint64_t>(bytes) > std::numeric_limits<std::size_t>::max() / 2)
               throw py::value_error("bytes=" + std::to_string(bytes) +
                                     " is more than this platform can address");
             // bad_alloc (MemoryError) when the memory cannot be had.
             // Safe without the GIL: the allocation touches no Python object.
             ReleasedGil release;
             return std::make_unique<PooledBuffer>(static_cast<std::size_t>(bytes));
           }),
           py::arg("bytes"))
      .def_buffer([](PooledBuffer& block) {
        return py::buffer_info(block.data(), 1, py::format_descriptor<unsigned char>::format(), 1,
                               {static_cast<py::ssize_t>(block.size())}, {py::ssize_t{1}},
                               /*readonly=*/false);
      })
      .def("__len__", [](const PooledBuffer& block) { return block.size(); })
      .def_property_readonly("capacity", &PooledBuffer::capacity)
      .def_property_readonly("address",
                             [](const PooledBuffer& block) {
                               return reinterpret_cast<uintptr_t>(block.data());
                             });

  m.def("buffer_pool_stats", [] {
    const BufferPool::Stats s = BufferPool::global().stats();
    py::dict d;
    d["cached_bytes"] = s.cached_bytes;
    d["cached_blocks"] = s.cached_blocks;
    d["live_bytes"] = s.live_bytes;
    d["live_blocks"] = s.live_blocks;
    d["hits"] = s.hits;
    d["misses"] = s.misses;
    d["limit_bytes"] = s.limit_bytes;
    return d;
  });
  m.def(
      "set_buffer_pool_limit",
      [](int64_t bytes) {
        if (bytes < 0) throw py::value_error("limit must be non-negative");
        // A limit above what size_t holds (32-bit builds) means no limit, not a truncated one.
        const uint64_t wanted = static_cast<uint64_t>(bytes);
        BufferPool::global().set_limit(static_cast<std::size_t>(
            std::min<uint64_t>(wanted, std::numeric_limits<std::size_t>::max())));
      },
      py::arg("bytes"), "Most bytes the pool keeps cached for reuse (0 disables caching).");
  m.def("clear_buffer_pool", [] { BufferPool::global().clear(); },
        "Free every cached block now (blocks in use are unaffected).");
}

}  // namespace fastloader::bindings
