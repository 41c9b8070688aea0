// Splits [0, count) over short-lived std::threads; no pool, so nothing lives across fork().
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace fastloader {

// Runs body(begin, end) over contiguous ranges. Uses at most `threads` threads and none for work
// smaller than min_per_thread items each; the calling thread takes the first range. Exceptions
// from worker threads are rethrown on the caller.
template <typename Body>
void parallel_for(int64_t count, int threads, int64_t min_per_thread, Body&& body) {
  if (count <= 0) return;
  int64_t useful = std::max<int64_t>(1, count / std::max<int64_t>(1, min_per_thread));
  const int n = static_cast<int>(std::min<int64_t>(std::max(1, threads), useful));
  if (n == 1) {
    body(int64_t{0}, count);
    return;
  }
  const int64_t step = (count + n - 1) / n;
  std::vector<std::thread> workers;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  workers.reserve(static_cast<size_t>(n - 1));
  for (int t = 1; t < n; ++t) {
    const int64_t begin = std::min(count, t * step), end = std::min(count, begin + step);
    workers.emplace_back([&, t, begin, end] {
      try {
        body(begin, end);
      } catch (...) {
        errors[static_cast<size_t>(t)] = std::current_exception();
      }
    });
  }
  try {
    body(int64_t{0}, std::min(count, step));
  } catch (...) {
    errors[0] = std::current_exception();
  }
  for (auto& w : workers) w.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace fastloader
