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

struct KeyedIndex {
  uint64_t key;  // order-preserving image of the double key
  int64_t index;
};

// Maps doubles to unsigned integers with the same order (IEEE-754 sign-magnitude to two's order).
uint64_t ordered_bits(double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return (bits >> 63) ? ~bits : (bits | (uint64_t{1} << 63));
}

using KeyedIndices = std::vector<KeyedIndex, HugePageAllocator<KeyedIndex>>;

bool key_less(const KeyedIndex& a, const KeyedIndex& b) {
  return a.key != b.key ? a.key < b.key : a.index < b.index;
}

// The k smallest of items by (key, index), in that order, at the front of items; the rest dropped.
// One bucketing pass on the top bits of (key - smallest key), then a sort of each small bucket up
// to the one holding the k-th item. The key bits of a positive double grow with its exponent, so
// the buckets are roughly logarithmic in the key, which keeps them small for these keys; a bad
// distribution only makes buckets larger (slower), never the result different.
void select_smallest(KeyedIndices& items, int64_t k) {
  const int64_t m = static_cast<int64_t>(items.size());
  k = std::min(k, m);
  if (k == 0 || m < 64) {
    std::sort(items.begin(), items.end(), key_less);
    items.resize(static_cast<size_t>(k));
    return;
  }
  uint64_t lowest = items[0].key, highest = items[0].key;
  for (const auto& item : items) {
    lowest = std::min(lowest, item.key);
    highest = std::max(highest, item.key);
  }
  int bucket_bits = 1;  // about 8 items per bucket
  while ((int64_t{1} << (bucket_bits + 3)) < m && bucket_bits < 24) ++bucket_bits;
  int span_bits = 0;
  while (span_bits < 64 && ((highest - lowest) >> span_bits) != 0) ++span_bits;
  const int shift = std::max(0, span_bits - bucket_bits);
  const size_t buckets = static_cast<size_t>(((highest - lowest) >> shift) + 1);
  const auto bucket_of = [&](const KeyedIndex& item) {
    return static_cast<size_t>((item.key - lowest) >> shift);
  };

  std::vector<int64_t> start(buckets + 1, 0);
  for (const auto& item : items) ++start[bucket_of(item) + 1];
  size_t last = 0;  // the bucket holding the k-th smallest item
  for (int64_t below = 0; below + start[last + 1] < k; ++last) below += start[last + 1];
  for (size_t b = 0; b < buckets; ++b) start[b + 1] += start[b];

  KeyedIndices kept(static_cast<size_t>(start[last + 1]));
  std::vector<int64_t> fill(start.begin(), start.begin() + static_cast<std::ptrdiff_t>(last + 1));
  for (const auto& item : items) {
    const size_t b = bucket_of(item);
    if (b <= last) kept[static_cast<size_t>(fill[b]++)] = item;
  }
  for (size_t b = 0; b <= last; ++b) {
    KeyedIndex* first = kept.data() + start[b];
    KeyedIndex* end = kept.data() + start[b + 1];
    if (end - first > 32) {
      std::sort(first, end, key_less);
      continue;
    }
    for (KeyedIndex* next = first + 1; next < end; ++next) {  // insertion sort: buckets are tiny
      const KeyedIndex item = *next;
      KeyedIndex* hole = next;
      for (; hole > first && key_less(item, hole[-1]); --hole) *hole = hole[-1];
      *hole = item;
    }
  }
  kept.resize(static_cast<size_t>(k));
  items.swap(kept);
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

  // Keys E_i / w_i with weights scaled to max 1 cost one log and one division, and cannot
  // overflow unless two weights differ by more than ~1e306; then log(E_i) - log(w_i) is used.
  const double largest = *std::max_element(weights, weights + n);
  double smallest = largest;
  for (int64_t i = 0; i < n; ++i)
    if (weights[i] > 0.0) smallest = std::min(smallest, weights[i]);
  const bool log_keys = smallest / largest < 1e-300;

  // Each slice of the weights is keyed and sorted by its own thread; the sorted slices are then
  // merged. The result is the unique (key, index) order, whatever the thread count.
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, n / kMinDrawsPerThread));
  const int64_t step = (n + parts - 1) / parts;
  std::vector<KeyedIndices> slices(static_cast<size_t>(parts));
  parallel_for(parts, static_cast<int>(parts), 1, [&](int64_t first, int64_t last) {
    for (int64_t p = first; p < last; ++p) {
      auto& slice = slices[static_cast<size_t>(p)];
      const int64_t lo = std::min(n, p * step), hi = std::min(n, lo + step);
      slice.reserve(static_cast<size_t>(hi - lo));
      for (int64_t i = lo; i < hi; ++i) {
        const double w = weights[i];
        if (w == 0.0) continue;
        // One Philox block holds the bits of an even/odd pair of items.
        const auto bits = rng(static_cast<uint64_t>(i) >> 1, stream);
        const double exponential =
            -std::log(open_closed_unit((i & 1) ? high64(bits) : low64(bits)));
        const double key =
            log_keys ? std::log(exponential) - std::log(w) : exponential / (w / largest);
        slice.push_back({ordered_bits(key), i});
      }
      select_smallest(slice, k);
    }
  });
  // Merge by repeatedly taking the smallest head: parts is the thread count, so a scan is enough.
  std::vector<size_t> head(static_cast<size_t>(parts), 0);
  for (int64_t i = 0; i < k; ++i) {
    int64_t best = -1;
    for (int64_t p = 0; p < parts; ++p) {
      const auto& slice = slices[static_cast<size_t>(p)];
      const size_t h = head[static_cast<size_t>(p)];
      if (h == slice.size()) continue;
      if (best < 0 ||
          key_less(slice[h], slices[static_cast<size_t>(best)][head[static_cast<size_t>(best)]]))
        best = p;
    }
    out[i] = slices[static_cast<size_t>(best)][head[static_cast<size_t>(best)]++].index;
  }
}

}  // namespace fastloader
