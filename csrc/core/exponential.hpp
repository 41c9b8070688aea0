// Exp(1) variates by a ziggurat: table lookups, *, + and compares, so the same bits give the same
// double on every IEEE-754 platform (no libm; the tables are embedded hex constants).
#pragma once

#include <cstdint>

#include "core/philox.hpp"
#include "core/portable_log.hpp"
#include "core/ziggurat_tables.hpp"

namespace fastloader {

// Marsaglia and Tsang's ziggurat ("The ziggurat method for generating random variables", 2000)
// over 256 equal-area layers. `bits` pays for the first attempt, which is accepted at once about
// 98.9% of the time; the other cases (wedges, the tail, retries) take 128 more bits per attempt
// from more_bits(attempt) (attempt = 0, 1, ...), which must be a pure function of its argument
// for the variate to be one too. The rare paths use portable_log, never libm.
template <typename MoreBits>
double standard_exponential(uint64_t bits, MoreBits&& more_bits) {
  for (uint64_t attempt = 0;; ++attempt) {
    const unsigned layer = static_cast<unsigned>(bits & 0xFF);
    const double x = static_cast<double>(bits >> 11) * ziggurat::kScaledWidth[layer];
    if (x < ziggurat::kInnerEdge[layer]) return x;
    const Philox4x32::Block extra = more_bits(attempt);
    if (layer == 0)  // beyond r the density is r + Exp(1) by memorylessness
      return ziggurat::kTailStart - portable_log(open_closed_unit(low64(extra)));
    const double low = ziggurat::kDensity[layer - 1], high = ziggurat::kDensity[layer];
    const double y = low + unit_interval(low64(extra)) * (high - low);
    if (portable_log(y) < -x) return x;  // (x, y) under exp(-x): y < exp(-x)
    bits = high64(extra);
  }
}

}  // namespace fastloader
