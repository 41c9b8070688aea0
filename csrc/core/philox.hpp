// Philox4x32-10 counter-based generator: the random bits at a position are a pure function of (key, counter).
#pragma once

#include <array>
#include <cstdint>

namespace fastloader {

// Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC'11). Being counter-based, any
// thread can produce draw i without touching draws 0..i-1, so results never depend on the thread count.
class Philox4x32 {
 public:
  using Block = std::array<uint32_t, 4>;

  explicit Philox4x32(uint64_t key) noexcept
      : key0_(static_cast<uint32_t>(key)), key1_(static_cast<uint32_t>(key >> 32)) {}

  // 128 random bits for the 128-bit counter (position, stream).
  Block operator()(uint64_t position, uint64_t stream) const noexcept {
    Block ctr{static_cast<uint32_t>(position), static_cast<uint32_t>(position >> 32),
              static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)};
    uint32_t k0 = key0_, k1 = key1_;
    for (int round = 0; round < 10; ++round) {
      ctr = single_round(ctr, k0, k1);
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    return ctr;
  }

 private:
  static constexpr uint32_t kMul0 = 0xD2511F53u;
  static constexpr uint32_t kMul1 = 0xCD9E8D57u;
  static constexpr uint32_t kWeyl0 = 0x9E3779B9u;
  static constexpr uint32_t kWeyl1 = 0xBB67AE85u;

  static Block single_round(const Block& c, uint32_t k0, uint32_t k1) noexcept {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * c[2];
    return {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k0, static_cast<uint32_t>(p1),
            static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k1, static_cast<uint32_t>(p0)};
  }

  uint32_t key0_, key1_;
};

// SplitMix64 finaliser: spreads user seeds (often 0, 1, 2, ...) over the whole key space.
inline uint64_t mix64(uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline uint64_t low64(const Philox4x32::Block& b) noexcept {
  return static_cast<uint64_t>(b[0]) | (static_cast<uint64_t>(b[1]) << 32);
}
inline uint64_t high64(const Philox4x32::Block& b) noexcept {
  return static_cast<uint64_t>(b[2]) | (static_cast<uint64_t>(b[3]) << 32);
}

// The high 64 bits of the 128-bit product a * b from 32-bit halves: for compilers without
// unsigned __int128 (MSVC, 32-bit targets). Exact, so it equals the native product's high word.
inline uint64_t mul_high_portable(uint64_t a, uint64_t b) noexcept {
  const uint64_t a_lo = a & 0xFFFFFFFFu, a_hi = a >> 32;
  const uint64_t b_lo = b & 0xFFFFFFFFu, b_hi = b >> 32;
  const uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi;
  // The middle column: each term < 2^64 and their sum < 2^64 + 2^33, so carry it by halves.
  const uint64_t middle = (lo_lo >> 32) + (hi_lo & 0xFFFFFFFFu) + (lo_hi & 0xFFFFFFFFu);
  return a_hi * b_hi + (hi_lo >> 32) + (lo_hi >> 32) + (middle >> 32);
}

#if defined(__SIZEOF_INT128__)
#define FASTLOADER_HAS_INT128 1
inline uint64_t mul_high_native(uint64_t a, uint64_t b) noexcept {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
}
#endif

// FASTLOADER_PORTABLE_MULHI forces the fallback (the aarch64 test build uses it, so the frozen
// stream digests prove that both ways give the same streams).
inline uint64_t mul_high(uint64_t a, uint64_t b) noexcept {
#if defined(FASTLOADER_HAS_INT128) && !defined(FASTLOADER_PORTABLE_MULHI)
  return mul_high_native(a, b);
#else
  return mul_high_portable(a, b);
#endif
}

// Uniform integer in [0, n) from 64 random bits (Lemire's multiply-shift; bias below n / 2^64).
inline uint64_t bounded(uint64_t bits, uint64_t n) noexcept { return mul_high(bits, n); }

// Uniform double in [0, 1) with 53 random bits.
inline double unit_interval(uint64_t bits) noexcept {
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

// Uniform double in (0, 1]: never 0, so log() of it is finite.
inline double open_closed_unit(uint64_t bits) noexcept {
  return (static_cast<double>(bits >> 11) + 1.0) * 0x1.0p-53;
}

}  // namespace fastloader
