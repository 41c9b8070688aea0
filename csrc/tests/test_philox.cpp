// C++ unit tests of the random-bit layer: Philox4x32-10 against its published known answers, the
// portable 64x64 -> 128 multiply, and the ziggurat's exponential variates.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <vector>

#include "core/exponential.hpp"
#include "core/philox.hpp"
#include "core/ziggurat_tables.hpp"
#include "tests/checks.hpp"

namespace {

using fastloader::Philox4x32;
using fastloader_tests::check;
using fastloader_tests::failures;

// Random123's kat_vectors, "philox4x32 10" lines: counter words c0..c3, key words k0 k1, expected.
// Our class takes the key as k0 | k1 << 32 and the counter as (c0 | c1 << 32, c2 | c3 << 32).
struct KnownAnswer {
  uint32_t counter[4], key[2], expected[4];
};
constexpr KnownAnswer kKnownAnswers[] = {
    {{0x00000000, 0x00000000, 0x00000000, 0x00000000}, {0x00000000, 0x00000000},
     {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

uint64_t join(uint32_t low, uint32_t high) { return low | (static_cast<uint64_t>(high) << 32); }

void philox_matches_random123_known_answers() {
  for (const KnownAnswer& kat : kKnownAnswers) {
    const Philox4x32 rng(join(kat.key[0], kat.key[1]));
    const Philox4x32::Block got =
        rng(join(kat.counter[0], kat.counter[1]), join(kat.counter[2], kat.counter[3]));
    for (int w = 0; w < 4; ++w) check(got[w] == kat.expected[w], "Philox4x32-10 known answer");
  }
}

// SplitMix64 as a source of test operands (not the library's stream).
uint64_t next_operand(uint64_t& state) { return fastloader::mix64(state++); }

void portable_high_multiply_equals_native() {
  const uint64_t edges[] = {0,           1,           2,          0xFFFFFFFFull, 0x100000000ull,
                            0x1FFFFFFFFull, ~0ull >> 1, ~0ull - 1, ~0ull};
  bool same = true;
  for (uint64_t a : edges)
    for (uint64_t b : edges) {
#if defined(FASTLOADER_HAS_INT128)
      same &= fastloader::mul_high_portable(a, b) == fastloader::mul_high_native(a, b);
#endif
    }
  uint64_t state = 42;
  for (int i = 0; i < 1000000; ++i) {
    const uint64_t a = next_operand(state), b = next_operand(state) >> (i % 64);
#if defined(FASTLOADER_HAS_INT128)
    same &= fastloader::mul_high_portable(a, b) == fastloader::mul_high_native(a, b);
#endif
    same &= fastloader::bounded(a, b) == fastloader::mul_high(a, b);
  }
  check(same, "mul_high_portable equals the unsigned __int128 product's high word");
  // Without __int128 the fallback is checked against products known by hand.
  check(fastloader::mul_high_portable(~0ull, ~0ull) == ~0ull - 1, "(2^64-1)^2 >> 64");
  check(fastloader::mul_high_portable(1ull << 63, 4) == 2, "2^63 * 4 >> 64");
  check(fastloader::mul_high_portable(0xFFFFFFFFull, 0x100000001ull) == 0, "below 2^64");
  check(fastloader::bounded(~0ull, 10) == 9 && fastloader::bounded(0, 10) == 0, "bounded range");
}

void ziggurat_tables_are_consistent() {
  namespace z = fastloader::ziggurat;
  bool ok = z::kDensity[255] == 1.0 && z::kInnerEdge[255] == 0.0;
  ok &= z::kInnerEdge[0] == z::kTailStart;
  for (int i = 1; i < 256; ++i) {
    ok &= z::kInnerEdge[i] < z::kInnerEdge[i - 1] && z::kDensity[i] > z::kDensity[i - 1];
    // Layer i is [0, x_{i-1}] x [e^-x_{i-1}, e^-x_i]: its area is the common layer area.
    const double width = z::kScaledWidth[i] * 0x1p53;
    ok &= width == z::kInnerEdge[i - 1];
    ok &= std::fabs(width * (z::kDensity[i] - z::kDensity[i - 1]) / z::kLayerArea - 1) < 1e-12;
  }
  // The base: a rectangle of width v / e^-r = r + 1, and e^-x matches the density table.
  ok &= std::fabs(z::kScaledWidth[0] * 0x1p53 - (z::kTailStart + 1)) < 1e-14;
  for (int i = 0; i < 256; ++i)
    ok &= std::fabs(std::exp(-z::kInnerEdge[i]) / z::kDensity[i] - 1) < 1e-14;
  check(ok, "ziggurat tables: decreasing edges, equal layer areas, densities e^-x");
}

// Exp(1) variates of a test stream: position i's first 64 bits, more bits from another key.
std::vector<double> exponentials(int64_t count) {
  const Philox4x32 rng(7), more(8);
  std::vector<double> out(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const auto bits = rng(static_cast<uint64_t>(i), 0);
    out[static_cast<size_t>(i)] = fastloader::standard_exponential(
        fastloader::low64(bits),
        [&](uint64_t attempt) { return more(static_cast<uint64_t>(i), attempt); });
  }
  return out;
}

void ziggurat_follows_the_exponential_distribution() {
  const std::vector<double> e = exponentials(2000000);
  double sum = 0, sum_sq = 0, largest = 0;
  std::vector<int64_t> counts(40, 0);  // 40 equal-probability cells of Exp(1)
  for (double x : e) {
    sum += x;
    sum_sq += x * x;
    largest = std::max(largest, x);
    const double cdf = 1.0 - std::exp(-x);
    counts[std::min<size_t>(39, static_cast<size_t>(cdf * 40))]++;
  }
  const double n = static_cast<double>(e.size()), mean = sum / n, var = sum_sq / n - mean * mean;
  check(std::fabs(mean - 1) < 0.005 && std::fabs(var - 1) < 0.01, "mean and variance 1");
  check(largest > fastloader::ziggurat::kTailStart, "the tail beyond r is reached");
  double chi2 = 0;
  for (int64_t c : counts) chi2 += (c - n / 40) * (c - n / 40) / (n / 40);
  check(chi2 < 80, "chi-square over 40 equal-probability cells (39 d.o.f., p < 1e-4 above 80)");
  // Frozen: the variates are a pure function of the bits on every platform.
  std::vector<int64_t> bits(e.size());
  for (size_t i = 0; i < e.size(); ++i) std::memcpy(&bits[i], &e[i], sizeof(double));
  const uint64_t digest = fastloader_tests::fnv1a(bits);
  std::printf("exponential digest %016llx\n", static_cast<unsigned long long>(digest));
  check(digest == 0xf2f0491ea36b53b5ull, "frozen digest of 2e6 ziggurat variates");
}

}  // namespace

int main() {
  philox_matches_random123_known_answers();
  portable_high_multiply_equals_native();
  ziggurat_tables_are_consistent();
  ziggurat_follows_the_exponential_distribution();
  std::printf("%s\n", failures == 0 ? "all C++ checks passed" : "C++ checks FAILED");
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
