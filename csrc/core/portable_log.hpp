// Natural logarithm from IEEE-754 operations alone, so the sampling streams do not depend on libm.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

namespace fastloader {

// libm's log differs between platforms in the last bit, and keys that differ in the last bit can
// change a draw. This one uses only +, -, *, / on doubles in a fixed order (the core is built with
// -ffp-contract=off, so no FMA fusing either), which IEEE-754 makes identical everywhere.
// Accuracy: a few ulp over positive finite x. log(0) is -inf.
// log(x) = e ln2 + 2 atanh(s), s = (m - 1) / (m + 1) with the mantissa m centred on 1, so that
// |s| <= 0.1716 and the series to s^19 leaves < 1e-17: within 2 ulp of glibc's log (checked over
// the whole range, subnormals and values next to 1 included).
inline double portable_log(double x) noexcept {
  if (x == 0.0) return -std::numeric_limits<double>::infinity();
  int64_t exponent = 0;
  if (x < 0x1p-1022) {  // subnormal: scale into the normal range first
    x *= 0x1p54;
    exponent = -54;
  }
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  exponent += static_cast<int64_t>((bits >> 52) & 0x7FF) - 1023;
  bits = (bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;  // mantissa m in [1, 2)
  double m;
  std::memcpy(&m, &bits, sizeof m);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    ++exponent;
  }
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  const double tail =
      s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 * (1.0 / 11 +
      s2 * (1.0 / 13 + s2 * (1.0 / 15 + s2 * (1.0 / 17 + s2 * (1.0 / 19)))))))));
  constexpr double kLn2High = 0x1.62e42fefa3800p-1;  // ln 2 split so exponent * high is exact
  constexpr double kLn2Low = 0x1.ef35793c76730p-45;
  const double e = static_cast<double>(exponent);
  return (e * kLn2High + 2.0 * s) + (e * kLn2Low + 2.0 * s * tail);
}

}  // namespace fastloader
