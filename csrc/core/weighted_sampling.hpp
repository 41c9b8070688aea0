// Weighted index sampling: Vose alias tables (with replacement) and exponential keys (without).
#pragma once

#include <cstdint>
#include <vector>

#include "core/huge_pages.hpp"

namespace fastloader {

// Bumped whenever a (seed, stream, position) can give a different index than before: users who
// saved seeds can tell that a stream changed. 1: the first release. 2: without replacement, keys
// from a ziggurat instead of a logarithm (the with-replacement stream is unchanged).
constexpr int kStreamVersion = 2;

// Fails with std::invalid_argument unless every weight is finite and >= 0, their sum is finite
// and at least one is positive. Returns the number of positive weights.
int64_t check_weights(const double* weights, int64_t n);

// What check_weights learns in its one pass: the positive count and the extreme positive weights.
struct WeightSummary {
  int64_t positive;
  double largest, smallest;
};
WeightSummary summarize_weights(const double* weights, int64_t n, int threads = 1);

// The sum of n doubles with compensated (Neumaier) summation, added in index order: within about
// an ulp of the exact sum, and the same on every platform (no long double, no reordering).
double compensated_sum(const double* values, int64_t n);

// Vose's alias method: O(n) build, O(1) per draw. Draw i of stream `stream` under `seed` depends on
// nothing else, so draws can be produced in any chunking and by any number of threads.
class AliasTable {
 public:
  AliasTable(const double* weights, int64_t n);

  // One cell per column, acceptance and alias side by side: a draw then costs one cache miss.
  struct Cell {
    double accept;  // probability of keeping column j when j is picked
    int64_t alias;  // where column j redirects otherwise
  };

  int64_t size() const noexcept { return static_cast<int64_t>(cells_.size()); }

  // Writes draws start .. start+count-1 of the stream to out.
  void draw(uint64_t seed, uint64_t stream, int64_t start, int64_t count, int64_t* out,
            int threads) const;

  // Writes draws start, start+stride, ..., start+(count-1)*stride of the same stream to out: one
  // rank's shard of a global stream. stride >= 1.
  void draw_strided(uint64_t seed, uint64_t stream, int64_t start, int64_t stride, int64_t count,
                    int64_t* out, int threads) const;

  const std::vector<Cell, HugePageAllocator<Cell>>& cells() const noexcept { return cells_; }

 private:
  std::vector<Cell, HugePageAllocator<Cell>> cells_;
};

// Efraimidis-Spirakis weighted sampling without replacement: each positive-weight item gets the key
// E_i / w_i with E_i ~ Exp(1); the k smallest keys, in increasing order, are a successive-sampling
// draw (first item with probability w_i / sum w, and so on), written to out[0, k). Scratch comes
// from the recycling BufferPool: 16 bytes per drawn pair, plus the n keys (8 * n bytes) when
// n <= 2k or n <= 2^25 (else it computes them twice).
void sample_without_replacement(const double* weights, int64_t n, int64_t k, uint64_t seed,
                                uint64_t stream, int64_t* out, int threads);

namespace detail {
// The same kernel with the choice made by the caller: keep_keys stores the n keys between the two
// passes (8 bytes per item) instead of computing them twice. The result is the same either way.
void sample_without_replacement(const double* weights, int64_t n, int64_t k, uint64_t seed,
                                uint64_t stream, int64_t* out, int threads, bool keep_keys);
}  // namespace detail

}  // namespace fastloader
