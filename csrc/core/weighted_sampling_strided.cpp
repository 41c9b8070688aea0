// Strided alias draws: rank r of R computes positions r, r+R, ... of one global stream by itself.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>

#include "core/parallel.hpp"
#include "core/philox.hpp"
#include "core/weighted_sampling.hpp"

namespace fastloader {
namespace {

constexpr int64_t kMinStridedDrawsPerThread = 1 << 16;

// Must equal the key AliasTable::draw derives from the seed (derive_key(seed, kAliasPurpose) in
// weighted_sampling.cpp): a strided draw is a sub-sequence of that very stream.
// csrc/tests/test_weighted_sampling.cpp and tests/test_distributed.py pin the equality.
uint64_t alias_stream_key(uint64_t seed) { return mix64(mix64(seed) ^ 0x616c696173ull); }

}  // namespace

void AliasTable::draw_strided(uint64_t seed, uint64_t stream, int64_t start, int64_t stride,
                              int64_t count, int64_t* out, int threads) const {
  if (start < 0 || count < 0) throw std::out_of_range("draw positions must be non-negative");
  if (stride < 1) throw std::out_of_range("stride must be at least 1");
  // The last position start + (count - 1) * stride must fit in int64.
  if (count > 0 && (count - 1) > (std::numeric_limits<int64_t>::max() - start) / stride)
    throw std::out_of_range("the last strided draw position overflows int64");
  const Philox4x32 rng(alias_stream_key(seed));
  const uint64_t n = static_cast<uint64_t>(size());
  const Cell* cells = cells_.data();
  parallel_for(count, threads, kMinStridedDrawsPerThread, [&](int64_t begin, int64_t end) {
    // As in draw(): pick a group of columns and prefetch them before reading, so misses overlap.
    constexpr int64_t kGroup = 16;
    int64_t column[kGroup];
    double coin[kGroup];
    for (int64_t base = begin; base < end; base += kGroup) {
      const int64_t m = std::min(kGroup, end - base);
      for (int64_t j = 0; j < m; ++j) {
        const auto bits = rng(static_cast<uint64_t>(start + (base + j) * stride), stream);
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

}  // namespace fastloader
