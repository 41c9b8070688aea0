// C++ unit tests of the detection sampling core, without Python: run by ctest (ASan/UBSan too).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>
#include <stdexcept>
#include <vector>

#include "core/detection_sampling.hpp"
#include "tests/checks.hpp"

namespace {

using fastloader_tests::check;
using fastloader_tests::check_throws;
using fastloader_tests::failures;

void repeat_epochs_round_each_factor_and_ignore_threads() {
  std::vector<double> factors(50000);
  for (size_t i = 0; i < factors.size(); ++i) factors[i] = 0.25 * static_cast<double>(i % 13);
  const int64_t n = static_cast<int64_t>(factors.size());
  const fastloader::RepeatFactorEpoch one(factors.data(), n, 3, 7, 1);
  const fastloader::RepeatFactorEpoch three(factors.data(), n, 3, 7, 3);
  check(one.size() == three.size(), "epoch size does not depend on threads");
  check(one.size() == fastloader::repeat_factor_epoch_size(factors.data(), n, 3, 7, 2),
        "epoch size agrees with repeat_factor_epoch_size");
  std::vector<int64_t> a(static_cast<size_t>(one.size())), b(a.size());
  one.write(a.data(), 1);
  three.write(b.data(), 4);
  check(a == b, "epoch indices do not depend on threads");
  std::vector<int64_t> copies(factors.size(), 0);
  for (const int64_t i : a) ++copies[static_cast<size_t>(i)];
  bool rounded = true;
  for (size_t i = 0; i < factors.size(); ++i)
    rounded &= copies[i] == static_cast<int64_t>(std::floor(factors[i])) ||
               copies[i] == static_cast<int64_t>(std::ceil(factors[i]));
  check(rounded, "each image appears floor(r) or ceil(r) times");
  check(!std::is_sorted(a.begin(), a.end()), "the epoch is shuffled");
}

void bad_repeat_factors_throw() {
  const std::vector<double> negative{1.0, -1.0}, huge{1.0, 4294967296.0}, nan{std::nan("")};
  check_throws<std::invalid_argument>([&] { fastloader::check_repeat_factors(negative.data(), 2); },
                                      "a negative factor is refused");
  check_throws<std::invalid_argument>([&] { fastloader::check_repeat_factors(huge.data(), 2); },
                                      "a factor of 2^32 is refused");
  check_throws<std::invalid_argument>([&] { fastloader::check_repeat_factors(nan.data(), 1); },
                                      "a NaN factor is refused");
}

void class_aware_cycles_cover_every_class() {
  // Classes 0 (3 images), 1 (none), 2 (1 image), 3 (5 images).
  const std::vector<int64_t> class_offsets{0, 3, 3, 4, 9};
  const std::vector<int64_t> members{0, 1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<int64_t> out(300);
  fastloader::class_aware_epoch(class_offsets.data(), members.data(), 4, 1, 1, 0, 300, out.data(),
                                2);
  bool covered = true;
  for (size_t cycle = 0; cycle < 100; ++cycle) {
    std::set<int> classes;
    for (size_t j = 0; j < 3; ++j) {
      const int64_t image = out[cycle * 3 + j];
      classes.insert(image < 3 ? 0 : image == 3 ? 2 : 3);
    }
    covered &= classes == std::set<int>{0, 2, 3};
  }
  check(covered, "each cycle visits every class with images once");
  const std::vector<int64_t> empty_offsets{0, 0, 0};
  check_throws<std::invalid_argument>(
      [&] {
        fastloader::class_aware_epoch(empty_offsets.data(), members.data(), 2, 1, 1, 0, 5,
                                      out.data(), 1);
      },
      "no class with images is refused");
}

void grouped_batches_fill_the_fullest_buffer_first() {
  // Group of each index: 0,1,0,1,0,2 ; batch 2 -> [0,2] then leftovers {1:[1,3]->full [1,3]},
  // then group 0 holds [4], group 2 holds [5]: tie of size 1, group 0 opened first (at 2).
  const std::vector<uint8_t> group_ids{0, 1, 0, 1, 0, 2};
  const std::vector<int64_t> indices{0, 1, 2, 3, 4, 5};
  std::vector<int64_t> out(8, -1);
  const int64_t rows = fastloader::group_batches(indices.data(), 6, group_ids.data(), 6, 3, 2, 3,
                                                 out.data(), 4);
  check(rows == 3, "len(sampler) // batch_size rows");
  const std::vector<int64_t> expected{0, 2, 1, 3, 4, 0};
  check(std::equal(expected.begin(), expected.end(), out.begin()),
        "the tie goes to the buffer opened first, filled with the group's first index");
  const std::vector<int64_t> outside{0, 9};
  check_throws<std::out_of_range>(
      [&] {
        fastloader::group_batches(outside.data(), 2, group_ids.data(), 6, 3, 2, 1, out.data(), 4);
      },
      "an index outside group_ids is refused");
}

void labels_outside_the_class_range_throw() {
  const std::vector<int64_t> labels{0, 3}, offsets{0, 1, 2};
  const fastloader::ImageLabels table{labels.data(), offsets.data(), 2, 3};
  std::vector<int64_t> counts(3);
  check_throws<std::invalid_argument>([&] { fastloader::images_per_class(table, counts.data()); },
                                      "class 3 of 3 is refused");
}

}  // namespace

int main() {
  repeat_epochs_round_each_factor_and_ignore_threads();
  bad_repeat_factors_throw();
  class_aware_cycles_cover_every_class();
  grouped_batches_fill_the_fullest_buffer_first();
  labels_outside_the_class_range_throw();
  if (failures == 0) std::printf("test_detection_sampling: all passed\n");
  return failures == 0 ? 0 : 1;
}
