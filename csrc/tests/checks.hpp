// Minimal assertions for the C++ unit tests: count failures, report each, never abort early.
#pragma once

#include <cstdio>

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

}  // namespace fastloader_tests
