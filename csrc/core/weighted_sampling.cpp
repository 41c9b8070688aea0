// Weighted index sampling kernels; see weighted_sampling.hpp for the contracts.
#include "core/weighted_sampling.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "core/huge_pages.hpp"
#include "core/parallel.hpp"
#include "core/philox.hpp"
#include "core/portable_log.hpp"

namespace fastloader {
namespace {

constexpr int64_t kMinDrawsPerThread = 1 << 16;

// Keys of different purposes must not share random bits: the key of a sampler is derived from the
// user's seed and the purpose.
constexpr uint64_t kAliasPurpose = 0x616c696173ull;        // "alias"
constexpr uint64_t kExpKeyPurpose = 0x6578706b6579ull;     // "expkey"

uint64_t derive_key(uint64_t seed, uint64_t purpose) { return mix64(mix64(seed) ^ purpose); }

}  // namespace

int64_t check_weights(const double* weights, int64_t n) {
  if (n <= 0) throw std::invalid_argument("weights must not be empty");
  double total = 0.0;
  int64_t positive = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double w = weights[i];
    if (!std::isfinite(w) || w < 0.0)
      throw std::invalid_argument("weights must be finite and non-negative; weights[" +
                                  std::to_string(i) + "] is " + std::to_string(w));
    total += w;
    positive += (w > 0.0);
  }
  if (!std::isfinite(total)) throw std::invalid_argument("the sum of weights overflows");
  if (positive == 0) throw std::invalid_argument("weights must contain a positive value");
  return positive;
}

AliasTable::AliasTable(const double* weights, int64_t n) {
  check_weights(weights, n);
  long double total = 0.0L;
  for (int64_t i = 0; i < n; ++i) total += weights[i];
  const long double scale = static_cast<long double>(n) / total;

  cells_.resize(static_cast<size_t>(n));
  // One n-sized worklist holds both stacks: small columns grow from the front, large ones from
  // the back. A column is on at most one stack, so they never meet.
  std::vector<int64_t, HugePageAllocator<int64_t>> work(static_cast<size_t>(n));
  int64_t small_top = 0, large_bottom = n;
  for (int64_t i = 0; i < n; ++i) {
    const double scaled = static_cast<double>(weights[i] * scale);
    cells_[static_cast<size_t>(i)] = {scaled, i};
    if (scaled >= 1.0) work[static_cast<size_t>(--large_bottom)] = i;
  }
  // Zero-weight columns go on top of the small stack, so they are paired first, while large
  // columns certainly remain: rounding can never leave one over with acceptance 1.
  for (int64_t i = 0; i < n; ++i)
    if (weights[i] > 0.0 && cells_[static_cast<size_t>(i)].accept < 1.0)
      work[static_cast<size_t>(small_top++)] = i;
  for (int64_t i = 0; i < n; ++i)
    if (weights[i] == 0.0) work[static_cast<size_t>(small_top++)] = i;

  while (small_top > 0 && large_bottom < n) {
    const int64_t s = work[static_cast<size_t>(--small_top)];
    const int64_t l = work[static_cast<size_t>(large_bottom)];
    cells_[static_cast<size_t>(s)].alias = l;
    double& rest = cells_[static_cast<size_t>(l)].accept;
    rest = (rest + cells_[static_cast<size_t>(s)].accept) - 1.0;
    if (rest < 1.0) {
      ++large_bottom;
      work[static_cast<size_t>(small_top++)] = l;
    }
  }
  // Whatever is left is 1 up to rounding. A positive-weight column keeps itself; a zero-weight
  // column must never be drawn whatever the rounding did.
  for (int64_t i = 0; i < small_top; ++i) cells_[static_cast<size_t>(work[i])].accept = 1.0;
  for (int64_t i = large_bottom; i < n; ++i) cells_[static_cast<size_t>(work[i])].accept = 1.0;
  int64_t some_positive = 0;
  while (weights[some_positive] == 0.0) ++some_positive;
  for (int64_t i = 0; i < n; ++i)
    if (weights[i] == 0.0) {
      Cell& cell = cells_[static_cast<size_t>(i)];
      cell.accept = 0.0;
      if (cell.alias == i) cell.alias = some_positive;
    }
}

void AliasTable::draw(uint64_t seed, uint64_t stream, int64_t start, int64_t count, int64_t* out,
                      int threads) const {
  if (start < 0 || count < 0) throw std::out_of_range("draw positions must be non-negative");
  const Philox4x32 rng(derive_key(seed, kAliasPurpose));
  const uint64_t n = static_cast<uint64_t>(size());
  const Cell* cells = cells_.data();
  parallel_for(count, threads, kMinDrawsPerThread, [&](int64_t begin, int64_t end) {
    // Large tables miss the cache on every draw: pick a group of columns and prefetch them all
    // before reading any, so the misses overlap.
    constexpr int64_t kGroup = 16;
    int64_t column[kGroup];
    double coin[kGroup];
    for (int64_t base = begin; base < end; base += kGroup) {
      const int64_t m = std::min(kGroup, end - base);
      for (int64_t j = 0; j < m; ++j) {
        const auto bits = rng(static_cast<uint64_t>(start + base + j), stream);
        column[j] = static_cast<int64_t>(bounded(low64(bits), n));
        coin[j] = unit_interval(high64(bits));
        __builtin_prefetch(cells + column[j]);
      }
      for (int64_t j = 0; j < m; ++j) {
        const Cell& cell = cells[column[j]];
        out[base + j] = coin[j] < cell.accept ? column[j] : cell.alias;
      }
    }
  });
}

namespace {

// Maps doubles to unsigned integers with the same order (IEEE-754 sign-magnitude to two's order).
uint64_t ordered_bits(double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return (bits >> 63) ? ~bits : (bits | (uint64_t{1} << 63));
}

struct KeyedIndex {
  uint64_t key;
  int64_t index;
  // (key, index) is a total order: the result cannot depend on how items were scattered.
  bool operator<(const KeyedIndex& o) const { return key != o.key ? key < o.key : index < o.index; }
};
static_assert(sizeof(KeyedIndex) == 2 * sizeof(int64_t), "pairs must fit two int64 slots");

// The right shift that maps (key - low) for keys in [low, high] onto at most 2^bucket_bits buckets.
int bucket_shift(uint64_t low, uint64_t high, int bucket_bits) {
  int span = 0;
  while (span < 64 && ((high - low) >> span) != 0) ++span;
  return std::max(0, span - bucket_bits);
}

void insertion_sort(KeyedIndex* first, KeyedIndex* last) {
  for (KeyedIndex* next = first + 1; next < last; ++next) {
    const KeyedIndex item = *next;
    KeyedIndex* hole = next;
    for (; hole > first && item < hole[-1]; --hole) *hole = hole[-1];
    *hole = item;
  }
}

// Sorts one top-level bucket (a few thousand pairs, in cache): a counting pass on the next key
// bits into about 4 items per sub-bucket, then insertion sort of each sub-bucket.
void sort_bucket(KeyedIndex* first, KeyedIndex* last, std::vector<KeyedIndex>& scratch,
                 std::vector<int64_t>& counts) {
  const int64_t m = last - first;
  if (m <= 32) {
    insertion_sort(first, last);
    return;
  }
  uint64_t low = first->key, high = first->key;
  for (const KeyedIndex* item = first; item < last; ++item) {
    low = std::min(low, item->key);
    high = std::max(high, item->key);
  }
  int bits = 1;
  while ((int64_t{1} << (bits + 2)) < m && bits < 20) ++bits;
  const int shift = bucket_shift(low, high, bits);
  const size_t subs = static_cast<size_t>(((high - low) >> shift) + 1);
  counts.assign(subs + 1, 0);
  for (const KeyedIndex* item = first; item < last; ++item) ++counts[((item->key - low) >> shift) + 1];
  for (size_t b = 0; b < subs; ++b) counts[b + 1] += counts[b];
  scratch.resize(static_cast<size_t>(m));
  for (const KeyedIndex* item = first; item < last; ++item)
    scratch[static_cast<size_t>(counts[(item->key - low) >> shift]++)] = *item;
  // counts[b] is now the end of sub-bucket b.
  for (size_t b = 0, begin = 0; b < subs; ++b) {
    const size_t end = static_cast<size_t>(counts[b]);
    if (end - begin > 64)
      std::sort(scratch.data() + begin, scratch.data() + end);
    else
      insertion_sort(scratch.data() + begin, scratch.data() + end);
    begin = end;
  }
  std::copy(scratch.begin(), scratch.end(), first);
}

}  // namespace

void sample_without_replacement(const double* weights, int64_t n, int64_t k, uint64_t seed,
                                uint64_t stream, int64_t* out, int threads) {
  const int64_t positive = check_weights(weights, n);
  if (k < 0 || k > positive)
    throw std::invalid_argument("cannot draw " + std::to_string(k) +
                                " samples without replacement from " + std::to_string(positive) +
                                " positive weights");
  if (k == 0) return;
  const Philox4x32 rng(derive_key(seed, kExpKeyPurpose));

  // Keys E_i / w_i with weights scaled to max 1 cannot overflow unless two weights differ by more
  // than ~1e300; then log(E_i) - log(w_i) is used. E_i = -log(U_i) through portable_log, so keys
  // are bit-identical on every platform.
  const double largest = *std::max_element(weights, weights + n);
  double smallest = largest;
  for (int64_t i = 0; i < n; ++i)
    if (weights[i] > 0.0) smallest = std::min(smallest, weights[i]);
  const bool log_keys = smallest / largest < 1e-300;
  // Calls visit(i, key) for each positive-weight item in [begin, end). One Philox block holds the
  // bits of an even/odd pair of items, so it is computed once per pair.
  const auto for_each_key = [&](int64_t begin, int64_t end, auto&& visit) {
    Philox4x32::Block bits{};
    for (int64_t i = begin; i < end; ++i) {
      if (i == begin || (i & 1) == 0) bits = rng(static_cast<uint64_t>(i) >> 1, stream);
      const double w = weights[i];
      if (w == 0.0) continue;
      const double exponential =
          -portable_log(open_closed_unit((i & 1) ? high64(bits) : low64(bits)));
      visit(i, ordered_bits(log_keys ? portable_log(exponential) - portable_log(w)
                                     : exponential / (w / largest)));
    }
  };

  // Buckets on the top bits of (key - low). E <= 36.8 bounds the keys from above; below `low`
  // (E < 2^-30, about one item in 1e9) everything shares bucket 0. The key bits of a double grow
  // with its exponent, so buckets are roughly logarithmic in the key; a skewed distribution only
  // makes them larger (slower), never the result different.
  const uint64_t low = ordered_bits(log_keys ? -21.0 - portable_log(largest) : 0x1p-30);
  const uint64_t high = ordered_bits(log_keys ? portable_log(36.8) - portable_log(smallest)
                                              : 36.8 / (smallest / largest));
  // Few enough buckets that their counters stay in cache and the scatter has few write streams;
  // each bucket is then sorted in cache by sort_bucket.
  int bucket_bits = 1;
  while ((int64_t{1} << (bucket_bits + 8)) < positive && bucket_bits < 12) ++bucket_bits;
  const int shift = bucket_shift(low, high, bucket_bits);
  const size_t buckets = static_cast<size_t>(((high - low) >> shift) + 1);
  const auto bucket_of = [&](uint64_t key) {
    return key <= low ? size_t{0} : std::min(buckets - 1, static_cast<size_t>((key - low) >> shift));
  };

  // Slices of the items, one per thread, for both passes. Keys are computed twice rather than
  // stored: an n-sized key array costs more in memory traffic than the recomputation.
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, n / kMinDrawsPerThread));
  const int64_t step = (n + parts - 1) / parts;
  const auto slice_begin = [&](int64_t p) { return std::min(n, p * step); };
  const auto slice_end = [&](int64_t p) { return std::min(n, (p + 1) * step); };

  std::vector<std::vector<int64_t>> histogram(static_cast<size_t>(parts));
  parallel_for(parts, static_cast<int>(parts), 1, [&](int64_t first, int64_t last) {
    for (int64_t p = first; p < last; ++p) {
      auto& h = histogram[static_cast<size_t>(p)];
      h.assign(buckets, 0);
      for_each_key(slice_begin(p), slice_end(p), [&](int64_t, uint64_t key) { ++h[bucket_of(key)]; });
    }
  });
  // Buckets before last_bucket are taken whole; last_bucket holds the k-th smallest key.
  size_t last_bucket = 0;
  int64_t taken_whole = 0, in_last_bucket = 0;
  for (;; ++last_bucket) {
    in_last_bucket = 0;
    for (const auto& h : histogram) in_last_bucket += h[last_bucket];
    if (taken_whole + in_last_bucket >= k) break;
    taken_whole += in_last_bucket;
  }
  // Each (slice, bucket) pair writes from its own offset: whole buckets go to the pairs area
  // (out's 2k slots), the straddling bucket to a small array.
  std::vector<int64_t> bucket_start(last_bucket + 1, 0);
  for (size_t b = 0, offset = 0; b <= last_bucket; ++b) {
    bucket_start[b] = static_cast<int64_t>(offset);
    for (auto& h : histogram) {
      const int64_t here = h[b];
      h[b] = static_cast<int64_t>(offset);
      offset += static_cast<size_t>(here);
    }
  }
  KeyedIndex* pairs = reinterpret_cast<KeyedIndex*>(out);
  std::vector<KeyedIndex> straddling(static_cast<size_t>(in_last_bucket));
  parallel_for(parts, static_cast<int>(parts), 1, [&](int64_t first, int64_t last) {
    for (int64_t p = first; p < last; ++p) {
      auto& position = histogram[static_cast<size_t>(p)];
      for_each_key(slice_begin(p), slice_end(p), [&](int64_t i, uint64_t key) {
        const size_t b = bucket_of(key);
        if (b < last_bucket)
          pairs[position[b]++] = {key, i};
        else if (b == last_bucket)
          straddling[static_cast<size_t>(position[b]++ - taken_whole)] = {key, i};
      });
    }
  });
  parallel_for(static_cast<int64_t>(last_bucket) + 1, threads, 64, [&](int64_t first, int64_t last) {
    std::vector<KeyedIndex> scratch;
    std::vector<int64_t> counts;
    for (int64_t b = first; b < last; ++b) {
      if (b == static_cast<int64_t>(last_bucket))
        sort_bucket(straddling.data(), straddling.data() + straddling.size(), scratch, counts);
      else
        sort_bucket(pairs + bucket_start[static_cast<size_t>(b)],
                    pairs + bucket_start[static_cast<size_t>(b) + 1], scratch, counts);
    }
  });
  std::copy(straddling.begin(), straddling.begin() + (k - taken_whole), pairs + taken_whole);
  // Compact the k pairs to k indices in place: slot j is written after pair j/2 <= j was read.
  for (int64_t j = 0; j < k; ++j) {
    const int64_t index = pairs[j].index;
    std::memcpy(out + j, &index, sizeof index);
  }
}

}  // namespace fastloader
