// C++ unit tests of the sampling core, without Python: run by ctest (also under ASan/UBSan).
#include <algorithm>
#include <cmath>
#include <cstdint>
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
    std::vector<int64_t> out(static_cast<size_t>(positive));  // exactly k: ASan sees overruns
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
  std::vector<int64_t> full(w.size()), part(1000);
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

// Frozen streams: these digests must hold on every platform and thread count (the aarch64 run of
// `make cpp-test-aarch64` checks them there). A change is a stream change: bump kStreamVersion.
constexpr uint64_t kFrozenWithReplacement = 0x04960df3f8c481bfull;
constexpr uint64_t kFrozenWithoutReplacement = 0xccf2f843afdd7a90ull;

std::vector<double> zipf_weights(size_t n) {
  std::vector<double> w(n);
  for (size_t i = 0; i < n; ++i) w[i] = 1.0 / static_cast<double>(i + 1);
  return w;
}

void streams_match_their_frozen_digests() {
  const std::vector<double> w = zipf_weights(20000);
  const int64_t n = static_cast<int64_t>(w.size());
  for (int threads : {1, 3}) {
    const fastloader::AliasTable table(w.data(), n);
    std::vector<int64_t> with(10000);
    table.draw(20261125, 0, 0, 10000, with.data(), threads);
    const uint64_t with_digest = fastloader_tests::fnv1a(with);
    std::vector<int64_t> without(10000);
    fastloader::sample_without_replacement(w.data(), n, 10000, 20261125, 0, without.data(),
                                           threads);
    const uint64_t without_digest = fastloader_tests::fnv1a(without);
    std::printf("stream digests: with %016llx without %016llx\n",
                static_cast<unsigned long long>(with_digest),
                static_cast<unsigned long long>(without_digest));
    check(with_digest == kFrozenWithReplacement, "frozen with-replacement stream");
    check(without_digest == kFrozenWithoutReplacement, "frozen without-replacement stream");
  }
}

void kept_and_recomputed_keys_agree() {
  std::vector<double> w(300000);
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = (i % 11 == 0) ? 0.0 : 1.0 + static_cast<double>(i % 1013);
  w[5] = 5e-324;  // subnormal: the smallest positive double
  w[7] = 1e308;
  const int64_t n = static_cast<int64_t>(w.size());
  for (int64_t k : {int64_t{1}, int64_t{777}, int64_t{200000}}) {
    std::vector<int64_t> kept(static_cast<size_t>(k)), recomputed(kept.size()),
        threaded(kept.size());
    fastloader::detail::sample_without_replacement(w.data(), n, k, 9, 4, kept.data(), 1, true);
    fastloader::detail::sample_without_replacement(w.data(), n, k, 9, 4, recomputed.data(), 1,
                                                   false);
    fastloader::detail::sample_without_replacement(w.data(), n, k, 9, 4, threaded.data(), 3, true);
    check(std::equal(kept.begin(), kept.begin() + k, recomputed.begin()),
          "stored and recomputed keys give the same draw");
    check(std::equal(kept.begin(), kept.begin() + k, threaded.begin()),
          "the draw does not depend on the thread count");
    check(kept[0] == 7, "the weight 1e308 beside ordinary weights comes first");
  }
}

// The buckets are placed from a sample of every (n / 4096)-th weight; the full checks happen in
// the key pass. Weights off the sample grid must be checked and drawn all the same.
void weights_the_bucket_sample_misses() {
  const int64_t n = 100000, off_grid = 12345;  // stride 24: 12345 is not a sampled index
  std::vector<double> w(static_cast<size_t>(n), 0.0);
  w[off_grid] = 1.0;
  std::vector<int64_t> out(2);
  fastloader::sample_without_replacement(w.data(), n, 1, 0, 0, out.data(), 2);
  check(out[0] == off_grid, "the only positive weight, unsampled, is drawn");
  check_throws<std::invalid_argument>(
      [&] { fastloader::sample_without_replacement(w.data(), n, 2, 0, 0, out.data(), 2); },
      "k above the positive count rejected when the sample saw none");
  w[off_grid + 1] = std::nan("");
  check_throws<std::invalid_argument>(
      [&] { fastloader::sample_without_replacement(w.data(), n, 1, 0, 0, out.data(), 2); },
      "an unsampled NaN weight is rejected");
  // Sampled weights 1, all others 1e-200: their keys lie far beyond the buckets' range.
  for (int64_t i = 0; i < n; ++i) w[static_cast<size_t>(i)] = (i % 24 == 0) ? 1.0 : 1e-200;
  std::vector<int64_t> all(static_cast<size_t>(n)), again(all.size());
  fastloader::detail::sample_without_replacement(w.data(), n, n, 5, 0, all.data(), 2, true);
  fastloader::detail::sample_without_replacement(w.data(), n, n, 5, 0, again.data(), 1, false);
  check(std::equal(all.begin(), all.begin() + n, again.begin()), "same draw either way");
  check(std::all_of(all.begin(), all.begin() + n / 24, [](int64_t i) { return i % 24 == 0; }),
        "the heavy weights come first");
  std::vector<int64_t> sorted(all.begin(), all.begin() + n);
  std::sort(sorted.begin(), sorted.end());
  bool permutation = true;
  for (int64_t i = 0; i < n; ++i) permutation &= sorted[static_cast<size_t>(i)] == i;
  check(permutation, "k = n gives a permutation");
}

void compensated_sum_keeps_small_terms() {
  std::vector<double> values(1000001, 1e-16);
  values[0] = 1.0;  // naive summation loses every 1e-16 term against 1.0
  const double sum =
      fastloader::compensated_sum(values.data(), static_cast<int64_t>(values.size()));
  check(std::fabs(sum - (1.0 + 1e-10)) < 1e-15, "compensated sum of 1 + 1e6 * 1e-16");
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
  const std::vector<double> nan{1.0, std::nan(""), 1.0}, huge{1e308, 1e308};
  check_throws<std::invalid_argument>([&] { fastloader::AliasTable(nan.data(), 3); },
                                      "NaN weight rejected");
  check_throws<std::invalid_argument>([&] { fastloader::AliasTable(huge.data(), 2); },
                                      "overflowing sum rejected");
  check_throws<std::invalid_argument>([&] { fastloader::AliasTable(huge.data(), 0); },
                                      "no weights rejected");
}

// Weights summing below n / DBL_MAX made n / sum overflow to inf: every column looked large and
// the draw was uniform (issue 18 item 11). The table must keep the ratios: accept = w_i * n / sum.
void subnormal_weight_sums_keep_their_ratios() {
  const std::vector<double> w{1e-310, 3e-310};
  const fastloader::AliasTable table(w.data(), 2);
  const auto& cells = table.cells();
  check(cells[0].accept == 0.5 && cells[0].alias == 1 && cells[1].accept == 1.0,
        "subnormal weights [1, 3] give the table of [0.25, 0.75]");
  const std::vector<double> tiny{5e-324, 5e-324, 1e-323};  // the smallest subnormals
  const fastloader::AliasTable smallest(tiny.data(), 3);
  std::vector<int64_t> out(60000);
  smallest.draw(3, 0, 0, static_cast<int64_t>(out.size()), out.data(), 1);
  const auto twos = std::count(out.begin(), out.end(), int64_t{2});
  check(twos > 29000 && twos < 31000, "weight 2 of [1, 1, 2] (subnormal) is drawn half the time");
}

}  // namespace

int main() {
  zero_weights_are_never_drawn();
  chunked_and_threaded_draws_agree();
  without_replacement_is_a_permutation_of_positive_indices();
  partial_draw_is_a_prefix_of_the_full_draw();
  portable_log_is_within_two_ulp_of_libm();
  streams_match_their_frozen_digests();
  kept_and_recomputed_keys_agree();
  weights_the_bucket_sample_misses();
  compensated_sum_keeps_small_terms();
  bad_weights_throw();
  subnormal_weight_sums_keep_their_ratios();
  std::printf("%s\n", failures == 0 ? "all C++ checks passed" : "C++ checks FAILED");
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
