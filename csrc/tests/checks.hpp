// Minimal assertions for the C++ unit tests: count failures, report each, never abort early.
#pragma once

#include <cstdint>
#include <cstdio>
#include <vector>

namespace fastloader_tests {

inline int failures = 0;

inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s\n", what);
    ++failures;
  }
}

template <typename Exception, typename Body>
void check_throws(Body&& body, const char* what) {
  try {
    body();
  } catch (const Exception&) {
    return;
  } catch (...) {
  }
  check(false, what);
}

// FNV-1a over the little-endian bytes of the values: a digest that is the same on every platform,
// for freezing streams in the tests.
inline uint64_t fnv1a(const std::vector<int64_t>& values) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (int64_t value : values)
    for (int byte = 0; byte < 8; ++byte) {
      hash ^= (static_cast<uint64_t>(value) >> (8 * byte)) & 0xFF;
      hash *= 0x100000001b3ull;
    }
  return hash;
}

}  // namespace fastloader_tests
