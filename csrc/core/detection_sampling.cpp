// Detection sampling policies; see detection_sampling.hpp for the contracts.
// One file past the ~400-line guide: the policies share the label tables and stochastic rounding.
#include "core/detection_sampling.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/parallel.hpp"
#include "core/philox.hpp"

namespace fastloader {
namespace {

constexpr int64_t kMinImagesPerThread = 1 << 15;
// Copies are shuffled by scattering them into random buckets of about this many items (in cache),
// then shuffling each bucket: a uniform permutation, built in parallel.
constexpr int kBucketShift = 14;

// Different purposes draw from different keys, so they never share random bits.
constexpr uint64_t kRoundPurpose = 0x72726f756e64ull;    // "rround"
constexpr uint64_t kBucketPurpose = 0x726275636bull;     // "rbuck"
constexpr uint64_t kShufflePurpose = 0x72736875666cull;  // "rshufl"
constexpr uint64_t kClassPurpose = 0x6361636c617373ull;  // "caclass"
constexpr uint64_t kMemberPurpose = 0x63616d656dull;     // "camem"

uint64_t derive_key(uint64_t seed, uint64_t purpose) { return mix64(mix64(seed) ^ purpose); }

// 64 random bits for items i of [begin, end) in turn: one Philox block serves two neighbours.
class PairedBits {
 public:
  PairedBits(const Philox4x32& rng, uint64_t stream) : rng_(rng), stream_(stream) {}
  uint64_t operator()(uint64_t i) {
    if ((i >> 1) != pair_ || !filled_) {
      block_ = rng_(i >> 1, stream_);
      pair_ = i >> 1;
      filled_ = true;
    }
    return (i & 1) ? high64(block_) : low64(block_);
  }

 private:
  const Philox4x32& rng_;
  uint64_t stream_, pair_ = 0;
  bool filled_ = false;
  Philox4x32::Block block_{};
};

// A counter-based SplitMix64 stream: bits for counter i are mix64(key + i * golden), 2 ns a draw
// where Philox takes 8. Its key is drawn from Philox, so (seed, epoch, position) still fixes it.
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
inline uint64_t counter_bits(uint64_t key, uint64_t counter) {
  return mix64(key + counter * kGolden);
}

uint64_t stream_key(uint64_t seed, uint64_t purpose, uint64_t part, uint64_t epoch) {
  return low64(Philox4x32(derive_key(seed, purpose))(part, epoch));
}

// Fixed ranges over [0, count) for kernels that keep per-range state (histograms, cursors).
struct Ranges {
  int64_t count, step, number;
  Ranges(int64_t n, int threads) : count(n) {
    const int64_t useful = std::max<int64_t>(1, n / kMinImagesPerThread);
    number = std::max<int64_t>(1, std::min<int64_t>(std::max(1, threads), useful));
    step = std::max<int64_t>(1, (n + number - 1) / number);
    number = std::max<int64_t>(1, (n + step - 1) / step);
  }
  int64_t begin(int64_t k) const { return std::min(count, k * step); }
  int64_t end(int64_t k) const { return std::min(count, (k + 1) * step); }
};

uint32_t rounded_copies(double factor, uint64_t bits) {
  const uint32_t whole = static_cast<uint32_t>(factor);  // factors are in [0, 2^31): truncation
  const double fraction = factor - static_cast<double>(whole);
  return whole + (unit_interval(bits) < fraction ? 1u : 0u);
}

// A stable counting sort by bucket: turns per-range bucket counts (range-major) into each range's
// write cursor per bucket, and returns where each bucket begins (width + 1 entries). The layout is
// the same for every choice of ranges.
std::vector<int64_t> cursors_from_counts(std::vector<int64_t>& counts, int64_t ranges,
                                         size_t width) {
  std::vector<int64_t> bucket_begin(width + 1, 0);
  int64_t running = 0;
  for (size_t b = 0; b < width; ++b) {
    bucket_begin[b] = running;
    for (int64_t k = 0; k < ranges; ++k) {
      int64_t& slot = counts[static_cast<size_t>(k) * width + b];
      const int64_t here = slot;
      slot = running;
      running += here;
    }
  }
  bucket_begin[width] = running;
  return bucket_begin;
}

// Fisher-Yates inside each bucket, from a stream keyed by the bucket: no thread dependence.
void shuffle_buckets(int64_t* out, const std::vector<int64_t>& bucket_begin, uint64_t seed,
                     uint64_t epoch, int threads) {
  const int64_t buckets = static_cast<int64_t>(bucket_begin.size()) - 1;
  parallel_for(buckets, threads, 4, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      const uint64_t key = stream_key(seed, kShufflePurpose, static_cast<uint64_t>(b), epoch);
      const int64_t begin = bucket_begin[static_cast<size_t>(b)];
      for (int64_t j = bucket_begin[static_cast<size_t>(b) + 1] - 1; j > begin; --j) {
        const uint64_t span = static_cast<uint64_t>(j - begin + 1);
        const int64_t r = begin + static_cast<int64_t>(bounded(counter_bits(key, span), span));
        std::swap(out[j], out[r]);
      }
    }
  });
}

// Class-aware visits: visit v belongs to cycle v / classes, each cycle a fresh random order of
// the classes that have images.
std::vector<int64_t> class_visit_order(const std::vector<int64_t>& valid, int64_t visits,
                                       uint64_t seed, uint64_t epoch, int threads) {
  const int64_t classes = static_cast<int64_t>(valid.size());
  const int64_t cycles = (visits + classes - 1) / classes;
  std::vector<int64_t> visit_class(static_cast<size_t>(visits));
  const Philox4x32 rng(derive_key(seed, kClassPurpose));
  const int64_t min_cycles = std::max<int64_t>(1, kMinImagesPerThread / classes);
  parallel_for(cycles, threads, min_cycles, [&](int64_t first, int64_t last) {
    std::vector<int64_t> order;
    for (int64_t t = first; t < last; ++t) {
      order = valid;
      const int64_t base = t * classes, need = std::min(classes, visits - base);
      for (int64_t j = 0; j < need; ++j) {
        const uint64_t bits = low64(rng(static_cast<uint64_t>(base + j), epoch));
        const uint64_t left = static_cast<uint64_t>(classes - j);
        const size_t r = static_cast<size_t>(j) + static_cast<size_t>(bounded(bits, left));
        std::swap(order[static_cast<size_t>(j)], order[r]);
        visit_class[static_cast<size_t>(base + j)] = order[static_cast<size_t>(j)];
      }
    }
  });
  return visit_class;
}

// Class c's draws, sequence[draws[c] .. draws[c + 1]): Fisher-Yates passes over its images, each
// pass a fresh uniform permutation of the class, from a stream keyed by the class.
void class_draw_sequences(const int64_t* class_offsets, const int64_t* members,
                          const std::vector<int64_t>& valid, const std::vector<int64_t>& draws,
                          uint64_t seed, uint64_t epoch, int64_t* sequence, int threads) {
  const uint64_t member_key = derive_key(seed, kMemberPurpose);
  parallel_for(static_cast<int64_t>(valid.size()), threads, 1, [&](int64_t first, int64_t last) {
    std::vector<int64_t> deck;
    for (int64_t v = first; v < last; ++v) {
      const int64_t c = valid[static_cast<size_t>(v)];
      const int64_t size = class_offsets[c + 1] - class_offsets[c];
      deck.assign(members + class_offsets[c], members + class_offsets[c + 1]);
      const Philox4x32 rng(mix64(member_key ^ mix64(static_cast<uint64_t>(c))));
      int64_t* dst = sequence + draws[static_cast<size_t>(c)];
      const int64_t wanted = draws[static_cast<size_t>(c) + 1] - draws[static_cast<size_t>(c)];
      for (int64_t m = 0; m < wanted; ++m) {
        const int64_t j = m % size;
        const uint64_t bits = low64(rng(static_cast<uint64_t>(m), epoch));
        const uint64_t left = static_cast<uint64_t>(size - j);
        const size_t r = static_cast<size_t>(j) + static_cast<size_t>(bounded(bits, left));
        std::swap(deck[static_cast<size_t>(j)], deck[r]);
        dst[m] = deck[static_cast<size_t>(j)];
      }
    }
  });
}

}  // namespace

void check_image_labels(const ImageLabels& t) {
  if (t.num_images < 0 || t.num_classes < 0)
    throw std::invalid_argument("image and class counts must be non-negative");
  if (t.offsets[0] != 0) throw std::invalid_argument("label offsets must start at 0");
  for (int64_t i = 0; i < t.num_images; ++i) {
    if (t.offsets[i + 1] < t.offsets[i])
      throw std::invalid_argument("label offsets must not decrease (image " + std::to_string(i) +
                                  ")");
    for (int64_t j = t.offsets[i]; j < t.offsets[i + 1]; ++j)
      if (t.labels[j] < 0 || t.labels[j] >= t.num_classes)
        throw std::invalid_argument("image " + std::to_string(i) + " holds class " +
                                    std::to_string(t.labels[j]) + ", outside [0, " +
                                    std::to_string(t.num_classes) + ")");
  }
}

void images_per_class(const ImageLabels& t, int64_t* counts) {
  check_image_labels(t);
  // last_image[c] is the last image that counted class c: repeats inside an image count once.
  std::vector<int64_t> last_image(static_cast<size_t>(t.num_classes), -1);
  std::fill(counts, counts + t.num_classes, int64_t{0});
  for (int64_t i = 0; i < t.num_images; ++i)
    for (int64_t j = t.offsets[i]; j < t.offsets[i + 1]; ++j) {
      const size_t c = static_cast<size_t>(t.labels[j]);
      if (last_image[c] != i) {
        last_image[c] = i;
        ++counts[c];
      }
    }
}

void class_members(const ImageLabels& t, const int64_t* class_offsets, int64_t* members) {
  check_image_labels(t);
  std::vector<int64_t> cursor(class_offsets, class_offsets + t.num_classes);
  std::vector<int64_t> last_image(static_cast<size_t>(t.num_classes), -1);
  for (int64_t i = 0; i < t.num_images; ++i)
    for (int64_t j = t.offsets[i]; j < t.offsets[i + 1]; ++j) {
      const size_t c = static_cast<size_t>(t.labels[j]);
      if (last_image[c] == i) continue;
      last_image[c] = i;
      if (cursor[c] >= class_offsets[c + 1])
        throw std::invalid_argument("class_offsets do not match the labels");
      members[cursor[c]++] = i;
    }
}

void reduce_class_values(const ImageLabels& t, const double* class_values, ClassReduce how,
                         double empty_value, double* out, int threads) {
  check_image_labels(t);
  parallel_for(t.num_images, threads, kMinImagesPerThread, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> last_image(static_cast<size_t>(t.num_classes), -1);
    for (int64_t i = begin; i < end; ++i) {
      double sum = 0.0, best = 0.0;
      int64_t distinct = 0;
      for (int64_t j = t.offsets[i]; j < t.offsets[i + 1]; ++j) {
        const size_t c = static_cast<size_t>(t.labels[j]);
        if (last_image[c] == i) continue;
        last_image[c] = i;
        const double v = class_values[c];
        best = distinct == 0 ? v : std::max(best, v);
        sum += v;
        ++distinct;
      }
      if (distinct == 0)
        out[i] = empty_value;
      else if (how == ClassReduce::kMax)
        out[i] = best;
      else if (how == ClassReduce::kSum)
        out[i] = sum;
      else
        out[i] = sum / static_cast<double>(distinct);
    }
  });
}

void check_repeat_factors(const double* factors, int64_t n) {
  constexpr double kMaxFactor = 2147483648.0;  // 2^31: copies of one image fit a uint32
  int64_t ceilings = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double r = factors[i];
    if (!(r >= 0.0 && r < kMaxFactor))
      throw std::invalid_argument("repeat factor " + std::to_string(i) + " is " +
                                  std::to_string(r) + "; expected a finite value in [0, 2^31)");
    ceilings += static_cast<int64_t>(r) + 1;
    if (ceilings >= (int64_t{1} << 62))
      throw std::invalid_argument("the repeat factors sum to more than 2^62 copies");
  }
}

namespace {

// Stochastically rounds every factor for (seed, epoch) and returns the total number of copies;
// writes each image's copies to `counts` when it is not null (the size query needs no array).
int64_t round_copies(const double* factors, int64_t n, uint64_t seed, uint64_t epoch, int threads,
                     uint32_t* counts) {
  check_repeat_factors(factors, n);
  const Philox4x32 rng(derive_key(seed, kRoundPurpose));
  const Ranges ranges(n, threads);
  std::vector<int64_t> totals(static_cast<size_t>(ranges.number), 0);
  parallel_for(ranges.number, threads, 1, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) {
      int64_t total = 0;
      PairedBits bits(rng, epoch);
      for (int64_t i = ranges.begin(k); i < ranges.end(k); ++i) {
        const uint32_t copies = rounded_copies(factors[i], bits(static_cast<uint64_t>(i)));
        if (counts != nullptr) counts[i] = copies;
        total += copies;
      }
      totals[static_cast<size_t>(k)] = total;
    }
  });
  return std::accumulate(totals.begin(), totals.end(), int64_t{0});
}

}  // namespace

RepeatFactorEpoch::RepeatFactorEpoch(const double* factors, int64_t n, uint64_t seed,
                                     uint64_t epoch, int threads)
    : counts_(static_cast<size_t>(n)), seed_(seed), epoch_(epoch) {
  total_ = round_copies(factors, n, seed, epoch, threads, counts_.data());
}

int64_t repeat_factor_epoch_size(const double* factors, int64_t n, uint64_t seed, uint64_t epoch,
                                 int threads) {
  return round_copies(factors, n, seed, epoch, threads, nullptr);
}

void RepeatFactorEpoch::write(int64_t* out, int threads) const {
  const int64_t n = static_cast<int64_t>(counts_.size());
  if (total_ == 0) return;
  const uint64_t buckets = static_cast<uint64_t>(std::max<int64_t>(1, total_ >> kBucketShift));
  const uint64_t bucket_key = stream_key(seed_, kBucketPurpose, 0, epoch_);
  const Ranges ranges(n, threads);
  // Copies are numbered image by image; range k's first copy is number range_start[k].
  std::vector<int64_t> range_start(static_cast<size_t>(ranges.number) + 1, 0);
  for (int64_t k = 0; k < ranges.number; ++k) {
    int64_t copies = 0;
    for (int64_t i = ranges.begin(k); i < ranges.end(k); ++i)
      copies += counts_[static_cast<size_t>(i)];
    range_start[static_cast<size_t>(k) + 1] = range_start[static_cast<size_t>(k)] + copies;
  }
  // Calls body(image, bucket) for each copy of range k, in copy order.
  auto for_each_copy = [&](int64_t k, auto&& body) {
    uint64_t copy = static_cast<uint64_t>(range_start[static_cast<size_t>(k)]);
    for (int64_t i = ranges.begin(k); i < ranges.end(k); ++i)
      for (uint32_t c = 0; c < counts_[static_cast<size_t>(i)]; ++c, ++copy)
        body(i, bounded(counter_bits(bucket_key, copy), buckets));
  };
  const size_t width = static_cast<size_t>(buckets);
  std::vector<int64_t> histogram(static_cast<size_t>(ranges.number) * width, 0);
  parallel_for(ranges.number, threads, 1, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) {
      int64_t* counts = histogram.data() + static_cast<size_t>(k) * width;
      for_each_copy(k, [&](int64_t, uint64_t b) { ++counts[b]; });
    }
  });
  const std::vector<int64_t> bucket_begin = cursors_from_counts(histogram, ranges.number, width);
  parallel_for(ranges.number, threads, 1, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) {
      int64_t* cursor = histogram.data() + static_cast<size_t>(k) * width;
      for_each_copy(k, [&](int64_t image, uint64_t b) { out[cursor[b]++] = image; });
    }
  });
  shuffle_buckets(out, bucket_begin, seed_, epoch_, threads);
}

void class_aware_epoch(const int64_t* class_offsets, const int64_t* members, int64_t num_classes,
                       int64_t per_visit, uint64_t seed, uint64_t epoch, int64_t length,
                       int64_t* out, int threads) {
  if (per_visit <= 0) throw std::invalid_argument("num_sample_class must be positive");
  if (length < 0) throw std::invalid_argument("length must be non-negative");
  std::vector<int64_t> valid;
  for (int64_t c = 0; c < num_classes; ++c)
    if (class_offsets[c + 1] > class_offsets[c]) valid.push_back(c);
  if (valid.empty()) throw std::invalid_argument("no class has an image to sample");
  if (length == 0) return;
  const int64_t classes = static_cast<int64_t>(valid.size());
  const int64_t visits = (length + per_visit - 1) / per_visit;
  const std::vector<int64_t> visit_class = class_visit_order(valid, visits, seed, epoch, threads);
  // A class visited t times before takes its draws t*per_visit .. t*per_visit + per_visit - 1.
  std::vector<int64_t> draws(static_cast<size_t>(num_classes) + 1, 0);
  for (const int64_t c : visit_class) draws[static_cast<size_t>(c) + 1] += per_visit;
  for (size_t c = 0; c < static_cast<size_t>(num_classes); ++c) draws[c + 1] += draws[c];
  std::vector<int64_t> sequence(static_cast<size_t>(draws.back()));
  class_draw_sequences(class_offsets, members, valid, draws, seed, epoch, sequence.data(), threads);
  parallel_for(length, threads, kMinImagesPerThread, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t v = p / per_visit, k = p % per_visit;
      const size_t c = static_cast<size_t>(visit_class[static_cast<size_t>(v)]);
      out[p] = sequence[static_cast<size_t>(draws[c] + (v / classes) * per_visit + k)];
    }
  });
}

template <typename GroupId>
int64_t group_batches(const int64_t* indices, int64_t count, const GroupId* group_ids,
                      int64_t num_ids, int64_t num_groups, int64_t batch_size,
                      int64_t wanted_batches, int64_t* out, int64_t out_rows) {
  if (batch_size <= 0) throw std::invalid_argument("batch_size must be positive");
  if (num_groups < 0 || count < 0) throw std::invalid_argument("counts must be non-negative");
  const size_t groups = static_cast<size_t>(num_groups);
  const size_t width = static_cast<size_t>(batch_size);
  std::vector<std::vector<int64_t>> buffer(groups), first_members(groups);
  // When each group's buffer was (re)opened: torchvision's dict order, which breaks ties below.
  std::vector<int64_t> opened(groups, -1);
  int64_t rows = 0;
  for (int64_t p = 0; p < count; ++p) {
    const int64_t index = indices[p];
    if (index < 0 || index >= num_ids)
      throw std::out_of_range("the sampler yielded index " + std::to_string(index) +
                              " at position " + std::to_string(p) + ", outside [0, " +
                              std::to_string(num_ids) + ") of group_ids");
    // The lookups are random: fetch a few ahead so their cache misses overlap.
    if (p + 16 < count && indices[p + 16] >= 0 && indices[p + 16] < num_ids)
      __builtin_prefetch(group_ids + indices[p + 16]);
    const int64_t g = static_cast<int64_t>(group_ids[index]);
    if (g < 0 || g >= num_groups)
      throw std::invalid_argument("group_ids[" + std::to_string(index) + "] is " +
                                  std::to_string(g) + ", outside [0, " +
                                  std::to_string(num_groups) + ")");
    const size_t slot = static_cast<size_t>(g);
    if (opened[slot] < 0) opened[slot] = p;
    if (first_members[slot].size() < width) first_members[slot].push_back(index);
    std::vector<int64_t>& pending = buffer[slot];
    pending.push_back(index);
    if (pending.size() == width) {
      if (rows >= out_rows) throw std::out_of_range("group_batches: out holds too few rows");
      std::copy(pending.begin(), pending.end(), out + rows * batch_size);
      ++rows;
      pending.clear();
      opened[slot] = p;
    }
  }
  std::vector<size_t> partial;
  for (size_t g = 0; g < groups; ++g)
    if (!buffer[g].empty()) partial.push_back(g);
  std::sort(partial.begin(), partial.end(), [&](size_t a, size_t b) {
    if (buffer[a].size() != buffer[b].size()) return buffer[a].size() > buffer[b].size();
    return opened[a] < opened[b];
  });
  for (const size_t g : partial) {
    if (rows >= wanted_batches) break;
    if (rows >= out_rows) throw std::out_of_range("group_batches: out holds too few rows");
    int64_t* row = out + rows * batch_size;
    std::copy(buffer[g].begin(), buffer[g].end(), row);
    const std::vector<int64_t>& fill = first_members[g];
    for (size_t j = buffer[g].size(), t = 0; j < width; ++j, ++t) row[j] = fill[t % fill.size()];
    ++rows;
  }
  return rows;
}

template int64_t group_batches<uint8_t>(const int64_t*, int64_t, const uint8_t*, int64_t, int64_t,
                                        int64_t, int64_t, int64_t*, int64_t);
template int64_t group_batches<int32_t>(const int64_t*, int64_t, const int32_t*, int64_t, int64_t,
                                        int64_t, int64_t, int64_t*, int64_t);
template int64_t group_batches<int64_t>(const int64_t*, int64_t, const int64_t*, int64_t, int64_t,
                                        int64_t, int64_t, int64_t*, int64_t);

}  // namespace fastloader
