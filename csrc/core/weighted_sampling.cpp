// Weighted index sampling kernels; see weighted_sampling.hpp for the contracts.
// One file past the ~400-line guide: both draws share the alias table, key derivation and the
// chunked parallel drivers.
#include "core/weighted_sampling.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>

#include "core/buffer_pool.hpp"
#include "core/huge_pages.hpp"
#include "core/parallel.hpp"
#include "core/philox.hpp"
#include "core/exponential.hpp"

namespace fastloader {
namespace {

constexpr int64_t kMinDrawsPerThread = 1 << 16;

// Keys of different purposes must not share random bits: the key of a sampler is derived from the
// user's seed and the purpose.
constexpr uint64_t kAliasPurpose = 0x616c696173ull;        // "alias"
constexpr uint64_t kExpKeyPurpose = 0x6578706b6579ull;     // "expkey"
// The ziggurat's rare extra bits: purpose + attempt, attempt = 0, 1, ... (kept below 2^32).
constexpr uint64_t kExpRetryPurpose = 0x7a69677300000000ull;  // "zigs" << 32

uint64_t derive_key(uint64_t seed, uint64_t purpose) { return mix64(mix64(seed) ^ purpose); }

// One draw of an alias table is a pure function of its position in the stream, so any set of
// positions (a range here; a stride for a strided variant) can be drawn in any order by any thread.
class AliasDrawer {
 public:
  AliasDrawer(const AliasTable& table, uint64_t seed, uint64_t stream)
      : rng_(derive_key(seed, kAliasPurpose)),
        stream_(stream),
        n_(static_cast<uint64_t>(table.size())),
        cells_(table.cells().data()) {}

  // The random part of a draw: the column picked and the coin that keeps it or takes its alias.
  struct Pick {
    int64_t column;
    double coin;
  };
  Pick pick(uint64_t position) const noexcept {
    const auto bits = rng_(position, stream_);
    return {static_cast<int64_t>(bounded(low64(bits), n_)), unit_interval(high64(bits))};
  }
  int64_t resolve(const Pick& p) const noexcept {
    const AliasTable::Cell& cell = cells_[p.column];
    return p.coin < cell.accept ? p.column : cell.alias;
  }

  // out[j] = the draw at position_of(j), for j in [begin, end). Large tables miss the cache on
  // every draw: pick a group, prefetch all its cells, then resolve them, so the misses overlap.
  template <typename PositionOf>
  void draw_positions(int64_t begin, int64_t end, int64_t* out, PositionOf position_of) const {
    constexpr int64_t kGroup = 16;
    Pick group[kGroup];
    for (int64_t base = begin; base < end; base += kGroup) {
      const int64_t m = std::min(kGroup, end - base);
      for (int64_t j = 0; j < m; ++j) {
        group[j] = pick(position_of(base + j));
        __builtin_prefetch(cells_ + group[j].column);
      }
      for (int64_t j = 0; j < m; ++j) out[base + j] = resolve(group[j]);
    }
  }

 private:
  Philox4x32 rng_;
  uint64_t stream_;
  uint64_t n_;
  const AliasTable::Cell* cells_;
};

}  // namespace

double compensated_sum(const double* values, int64_t n) {
  // Neumaier's variant of Kahan summation: the error of each addition is exact in IEEE doubles
  // and is carried separately, so the total is within an ulp or so of the exact sum whatever n.
  double sum = 0.0, carry = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = values[i], t = sum + v;
    carry += std::fabs(sum) >= std::fabs(v) ? (sum - t) + v : (v - t) + sum;
    sum = t;
  }
  return sum + carry;
}

namespace {

constexpr double kHuge = std::numeric_limits<double>::max();

// Throws for the first weight that is negative, NaN or infinite.
[[noreturn]] void reject_weight(const double* weights, int64_t n) {
  int64_t i = 0;
  while (i + 1 < n && weights[i] >= 0.0 && weights[i] <= kHuge) ++i;
  throw std::invalid_argument("weights must be finite and non-negative; weights[" +
                              std::to_string(i) + "] is " + std::to_string(weights[i]));
}

// Running weight statistics, item by item: branch-free compares and selects. Used by
// summarize_weights and, fused with the key computation, by sample_without_replacement.
struct WeightTally {
  int64_t positive = 0;
  double largest = 0.0, smallest = kHuge;
  bool bad = false;
  void add(double w) noexcept {
    bad |= !(w >= 0.0 && w <= kHuge);  // NaN fails both
    positive += (w > 0.0);
    largest = w > largest ? w : largest;
    const double candidate = w > 0.0 ? w : kHuge;
    smallest = candidate < smallest ? candidate : smallest;
  }
  void merge(const WeightTally& other) noexcept {
    positive += other.positive;
    largest = std::max(largest, other.largest);
    smallest = std::min(smallest, other.smallest);
    bad |= other.bad;
  }
};

// The tally of weights[0, n) in four independent lanes: no long dependency chain.
WeightTally tally_range(const double* weights, int64_t n) {
  constexpr int kLanes = 4;
  WeightTally lanes[kLanes];
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int lane = 0; lane < kLanes; ++lane) lanes[lane].add(weights[i + lane]);
  for (; i < n; ++i) lanes[0].add(weights[i]);
  for (int lane = 1; lane < kLanes; ++lane) lanes[0].merge(lanes[lane]);
  return lanes[0];
}

// Throws as summarize_weights documents for a tally of all n weights.
void check_tally(const WeightTally& all, const double* weights, int64_t n) {
  if (all.bad) reject_weight(weights, n);
  if (all.positive == 0) throw std::invalid_argument("weights must contain a positive value");
  // The sum cannot overflow when n * largest does not; only then is the slow sum needed.
  if (all.largest > kHuge / static_cast<double>(n) && !(compensated_sum(weights, n) <= kHuge))
    throw std::invalid_argument("the sum of weights overflows");
}

// 1, unless the weights sum to less than n / DBL_MAX (subnormal weights), where n / sum overflows
// to inf and every column would look large (a uniform draw): then the power of two that lifts the
// largest weight to [2^-900, 2^-899), where n / sum is finite for any n < 2^63 (a lift to 1 could
// itself overflow: 2^1074 is not a double). Multiplying by a power of two is exact, so the ratios
// are kept, and weights that need no lift keep their table (and stream) bit for bit.
double subnormal_lift(const double* weights, int64_t n, double sum) {
  if (static_cast<double>(n) / sum <= kHuge) return 1.0;
  double largest = 0.0;
  for (int64_t i = 0; i < n; ++i) largest = std::max(largest, weights[i]);
  double lift = 1.0;
  while (largest * lift < 0x1p-900) lift *= 2.0;  // at most 174 doublings
  return lift;
}

}  // namespace

WeightSummary summarize_weights(const double* weights, int64_t n, int threads) {
  if (n <= 0) throw std::invalid_argument("weights must not be empty");
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, n / kMinDrawsPerThread));
  const int64_t step = (n + parts - 1) / parts;
  std::vector<WeightTally> partial(static_cast<size_t>(parts));
  parallel_for(parts, static_cast<int>(parts), 1, [&](int64_t first, int64_t last) {
    for (int64_t p = first; p < last; ++p) {
      const int64_t begin = std::min(n, p * step), end = std::min(n, begin + step);
      partial[static_cast<size_t>(p)] = tally_range(weights + begin, end - begin);
    }
  });
  WeightTally all;
  for (const WeightTally& part : partial) all.merge(part);
  check_tally(all, weights, n);
  return {all.positive, all.largest, all.smallest};
}

int64_t check_weights(const double* weights, int64_t n) {
  return summarize_weights(weights, n).positive;
}

AliasTable::AliasTable(const double* weights, int64_t n) {
  check_weights(weights, n);
  // Doubles only, in a fixed order: long double is 80-bit on x86-64, 128-bit on aarch64 and 64-bit
  // on macOS / MSVC, so the table (and the stream) would depend on the platform.
  const double sum = compensated_sum(weights, n);
  const double lift = subnormal_lift(weights, n, sum);
  const double scale = static_cast<double>(n) / (sum * lift);

  cells_.resize(static_cast<size_t>(n));
  // One n-sized worklist holds both stacks: small columns grow from the front, large ones from
  // the back. A column is on at most one stack, so they never meet.
  std::vector<int64_t, HugePageAllocator<int64_t>> work(static_cast<size_t>(n));
  int64_t small_top = 0, large_bottom = n;
  for (int64_t i = 0; i < n; ++i) {
    const double scaled = (weights[i] * lift) * scale;
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
  advise_huge_pages(out, static_cast<size_t>(count) * sizeof(int64_t));
  if (count > std::numeric_limits<int64_t>::max() - start)
    throw std::out_of_range("draw positions start + count overflow int64");
  const AliasDrawer drawer(*this, seed, stream);
  parallel_for(count, threads, kMinDrawsPerThread, [&](int64_t begin, int64_t end) {
    const auto position_of = [start](int64_t j) { return static_cast<uint64_t>(start + j); };
    drawer.draw_positions(begin, end, out, position_of);
  });
}

void AliasTable::draw_strided(uint64_t seed, uint64_t stream, int64_t start, int64_t stride,
                              int64_t count, int64_t* out, int threads) const {
  if (start < 0 || count < 0) throw std::out_of_range("draw positions must be non-negative");
  if (stride < 1) throw std::out_of_range("stride must be at least 1");
  // The last position start + (count - 1) * stride must fit in int64.
  if (count > 0 && (count - 1) > (std::numeric_limits<int64_t>::max() - start) / stride)
    throw std::out_of_range("the last strided draw position overflows int64");
  // The same drawer as draw(): a rank's shard is a sub-sequence of that very stream.
  const AliasDrawer drawer(*this, seed, stream);
  parallel_for(count, threads, kMinDrawsPerThread, [&](int64_t begin, int64_t end) {
    const auto position_of = [start, stride](int64_t j) {
      return static_cast<uint64_t>(start + j * stride);
    };
    drawer.draw_positions(begin, end, out, position_of);
  });
}

namespace {

// The binary exponent e and mantissa m in [1, 2) of a positive finite double x = m * 2^e, by bit
// manipulation (exact; subnormals included).
struct Binary {
  int64_t exponent;
  double mantissa;
};
Binary split_binary(double x) noexcept {
  int64_t exponent = 0;
  if (x < 0x1p-1022) {  // subnormal: scale into the normal range first (exact)
    x *= 0x1p54;
    exponent = -54;
  }
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  exponent += static_cast<int64_t>(bits >> 52) - 1023;
  bits = (bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;
  double mantissa;
  std::memcpy(&mantissa, &bits, sizeof mantissa);
  return {exponent, mantissa};
}

// An unsigned code with the order of E / w, for 0 <= E < 64 and w > 0 finite, over the whole
// double range of w (no overflow to inf, no underflow to 0, no logarithm): q = E / mantissa(w) is
// one correctly rounded division, and q * 2^-exponent(w) is coded as q's biased exponent minus
// exponent(w) plus 1024 (12 bits) above q's 52 mantissa bits. E = 0 codes as 0. A nonzero E from
// the ziggurat is above 2^-64, so q's biased exponent is in [958, 1029] and, with exponent(w) in
// [-1074, 1023], the coded exponent stays in [958, 3127]: 12 bits, never all ones.
class RatioKey {
 public:
  explicit RatioKey(double w) noexcept {
    const Binary parts = split_binary(w);
    mantissa_ = parts.mantissa;
    exponent_offset_ = static_cast<uint64_t>(1024 - parts.exponent);
  }
  uint64_t operator()(double e) const noexcept {
    const double q = e / mantissa_;
    if (q == 0.0) return 0;
    uint64_t bits;
    std::memcpy(&bits, &q, sizeof bits);
    return (((bits >> 52) + exponent_offset_) << 52) | (bits & 0x000FFFFFFFFFFFFFull);
  }

 private:
  double mantissa_;
  uint64_t exponent_offset_;
};

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

// Sorts one top-level bucket (a few thousand pairs, in cache) and writes the first `wanted`
// indices in key order to `indices`, which may overlap [first, last) (all pairs are read into
// `scratch` before any index is written). A counting pass on the next key bits spreads the pairs
// over sub-buckets of about 4, which insertion sort then orders.
void sort_bucket(const KeyedIndex* first, const KeyedIndex* last, int64_t wanted,
                 int64_t* indices, std::vector<KeyedIndex>& scratch, std::vector<int64_t>& counts) {
  const int64_t m = last - first;
  scratch.resize(static_cast<size_t>(m));
  if (m <= 32) {
    std::copy(first, last, scratch.begin());
    insertion_sort(scratch.data(), scratch.data() + m);
  } else {
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
    for (const KeyedIndex* item = first; item < last; ++item)
      ++counts[((item->key - low) >> shift) + 1];
    for (size_t b = 0; b < subs; ++b) counts[b + 1] += counts[b];
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
  }
  for (int64_t j = 0; j < wanted; ++j) indices[j] = scratch[static_cast<size_t>(j)].index;
}

// An item's key is never ~0 (see RatioKey): a stored key of ~0 marks a zero-weight item.
constexpr uint64_t kNoKey = ~uint64_t{0};

// Keys E_i / w_i of the positive-weight items, E_i ~ Exp(1) from the ziggurat: a pure function of
// (seed, stream, i) and bit-identical on every platform.
class ExponentialKeys {
 public:
  ExponentialKeys(const double* weights, uint64_t seed, uint64_t stream)
      : weights_(weights), rng_(derive_key(seed, kExpKeyPurpose)), seed_(seed), stream_(stream) {}

  // Calls visit(i, w_i, key) for every item in [begin, end), key kNoKey for zero weights. One
  // Philox block holds the bits of an even/odd pair of items, so it is computed once per pair.
  template <typename Visit>
  void for_each(int64_t begin, int64_t end, Visit&& visit) const {
    Philox4x32::Block bits{};
    for (int64_t i = begin; i < end; ++i) {
      if (i == begin || (i & 1) == 0) bits = rng_(static_cast<uint64_t>(i) >> 1, stream_);
      const double w = weights_[i];
      if (w == 0.0) {
        visit(i, w, kNoKey);
        continue;
      }
      const auto more_bits = [&](uint64_t attempt) {
        return Philox4x32(derive_key(seed_, kExpRetryPurpose + attempt))(static_cast<uint64_t>(i),
                                                                          stream_);
      };
      const double e = standard_exponential((i & 1) ? high64(bits) : low64(bits), more_bits);
      visit(i, w, RatioKey(w)(e));
    }
  }

 private:
  const double* weights_;
  Philox4x32 rng_;
  uint64_t seed_, stream_;
};

// Top-level buckets on the high bits of (key - low), spanning E in [2^-12, 32] over the weights'
// range: keys below go to bucket 0 (E < 2^-12: about one item in 4000), keys above to the last
// (E > 32: about one in 1e14), where sort_bucket orders them like any other. Key codes grow with
// the binary exponent of E / w, so buckets are roughly logarithmic in the key; a skewed
// distribution only makes them larger (slower), never the result different.
class KeyBuckets {
 public:
  static constexpr int kMaxBucketBits = 12;
  KeyBuckets(const WeightSummary& weights)
      : low_(RatioKey(weights.largest)(0x1p-12)) {
    const uint64_t high = RatioKey(weights.smallest)(32.0);
    // Few enough buckets that their counters stay in cache and the scatter has few write
    // streams; each bucket is then sorted in cache by sort_bucket.
    int bits = 1;
    while ((int64_t{1} << (bits + 8)) < weights.positive && bits < kMaxBucketBits) ++bits;
    shift_ = bucket_shift(low_, high, bits);
    count_ = static_cast<size_t>(((high - low_) >> shift_) + 1);
  }
  size_t count() const noexcept { return count_; }
  size_t of(uint64_t key) const noexcept {
    if (key <= low_) return 0;
    return std::min(count_ - 1, static_cast<size_t>((key - low_) >> shift_));
  }

 private:
  uint64_t low_;
  int shift_ = 0;
  size_t count_ = 1;
};

// The extreme positive weights of up to 4096 evenly spaced items and the positive count scaled
// up from them: enough to place the buckets (a weight the sample misses only puts its keys in an
// edge bucket, which costs time, never correctness). positive == 0 when the sample has none.
WeightSummary sampled_summary(const double* weights, int64_t n) {
  const int64_t stride = std::max<int64_t>(1, n / 4096);
  WeightTally tally;
  int64_t seen = 0;
  for (int64_t i = 0; i < n; i += stride, ++seen) {
    const double w = weights[i];
    if (w >= 0.0 && w <= kHuge) tally.add(w);
  }
  if (tally.positive == 0) return {0, 0.0, kHuge};
  return {std::max<int64_t>(1, tally.positive * (n / seen)), tally.largest, tally.smallest};
}

// Contiguous slices of the items, the same for every pass: a few per thread, so that threads
// which finish early (or were not descheduled) take more of them.
struct Slices {
  int64_t n, parts, step;
  int threads;
  Slices(int64_t items, int thread_count)
      : n(items),
        parts(thread_count <= 1
                  ? 1
                  : std::clamp<int64_t>(items / kMinDrawsPerThread, 1, int64_t{thread_count} * 4)),
        step((items + parts - 1) / parts),
        threads(thread_count) {}
  int64_t begin(int64_t p) const { return std::min(n, p * step); }
  int64_t end(int64_t p) const { return std::min(n, (p + 1) * step); }
  template <typename Body>
  void run(Body&& body) const {  // body(slice, begin, end) once for every slice
    parallel_for(parts, threads, 1, [&](int64_t first, int64_t last) {
      for (int64_t p = first; p < last; ++p) body(p, begin(p), end(p));
    });
  }
};

// The buckets the k smallest keys fill: those before `last` whole, and part of `last`.
struct Cut {
  size_t last = 0;
  int64_t taken_whole = 0, in_last = 0;
};
Cut find_cut(const std::vector<std::vector<int64_t>>& histogram, int64_t k) {
  Cut cut;
  for (;; ++cut.last) {
    cut.in_last = 0;
    for (const auto& h : histogram) cut.in_last += h[cut.last];
    if (cut.taken_whole + cut.in_last >= k) return cut;
    cut.taken_whole += cut.in_last;
  }
}

// Turns per-slice bucket counts into per-slice write offsets (buckets in order, slices in order
// within a bucket) and returns where each bucket up to cut.last starts.
std::vector<int64_t> bucket_offsets(std::vector<std::vector<int64_t>>& histogram, const Cut& cut) {
  std::vector<int64_t> bucket_start(cut.last + 2, 0);
  int64_t offset = 0;
  for (size_t b = 0; b <= cut.last; ++b) {
    bucket_start[b] = offset;
    for (auto& h : histogram) {
      const int64_t here = h[b];
      h[b] = offset;
      offset += here;
    }
  }
  bucket_start[cut.last + 1] = offset;
  return bucket_start;
}

// Throws as summarize_weights would for the weights the tallies saw, or if k exceeds the number
// of positive weights.
void check_tallies(const std::vector<WeightTally>& tallies, const double* weights, int64_t n,
                   int64_t k) {
  WeightTally all;
  for (const WeightTally& t : tallies) all.merge(t);
  check_tally(all, weights, n);
  if (k > all.positive)
    throw std::invalid_argument("cannot draw " + std::to_string(k) +
                                " samples without replacement from " +
                                std::to_string(all.positive) + " positive weights");
}

// Sorts the scattered pairs bucket by bucket into out[0, k), in key order: each whole bucket b
// writes its indices to out[bucket_start[b]...], the straddling bucket its first k - taken_whole
// after them. The ranges are disjoint, so the buckets sort in parallel.
void sort_into_indices(const KeyedIndex* pairs, const std::vector<KeyedIndex>& straddling,
                       const Cut& cut, const std::vector<int64_t>& bucket_start, int64_t k,
                       int64_t* out, int threads) {
  parallel_for(static_cast<int64_t>(cut.last) + 1, threads, 64, [&](int64_t first, int64_t last) {
    std::vector<KeyedIndex> scratch;
    std::vector<int64_t> counts;
    for (size_t b = static_cast<size_t>(first); b < static_cast<size_t>(last); ++b) {
      if (b == cut.last) {
        sort_bucket(straddling.data(), straddling.data() + straddling.size(),
                    k - cut.taken_whole, out + cut.taken_whole, scratch, counts);
      } else {
        const KeyedIndex* bucket = pairs + bucket_start[b];
        sort_bucket(bucket, pairs + bucket_start[b + 1], bucket_start[b + 1] - bucket_start[b],
                    out + bucket_start[b], scratch, counts);
      }
    }
  });
}

// Scratch of `count` T from the recycling pool: a draw of 1e7 needs 240 MB of it, and fresh pages
// cost more than the kernel (first-touch faults, measured 0.19 s -> 0.45 s a draw here once the
// previous draw's memory had gone back to the system). Uninitialised; returned to the pool.
template <typename T>
class PooledScratch {
 public:
  explicit PooledScratch(std::size_t count)
      : block_(count > 0 ? std::make_unique<PooledBuffer>(count * sizeof(T)) : nullptr) {}
  T* data() const noexcept {
    return block_ ? reinterpret_cast<T*>(block_->data()) : nullptr;
  }
  void release() noexcept { block_.reset(); }

 private:
  std::unique_ptr<PooledBuffer> block_;
};

// Storing the keys makes the second pass a read instead of a second key computation: worth it
// whenever the n keys take no more memory than the k pairs already do, or little in absolute
// terms.
bool store_keys(int64_t n, int64_t k) { return n <= 2 * k || n <= (int64_t{1} << 25); }

}  // namespace

void sample_without_replacement(const double* weights, int64_t n, int64_t k, uint64_t seed,
                                uint64_t stream, int64_t* out, int threads) {
  detail::sample_without_replacement(weights, n, k, seed, stream, out, threads,
                                     store_keys(n, k));
}

void detail::sample_without_replacement(const double* weights, int64_t n, int64_t k,
                                        uint64_t seed, uint64_t stream, int64_t* out, int threads,
                                        bool keep_keys) {
  if (n <= 0) throw std::invalid_argument("weights must not be empty");
  if (k < 0) throw std::invalid_argument("k must be non-negative");
  // The buckets come from a sample of the weights; the full checks are made during pass 1, before
  // anything is written to `out`. A sample without positive weights falls back to a full pass.
  WeightSummary estimate = sampled_summary(weights, n);
  if (estimate.positive == 0) estimate = summarize_weights(weights, n, threads);
  const ExponentialKeys keys(weights, seed, stream);
  const KeyBuckets buckets(estimate);
  const Slices slices(n, threads);
  // n and k fit in memory the caller already holds (weights, out), so these byte counts do not
  // overflow size_t.
  PooledScratch<uint64_t> stored(keep_keys ? static_cast<size_t>(n) : 0);
  uint64_t* const stored_keys = stored.data();

  // Pass 1: count the keys of each slice per bucket (and keep them when `stored` has room), and
  // check the weights on the way.
  std::vector<std::vector<int64_t>> histogram(static_cast<size_t>(slices.parts));
  std::vector<WeightTally> tallies(static_cast<size_t>(slices.parts));
  slices.run([&](int64_t p, int64_t begin, int64_t end) {
    auto& h = histogram[static_cast<size_t>(p)];
    WeightTally tally;
    h.assign(buckets.count(), 0);
    keys.for_each(begin, end, [&](int64_t i, double w, uint64_t key) {
      tally.add(w);
      if (stored_keys != nullptr) stored_keys[i] = key;
      if (key != kNoKey) ++h[buckets.of(key)];
    });
    tallies[static_cast<size_t>(p)] = tally;
  });
  check_tallies(tallies, weights, n, k);
  if (k == 0) return;
  advise_huge_pages(out, static_cast<size_t>(k) * sizeof(int64_t));
  const Cut cut = find_cut(histogram, k);
  const std::vector<int64_t> bucket_start = bucket_offsets(histogram, cut);

  // Pass 2: each (slice, bucket) writes from its own offset: whole buckets to the pairs area
  // (taken_whole <= k pairs), the straddling bucket to a small array.
  PooledScratch<KeyedIndex> pair_area(static_cast<size_t>(cut.taken_whole));
  KeyedIndex* const pairs = pair_area.data();
  std::vector<KeyedIndex> straddling(static_cast<size_t>(cut.in_last));
  slices.run([&](int64_t p, int64_t begin, int64_t end) {
    auto& position = histogram[static_cast<size_t>(p)];
    const auto place = [&](int64_t i, uint64_t key) {
      if (key == kNoKey) return;
      const size_t b = buckets.of(key);
      if (b < cut.last)
        pairs[position[b]++] = {key, i};
      else if (b == cut.last)
        straddling[static_cast<size_t>(position[b]++ - cut.taken_whole)] = {key, i};
    };
    if (stored_keys == nullptr)
      keys.for_each(begin, end, [&](int64_t i, double, uint64_t key) { place(i, key); });
    else
      for (int64_t i = begin; i < end; ++i) place(i, stored_keys[i]);
  });
  stored.release();

  sort_into_indices(pairs, straddling, cut, bucket_start, k, out, threads);
}

}  // namespace fastloader
