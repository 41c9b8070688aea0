// Weighted index sampling: Vose alias tables (with replacement) and exponential keys (without).
#pragma once

#include <cstdint>
#include <vector>

#include "core/huge_pages.hpp"

namespace fastloader {

// Fails with std::invalid_argument unless every weight is finite and >= 0, their sum is finite
// and at least one is positive. Returns the number of positive weights.
int64_t check_weights(const double* weights, int64_t n);

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
  // rank's shard of a global stream (weighted_sampling_strided.cpp). stride >= 1.
  void draw_strided(uint64_t seed, uint64_t stream, int64_t start, int64_t stride, int64_t count,
                    int64_t* out, int threads) const;

  const std::vector<Cell, HugePageAllocator<Cell>>& cells() const noexcept { return cells_; }

 private:
  std::vector<Cell, HugePageAllocator<Cell>> cells_;
};

// Efraimidis-Spirakis weighted sampling without replacement: each positive-weight item gets the key
// E_i / w_i with E_i ~ Exp(1); the k smallest keys, in increasing order, are a successive-sampling
// draw (first item with probability w_i / sum w, and so on). `out` must hold 2 * k int64: the
// kernel sorts (key, index) pairs there, so no other k-sized buffer is needed; the k indices end
// up in out[0, k).
void sample_without_replacement(const double* weights, int64_t n, int64_t k, uint64_t seed,
                                uint64_t stream, int64_t* out, int threads);

}  // namespace fastloader
