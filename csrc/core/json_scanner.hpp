// A strict RFC 8259 pull scanner over a byte buffer: values are read or skipped in document order
// and nothing is materialized that the caller does not ask for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fastloader {

// Malformed JSON: `offset` is the byte where the scanner stopped.
class JsonError : public std::invalid_argument {
 public:
  JsonError(const std::string& what, size_t offset) : std::invalid_argument(what), offset(offset) {}
  size_t offset;
};

// Line and column (both 1-based, the column counted in bytes) of byte `offset` of `data`.
void json_line_column(const char* data, size_t size, size_t offset, size_t& line, size_t& column);

enum class JsonKind { kObject, kArray, kString, kNumber, kTrue, kFalse, kNull };

// A number token exactly as written: the text, and whether it has no fraction or exponent.
struct JsonNumber {
  std::string_view text;
  bool integer;
  // The nearest double (correctly rounded); huge magnitudes give +-inf.
  double to_double() const;
  // The integer value; false when the token is not an integer or does not fit int64.
  bool to_int64(int64_t& out) const;
};

// Reads one JSON text. Objects and arrays are walked with begin_object / next_member and
// begin_array / next_element; the caller consumes exactly one value per member or element
// (read_*, or skip_value). Every read validates what it passes over: invalid UTF-8 in strings,
// control characters, bad escapes, leading zeros, trailing commas, NaN / Infinity literals and
// trailing content all raise JsonError.
class JsonScanner {
 public:
  JsonScanner(const char* data, size_t size) : begin_(data), p_(data), end_(data + size) {}

  size_t offset() const { return static_cast<size_t>(p_ - begin_); }

  // The kind of the next value (whitespace skipped); JsonError if none starts here.
  JsonKind peek();

  void begin_object();
  // Advances to the next member of the object being read: true with its key (valid until the
  // next read; escapes decoded into `scratch` when present), false after the closing brace.
  // `first` is true before the first member and is cleared by the call.
  bool next_member(bool& first, std::string_view& key, std::string& scratch);

  void begin_array();
  // True when another element follows (then read it), false after the closing bracket.
  bool next_element(bool& first);

  std::string_view read_string(std::string& scratch);
  JsonNumber read_number();
  bool read_bool();
  void read_null();
  // Skips one value of any kind, validating it; iterative, so deep nesting cannot overflow the
  // stack (nesting past kMaxDepth is an error).
  void skip_value();
  // Whitespace only after the root value.
  void finish();

  static constexpr size_t kMaxDepth = 1 << 20;

 private:
  [[noreturn]] void fail(const std::string& what) const;
  [[noreturn]] void fail_at(const char* where, const std::string& what) const;
  void skip_whitespace();
  void expect(char c, const char* what);
  void scan_literal(const char* word, size_t length);
  // Validates a string whose opening quote is at p_; leaves p_ after the closing quote. Returns
  // the raw body, and decodes into scratch (setting `escaped`) when it holds escapes.
  std::string_view scan_string(std::string* scratch, bool& escaped);
  const char* scan_number();

  const char* begin_;
  const char* p_;
  const char* end_;
  std::vector<char> stack_;  // open containers while skipping: '{' or '['
};

// Validates a whole JSON text (the root value and nothing after it but whitespace).
void json_validate(const char* data, size_t size);

}  // namespace fastloader
