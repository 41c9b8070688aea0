// C++ unit tests of the sampling core, without Python: run by ctest (also under ASan/UBSan).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <set>
#include <stdexcept>
#include <vector>

#include "core/portable_log.hpp"
#include "core/weighted_sampling.hpp"
#include "tests/checks.hpp"

namespace {

using fastloader_tests::check;
using fastloader_tests::check_throws;
using fastloader_tests::failures;

void zero_weights_are_never_drawn() {
  const std::vector<double> w{0.0, 1e-300, 0.0, 3.0, 0.0, 1e300, 0.0};
  const fastloader::AliasTable table(w.data(), static_cast<int64_t>(w.size()));
  std::vector<int64_t> out(100000);
  table.draw(1, 2, 0, static_cast<int64_t>(out.size()), out.data(), 2);
  check(std::all_of(out.begin(), out.end(), [&](int64_t i) { return w[i] > 0.0; }),
        "alias draws never return a zero-weight index");
}

void chunked_and_threaded_draws_agree() {
  std::vector<double> w(300000);
  std::iota(w.begin(), w.end(), 1.0);
  const fastloader::AliasTable table(w.data(), static_cast<int64_t>(w.size()));
  std::vector<int64_t> whole(200000), pieces(200000);
  table.draw(7, 0, 0, 200000, whole.data(), 1);
  table.draw(7, 0, 0, 123457, pieces.data(), 3);
  table.draw(7, 0, 123457, 200000 - 123457, pieces.data() + 123457, 2);
  check(whole == pieces, "draws do not depend on chunking or thread count");
}

void without_replacement_is_a_permutation_of_positive_indices() {
  for (int threads : {1, 2, 4}) {
    std::vector<double> w(250000, 1.0);
    for (size_t i = 0; i < w.size(); i += 5) w[i] = 0.0;
    w[3] = 1e-200;  // extreme ratio: the log-key path
    w[4] = 1e200;
    const int64_t positive = static_cast<int64_t>(std::count_if(w.begin(), w.end(), [](double v) { return v > 0; }));
    std::vector<int64_t> out(2 * static_cast<size_t>(positive));
    fastloader::sample_without_replacement(w.data(), static_cast<int64_t>(w.size()), positive, 3, 0,
                                           out.data(), threads);
    std::vector<int64_t> got(out.begin(), out.begin() + positive);
    check(got[0] == 4, "the dominant weight comes first");
    std::sort(got.begin(), got.end());
    check(std::adjacent_find(got.begin(), got.end()) == got.end(), "no index repeats");
    check(std::all_of(got.begin(), got.end(), [&](int64_t i) { return w[i] > 0.0; }),
          "only positive weights are drawn");
  }
}

void partial_draw_is_a_prefix_of_the_full_draw() {
  std::vector<double> w(100000);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 1.0 + static_cast<double>(i % 97);
  const int64_t n = static_cast<int64_t>(w.size());
  std::vector<int64_t> full(2 * w.size()), part(2 * 1000);
  fastloader::sample_without_replacement(w.data(), n, n, 11, 5, full.data(), 2);
  fastloader::sample_without_replacement(w.data(), n, 1000, 11, 5, part.data(), 1);
  check(std::equal(part.begin(), part.begin() + 1000, full.begin()),
        "k smallest keys are the first k of the full order");
}

void portable_log_is_within_two_ulp_of_libm() {
  double worst = 0.0;
  // Powers, values next to 1 (where cancellation bites) and subnormals.
  for (int e = -1074; e <= 1023; e += 7)
    for (double f : {1.0, 1.25, 1.4142135623730951, 1.5, 1.9999999999999998}) {
      const double x = std::ldexp(f, e);
      if (x == 0.0 || !std::isfinite(x)) continue;
      const double exact = std::log(x);
      const double ulp = std::fabs(std::nextafter(exact, INFINITY) - exact);
      if (exact != 0.0) worst = std::max(worst, std::fabs(fastloader::portable_log(x) - exact) / ulp);
    }
  for (double x : {1.0 - 0x1p-53, 1.0 + 0x1p-52, 1.0 - 1e-9, 1.0 + 1e-9}) {
    const double exact = std::log(x);
    const double ulp = std::fabs(std::nextafter(exact, INFINITY) - exact);
    worst = std::max(worst, std::fabs(fastloader::portable_log(x) - exact) / ulp);
  }
  check(worst <= 2.0, "portable_log within 2 ulp of libm");
  check(fastloader::portable_log(1.0) == 0.0, "portable_log(1) == 0");
  check(std::isinf(fastloader::portable_log(0.0)) && fastloader::portable_log(0.0) < 0,
        "portable_log(0) == -inf");
}

void bad_weights_throw() {
  const std::vector<double> negative{1.0, -1.0}, zeros{0.0, 0.0};
  check_throws<std::invalid_argument>([&] { fastloader::AliasTable(negative.data(), 2); },
                                      "negative weight rejected");
  check_throws<std::invalid_argument>([&] { fastloader::AliasTable(zeros.data(), 2); },
                                      "all-zero weights rejected");
  std::vector<int64_t> out(8);
  const std::vector<double> two{1.0, 0.0, 1.0};
  check_throws<std::invalid_argument>(
      [&] { fastloader::sample_without_replacement(two.data(), 3, 3, 0, 0, out.data(), 1); },
      "k above the positive count rejected");
}

}  // namespace

int main() {
  zero_weights_are_never_drawn();
  chunked_and_threaded_draws_agree();
  without_replacement_is_a_permutation_of_positive_indices();
  partial_draw_is_a_prefix_of_the_full_draw();
  portable_log_is_within_two_ulp_of_libm();
  bad_weights_throw();
  std::printf("%s\n", failures == 0 ? "all C++ checks passed" : "C++ checks FAILED");
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
