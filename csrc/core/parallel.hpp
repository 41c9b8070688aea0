// Splits [0, count) over short-lived std::threads; no pool, so nothing lives across fork().
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <new>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace fastloader {

namespace detail {
// How parallel_for starts a thread; tests pass one that fails to prove the inline fallback.
struct StartStdThread {
  template <typename Task>
  std::thread operator()(Task&& task) const {
    return std::thread(std::forward<Task>(task));
  }
};
}  // namespace detail

// parallel_for with a caller-chosen way of starting threads (see parallel_for).
template <typename StartThread, typename Body>
void parallel_for_using(StartThread&& start_thread, int64_t count, int threads,
                        int64_t min_per_thread, Body&& body) {
  if (count <= 0) return;
  const int64_t useful = std::max<int64_t>(1, count / std::max<int64_t>(1, min_per_thread));
  const int n = static_cast<int>(std::min<int64_t>(std::max(1, threads), useful));
  if (n == 1) {
    body(int64_t{0}, count);
    return;
  }
  const int64_t step = (count + n - 1) / n;
  const auto run = [&](int t, std::exception_ptr& error) {
    const int64_t begin = std::min(count, t * step), end = std::min(count, begin + step);
    try {
      if (begin < end) body(begin, end);
    } catch (...) {
      error = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  workers.reserve(static_cast<size_t>(n - 1));
  int started = 1;
  for (; started < n; ++started) {
    const int t = started;
    try {
      workers.push_back(start_thread([&run, &errors, t] { run(t, errors[static_cast<size_t>(t)]); }));
    } catch (const std::system_error&) {
      break;  // out of threads (EAGAIN, a process limit): the caller does the remaining ranges
    } catch (const std::bad_alloc&) {
      break;  // no memory for the thread's state: likewise
    }
  }
  run(0, errors[0]);
  for (int t = started; t < n; ++t) run(t, errors[static_cast<size_t>(t)]);
  for (auto& w : workers) w.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Runs body(begin, end) over contiguous ranges. Uses at most `threads` threads and none for work
// smaller than min_per_thread items each; the calling thread takes the first range, and also the
// ranges of any thread that could not be started. Exceptions from the ranges are rethrown on the
// caller (the first range's first).
template <typename Body>
void parallel_for(int64_t count, int threads, int64_t min_per_thread, Body&& body) {
  parallel_for_using(detail::StartStdThread{}, count, threads, min_per_thread,
                     std::forward<Body>(body));
}

}  // namespace fastloader
