// C++ unit tests of AliasTable::draw_strided: a strided draw is a sub-sequence of the contiguous one.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "core/weighted_sampling.hpp"
#include "tests/checks.hpp"

namespace {

using fastloader_tests::check;
using fastloader_tests::check_throws;
using fastloader_tests::failures;

void strided_draws_are_the_contiguous_stream_at_those_positions() {
  std::vector<double> w(200000);
  std::iota(w.begin(), w.end(), 1.0);
  w[7] = 0.0;
  const fastloader::AliasTable table(w.data(), static_cast<int64_t>(w.size()));
  std::vector<int64_t> whole(300000);
  table.draw(11, 3, 0, static_cast<int64_t>(whole.size()), whole.data(), 2);
  for (int64_t stride : {1, 2, 3, 7}) {
    for (int64_t start : {0, 1, 5}) {
      const int64_t count = (static_cast<int64_t>(whole.size()) - start) / stride;
      std::vector<int64_t> strided(static_cast<size_t>(count));
      table.draw_strided(11, 3, start, stride, count, strided.data(), 3);
      bool same = true;
      for (int64_t i = 0; i < count; ++i)
        same = same && strided[static_cast<size_t>(i)] == whole[static_cast<size_t>(start + i * stride)];
      check(same, "draw_strided equals draw at positions start + i * stride");
    }
  }
}

void bad_strided_arguments_throw() {
  const std::vector<double> w{1.0, 2.0};
  const fastloader::AliasTable table(w.data(), 2);
  std::vector<int64_t> out(4);
  check_throws<std::out_of_range>([&] { table.draw_strided(0, 0, 0, 0, 2, out.data(), 1); },
                                  "stride 0 rejected");
  check_throws<std::out_of_range>([&] { table.draw_strided(0, 0, -1, 1, 2, out.data(), 1); },
                                  "negative start rejected");
  const int64_t big = std::numeric_limits<int64_t>::max() / 2;
  check_throws<std::out_of_range>([&] { table.draw_strided(0, 0, big, big, 4, out.data(), 1); },
                                  "overflowing last position rejected");
  table.draw_strided(0, 0, 5, 3, 0, out.data(), 1);  // count 0 writes nothing and is fine
}

}  // namespace

int main() {
  strided_draws_are_the_contiguous_stream_at_those_positions();
  bad_strided_arguments_throw();
  std::printf("%s\n", failures == 0 ? "all strided C++ checks passed" : "strided C++ checks FAILED");
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
