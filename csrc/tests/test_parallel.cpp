// C++ unit tests of parallel_for: every item is visited exactly once, errors reach the caller, and
// the work still runs (on the caller) when threads cannot be started. `make cpp-test-tsan` runs
// them under ThreadSanitizer.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "core/parallel.hpp"
#include "tests/checks.hpp"

namespace {

using fastloader_tests::check;
using fastloader_tests::failures;

// Starts the first `allowed` threads, then fails as std::thread does when the process is out of
// threads (EAGAIN).
struct FailingStarter {
  int allowed;
  std::atomic<int>* started;
  template <typename Task>
  std::thread operator()(Task&& task) const {
    if (started->load() >= allowed)
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
    started->fetch_add(1);
    return std::thread(std::forward<Task>(task));
  }
};

// Each item is visited exactly once, whatever happened to the threads.
bool covers_each_item_once(const std::vector<std::atomic<int>>& visits) {
  for (const auto& v : visits)
    if (v.load() != 1) return false;
  return true;
}

void every_item_once_with_real_threads() {
  for (int threads : {1, 2, 3, 8}) {
    std::vector<std::atomic<int>> visits(100003);
    fastloader::parallel_for(100003, threads, 1000, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) visits[static_cast<size_t>(i)].fetch_add(1);
    });
    check(covers_each_item_once(visits), "parallel_for visits each item once");
  }
}

void runs_inline_when_threads_cannot_start() {
  for (int allowed : {0, 1, 2}) {
    std::atomic<int> started{0};
    std::vector<std::atomic<int>> visits(40000);
    std::atomic<int> calls_on_caller{0};
    const auto caller = std::this_thread::get_id();
    fastloader::parallel_for_using(FailingStarter{allowed, &started}, 40000, 4, 1000,
                                   [&](int64_t begin, int64_t end) {
                                     if (std::this_thread::get_id() == caller) ++calls_on_caller;
                                     for (int64_t i = begin; i < end; ++i)
                                       visits[static_cast<size_t>(i)].fetch_add(1);
                                   });
    check(covers_each_item_once(visits), "all ranges run although threads failed to start");
    check(started.load() == allowed, "threads up to the failure were used");
    if (allowed == 0)  // with threads, how the ranges spread over them is up to the scheduler
      check(calls_on_caller.load() == 4 * fastloader::detail::kChunksPerThread,
            "with no thread started the caller runs every range");
  }
}

void worker_exceptions_reach_the_caller() {
  bool caught = false;
  try {
    fastloader::parallel_for(4000, 4, 1000, [](int64_t begin, int64_t) {
      if (begin >= 2000) throw std::out_of_range("late range");
    });
  } catch (const std::out_of_range&) {
    caught = true;
  }
  check(caught, "an exception in a worker is rethrown on the caller");
}

void threaded_sum_is_exact() {
  std::vector<int64_t> values(1 << 20);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<int64_t>(i);
  std::vector<int64_t> partial(4, 0);
  fastloader::parallel_for(4, 4, 1, [&](int64_t first, int64_t last) {
    for (int64_t p = first; p < last; ++p)
      for (size_t i = static_cast<size_t>(p); i < values.size(); i += 4)
        partial[static_cast<size_t>(p)] += values[i];
  });
  const int64_t n = static_cast<int64_t>(values.size());
  check(partial[0] + partial[1] + partial[2] + partial[3] == n * (n - 1) / 2, "threaded sum");
}

}  // namespace

int main() {
  every_item_once_with_real_threads();
  runs_inline_when_threads_cannot_start();
  worker_exceptions_reach_the_caller();
  threaded_sum_is_exact();
  std::printf("%s\n", failures == 0 ? "all C++ checks passed" : "C++ checks FAILED");
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
