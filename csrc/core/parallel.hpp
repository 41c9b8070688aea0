// Splits [0, count) over short-lived std::threads; no pool, so nothing lives across fork().
#pragma once

#include <algorithm>
#include <atomic>
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

// Chunks per thread: enough that a thread the OS descheduled (a shared machine) or a slow range
// (uneven work) is covered by the others taking more chunks, few enough that taking one (an
// atomic increment) costs nothing next to its work.
constexpr int64_t kChunksPerThread = 8;
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
  const int64_t chunks = std::min<int64_t>(count, n * detail::kChunksPerThread);
  std::atomic<int64_t> next_chunk{0};
  // Takes chunks until none is left; chunk c is [c * count / chunks, (c + 1) * count / chunks).
  const auto work = [&](std::exception_ptr& error) {
    try {
      for (int64_t c = next_chunk.fetch_add(1); c < chunks; c = next_chunk.fetch_add(1))
        body(c * count / chunks, (c + 1) * count / chunks);
    } catch (...) {
      error = std::current_exception();
      next_chunk.store(chunks);  // the others stop at their next chunk
    }
  };
  std::vector<std::thread> workers;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  workers.reserve(static_cast<size_t>(n - 1));
  for (int t = 1; t < n; ++t) {
    try {
      auto& error = errors[static_cast<size_t>(t)];
      workers.push_back(start_thread([&work, &error] { work(error); }));
    } catch (const std::system_error&) {
      break;  // out of threads (EAGAIN, a process limit): the caller takes their chunks too
    } catch (const std::bad_alloc&) {
      break;  // no memory for the thread's state: likewise
    }
  }
  work(errors[0]);
  for (auto& w : workers) w.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Runs body(begin, end) over contiguous ranges that together cover [0, count) once, in no fixed
// order: at most `threads` threads (the caller is one of them) and none for work smaller than
// min_per_thread items each take ranges until none is left, so a slow or descheduled thread does
// not hold the others up. If a thread cannot be started, the threads that run (at least the
// caller) take its share. The first exception of each thread is rethrown on the caller once all
// have stopped; after one, no new range is started.
template <typename Body>
void parallel_for(int64_t count, int threads, int64_t min_per_thread, Body&& body) {
  parallel_for_using(detail::StartStdThread{}, count, threads, min_per_thread,
                     std::forward<Body>(body));
}

}  // namespace fastloader
