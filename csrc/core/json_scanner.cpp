// The strict JSON pull scanner: grammar and UTF-8 checks as RFC 8259 states them.
// One file past the ~400-line guide: the grammar is one state machine.
#include "core/json_scanner.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <version>

#if defined(__cpp_lib_to_chars)
#include <charconv>
#endif

namespace fastloader {

namespace {

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Appends a code point as UTF-8; a lone surrogate (which JSON's \u escapes can spell) becomes
// its 3-byte form, as Python's "surrogatepass" decodes it.
void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

void json_line_column(const char* data, size_t size, size_t offset, size_t& line, size_t& column) {
  if (offset > size) offset = size;
  line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < offset; ++i)
    if (data[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  column = offset - line_start + 1;
}

double JsonNumber::to_double() const {
#if defined(__cpp_lib_to_chars)
  double value = 0.0;
  const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
  if (result.ec == std::errc()) return value;
#endif
  // Out of range (and platforms without floating from_chars): strtod gives +-inf or 0 there.
  const std::string copy(text);
  return std::strtod(copy.c_str(), nullptr);
}

bool JsonNumber::to_int64(int64_t& out) const {
  if (!integer) return false;
  size_t i = 0;
  const bool negative = !text.empty() && text[0] == '-';
  if (negative) i = 1;
  // Accumulate as a negative number: its range holds INT64_MIN.
  int64_t value = 0;
  for (; i < text.size(); ++i) {
    const int digit = text[i] - '0';
    if (value < (std::numeric_limits<int64_t>::min() + digit) / 10) return false;
    value = value * 10 - digit;
  }
  if (!negative) {
    if (value == std::numeric_limits<int64_t>::min()) return false;
    value = -value;
  }
  out = value;
  return true;
}

void JsonScanner::fail(const std::string& what) const { fail_at(p_, what); }

void JsonScanner::fail_at(const char* where, const std::string& what) const {
  throw JsonError(what, static_cast<size_t>(where - begin_));
}

void JsonScanner::skip_whitespace() {
  while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
}

void JsonScanner::expect(char c, const char* what) {
  skip_whitespace();
  if (p_ >= end_ || *p_ != c) fail(std::string("expected ") + what);
  ++p_;
}

JsonKind JsonScanner::peek() {
  skip_whitespace();
  if (p_ >= end_) fail("expected a value, found the end of the input");
  switch (*p_) {
    case '{':
      return JsonKind::kObject;
    case '[':
      return JsonKind::kArray;
    case '"':
      return JsonKind::kString;
    case 't':
      return JsonKind::kTrue;
    case 'f':
      return JsonKind::kFalse;
    case 'n':
      return JsonKind::kNull;
    default:
      if (*p_ == '-' || is_digit(*p_)) return JsonKind::kNumber;
      fail("expected a value");
  }
}

void JsonScanner::begin_object() { expect('{', "'{'"); }

void JsonScanner::begin_array() { expect('[', "'['"); }

bool JsonScanner::next_member(bool& first, std::string_view& key, std::string& scratch) {
  skip_whitespace();
  if (p_ < end_ && *p_ == '}') {  // `{"a": 1,}` fails below: a comma is followed by a key
    ++p_;
    first = false;
    return false;
  }
  if (!first) {
    if (p_ >= end_ || *p_ != ',') fail("expected ',' or '}' after an object member");
    ++p_;
    skip_whitespace();
  }
  first = false;
  if (p_ >= end_ || *p_ != '"') fail("expected a string key");
  bool escaped = false;
  const std::string_view raw = scan_string(&scratch, escaped);
  key = escaped ? std::string_view(scratch) : raw;
  expect(':', "':' after an object key");
  return true;
}

bool JsonScanner::next_element(bool& first) {
  skip_whitespace();
  if (p_ < end_ && *p_ == ']') {
    // `[1,]`: the comma already promised an element, so ']' is only allowed first or after one.
    ++p_;
    first = false;
    return false;
  }
  if (!first) {
    if (p_ >= end_ || *p_ != ',') fail("expected ',' or ']' after an array element");
    ++p_;
    skip_whitespace();
    if (p_ < end_ && *p_ == ']') fail("expected a value after ',' (trailing comma)");
  }
  first = false;
  return true;
}

std::string_view JsonScanner::scan_string(std::string* scratch, bool& escaped) {
  const char* open = p_;
  ++p_;  // the opening quote
  const char* start = p_;
  escaped = false;
  for (;;) {
    // The common case: printable ASCII without quotes or escapes.
    const char* run = p_;
    while (p_ < end_) {
      const unsigned char c = static_cast<unsigned char>(*p_);
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
      ++p_;
    }
    if (escaped && scratch) scratch->append(run, static_cast<size_t>(p_ - run));
    if (p_ >= end_) fail_at(open, "unterminated string");
    const unsigned char c = static_cast<unsigned char>(*p_);
    if (c == '"') {
      const std::string_view raw(start, static_cast<size_t>(p_ - start));
      ++p_;
      return raw;
    }
    if (c < 0x20) fail("control character in a string (escape it)");
    if (c == '\\') {
      if (!escaped) {
        escaped = true;
        if (scratch) scratch->assign(start, static_cast<size_t>(p_ - start));
      }
      const char* escape = p_;
      if (p_ + 1 >= end_) fail_at(open, "unterminated string");
      const char kind = p_[1];
      p_ += 2;
      char simple = 0;
      switch (kind) {
        case '"':
          simple = '"';
          break;
        case '\\':
          simple = '\\';
          break;
        case '/':
          simple = '/';
          break;
        case 'b':
          simple = '\b';
          break;
        case 'f':
          simple = '\f';
          break;
        case 'n':
          simple = '\n';
          break;
        case 'r':
          simple = '\r';
          break;
        case 't':
          simple = '\t';
          break;
        case 'u': {
          auto hex4 = [&](const char* at) -> int32_t {
            if (end_ - at < 4) return -1;
            int32_t value = 0;
            for (int k = 0; k < 4; ++k) {
              const int digit = hex_value(at[k]);
              if (digit < 0) return -1;
              value = value * 16 + digit;
            }
            return value;
          };
          const int32_t unit = hex4(p_);
          if (unit < 0) fail_at(escape, "invalid \\u escape (4 hex digits expected)");
          p_ += 4;
          uint32_t cp = static_cast<uint32_t>(unit);
          if (cp >= 0xD800 && cp < 0xDC00 && end_ - p_ >= 6 && p_[0] == '\\' && p_[1] == 'u') {
            const int32_t low = hex4(p_ + 2);
            if (low >= 0xDC00 && low < 0xE000) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (static_cast<uint32_t>(low) - 0xDC00);
              p_ += 6;
            }
          }
          if (scratch) append_utf8(*scratch, cp);
          continue;
        }
        default:
          fail_at(escape, "invalid escape in a string");
      }
      if (scratch) scratch->push_back(simple);
      continue;
    }
    // Non-ASCII: one well-formed UTF-8 sequence (no overlongs, surrogates or > U+10FFFF).
    const char* sequence = p_;
    size_t extra;
    unsigned char low = 0x80, high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      if (c == 0xE0) low = 0xA0;
      if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;
    } else {
      fail("invalid UTF-8 in a string");
    }
    if (static_cast<size_t>(end_ - p_) <= extra) fail("invalid UTF-8 in a string (truncated)");
    for (size_t k = 1; k <= extra; ++k) {
      const unsigned char next = static_cast<unsigned char>(p_[k]);
      const unsigned char lo = k == 1 ? low : 0x80;
      const unsigned char hi = k == 1 ? high : 0xBF;
      if (next < lo || next > hi) fail("invalid UTF-8 in a string");
    }
    p_ += extra + 1;
    if (escaped && scratch) scratch->append(sequence, extra + 1);
  }
}

std::string_view JsonScanner::read_string(std::string& scratch) {
  skip_whitespace();
  if (p_ >= end_ || *p_ != '"') fail("expected a string");
  bool escaped = false;
  const std::string_view raw = scan_string(&scratch, escaped);
  return escaped ? std::string_view(scratch) : raw;
}

const char* JsonScanner::scan_number() {
  const char* q = p_;
  if (q < end_ && *q == '-') ++q;
  if (q >= end_ || !is_digit(*q)) fail_at(q, "expected a digit in a number");
  if (*q == '0') {
    ++q;
  } else {
    while (q < end_ && is_digit(*q)) ++q;
  }
  if (q < end_ && *q == '.') {
    ++q;
    if (q >= end_ || !is_digit(*q)) fail_at(q, "expected a digit after the decimal point");
    while (q < end_ && is_digit(*q)) ++q;
  }
  if (q < end_ && (*q == 'e' || *q == 'E')) {
    ++q;
    if (q < end_ && (*q == '+' || *q == '-')) ++q;
    if (q >= end_ || !is_digit(*q)) fail_at(q, "expected a digit in the exponent");
    while (q < end_ && is_digit(*q)) ++q;
  }
  return q;
}

JsonNumber JsonScanner::read_number() {
  skip_whitespace();
  if (p_ >= end_ || !(*p_ == '-' || is_digit(*p_))) fail("expected a number");
  const char* start = p_;
  const char* stop = scan_number();
  p_ = stop;
  bool integer = true;
  for (const char* q = start; q < stop; ++q)
    if (*q == '.' || *q == 'e' || *q == 'E') {
      integer = false;
      break;
    }
  return {std::string_view(start, static_cast<size_t>(stop - start)), integer};
}

void JsonScanner::scan_literal(const char* word, size_t length) {
  if (static_cast<size_t>(end_ - p_) < length || std::memcmp(p_, word, length) != 0)
    fail("expected a value");
  p_ += length;
}

bool JsonScanner::read_bool() {
  const JsonKind kind = peek();
  if (kind == JsonKind::kTrue) {
    scan_literal("true", 4);
    return true;
  }
  if (kind == JsonKind::kFalse) {
    scan_literal("false", 5);
    return false;
  }
  fail("expected true or false");
}

void JsonScanner::read_null() {
  if (peek() != JsonKind::kNull) fail("expected null");
  scan_literal("null", 4);
}

void JsonScanner::skip_value() {
  const size_t base = stack_.size();
  for (;;) {
    // A value starts here.
    skip_whitespace();
    if (p_ >= end_) fail("expected a value, found the end of the input");
    bool opened = false;
    switch (*p_) {
      case '{':
        ++p_;
        skip_whitespace();
        if (p_ < end_ && *p_ == '}') {
          ++p_;
          break;
        }
        if (stack_.size() >= kMaxDepth) fail("nesting too deep");
        stack_.push_back('{');
        if (p_ >= end_ || *p_ != '"') fail("expected a string key");
        {
          bool escaped = false;
          scan_string(nullptr, escaped);
        }
        expect(':', "':' after an object key");
        opened = true;
        break;
      case '[':
        ++p_;
        skip_whitespace();
        if (p_ < end_ && *p_ == ']') {
          ++p_;
          break;
        }
        if (stack_.size() >= kMaxDepth) fail("nesting too deep");
        stack_.push_back('[');
        opened = true;
        break;
      case '"': {
        bool escaped = false;
        scan_string(nullptr, escaped);
        break;
      }
      case 't':
        scan_literal("true", 4);
        break;
      case 'f':
        scan_literal("false", 5);
        break;
      case 'n':
        scan_literal("null", 4);
        break;
      default:
        if (*p_ == '-' || is_digit(*p_)) {
          p_ = scan_number();
          // Polygons are long runs of numbers: take `,number` pairs here rather than one trip
          // through the generic loop each (only inside an array this call opened).
          if (stack_.size() > base && stack_.back() == '[')
            while (end_ - p_ >= 2 && *p_ == ',' && (is_digit(p_[1]) || p_[1] == '-')) {
              ++p_;
              p_ = scan_number();
            }
          break;
        }
        fail("expected a value");
    }
    if (opened) continue;
    // A value ended: close containers until one expects another value.
    for (;;) {
      if (stack_.size() == base) return;
      skip_whitespace();
      if (p_ >= end_) fail("unterminated object or array");
      const char top = stack_.back();
      if (*p_ == ',') {
        ++p_;
        if (top == '{') {
          skip_whitespace();
          if (p_ >= end_ || *p_ != '"') fail("expected a string key");
          bool escaped = false;
          scan_string(nullptr, escaped);
          expect(':', "':' after an object key");
        }
        break;
      }
      if ((top == '{' && *p_ == '}') || (top == '[' && *p_ == ']')) {
        ++p_;
        stack_.pop_back();
        continue;
      }
      fail(top == '{' ? "expected ',' or '}' after an object member"
                      : "expected ',' or ']' after an array element");
    }
  }
}

void JsonScanner::finish() {
  skip_whitespace();
  if (p_ != end_) fail("unexpected content after the JSON value");
}

void json_validate(const char* data, size_t size) {
  JsonScanner scanner(data, size);
  scanner.skip_value();
  scanner.finish();
}

}  // namespace fastloader
