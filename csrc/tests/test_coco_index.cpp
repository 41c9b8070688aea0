// The JSON scanner's grammar and the COCO index's columns, grouping and errors.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "checks.hpp"
#include "core/coco_index.hpp"
#include "core/json_scanner.hpp"

using fastloader::build_coco_index;
using fastloader::CocoFormatError;
using fastloader::CocoIndex;
using fastloader::json_validate;
using fastloader::JsonError;
using fastloader_tests::check;
using fastloader_tests::failures;

namespace {

bool valid(const std::string& text) {
  try {
    json_validate(text.data(), text.size());
    return true;
  } catch (const JsonError&) {
    return false;
  }
}

size_t error_offset(const std::string& text) {
  try {
    json_validate(text.data(), text.size());
  } catch (const JsonError& error) {
    return error.offset;
  }
  return static_cast<size_t>(-1);
}

void scanner_accepts_rfc8259() {
  const char* good[] = {"0",
                        "-0",
                        "1.5e-3",
                        "-12E+7",
                        "\"\"",
                        "\"a\\u00e9\\n\\\"\"",
                        "[]",
                        "{}",
                        " [1, {\"a\": [true, false, null]}, \"x\"] ",
                        "\"\xc3\xa9\xf0\x9f\x98\x80\"",
                        "{\"a\":1,\"a\":2}",
                        "\"\\ud83d\\ude00\"",
                        "\"\\udc00\"",
                        "[1,-2,3.5e1,0,-0.25]",
                        "[[1,2],[3,4]]",
                        "{\"a\":[1,2],\"b\":3}"};
  for (const char* text : good) check(valid(text), text);
}

void scanner_rejects_what_rfc8259_does() {
  const char* bad[] = {"", " ", "01", "1.", ".5", "-", "+1", "1e", "[1,]", "{\"a\":1,}", "[,1]",
                       "{1:2}", "{\"a\"}", "NaN", "Infinity", "-Infinity", "tru", "nul", "'a'",
                       "\"a", "\"\\x\"", "\"\\u12\"", "\"\x01\"", "\"\xc0\xaf\"",
                       "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xe2\x82\"", "[1 2]",
                       "{\"a\":1 \"b\":2}", "[1]]", "[[1]", "1 2", "\xef\xbb\xbf{}",
                       // the number-run fast path: a run ends where the grammar says
                       "[1,2,]", "[[1,2,],3]", "{\"a\":[1],2}", "{\"a\":1,2}", "[1,-]",
                       "[1,2,-0.5e]", "[1,2,01]", "[1,2,.5]"};
  for (const char* text : bad) check(!valid(text), text);
  check(error_offset("[1, 2,]") == 6, "the offset of a trailing comma's bracket");
  check(error_offset("{\"a\": tru}") == 6, "the offset of a bad literal");
}

void deep_nesting_is_iterative() {
  // 200k levels would overflow a recursive skipper's stack, notably under ASan.
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  check(valid(deep), "200k nested arrays");
  check(!valid(std::string(200000, '[') + std::string(199999, ']')), "one bracket short");
}

void numbers_convert_exactly() {
  std::string scratch;
  const std::string text = "[0.1, 1e400, -9223372036854775808, 9223372036854775808, 3.0]";
  fastloader::JsonScanner scanner(text.data(), text.size());
  scanner.begin_array();
  bool first = true;
  std::vector<fastloader::JsonNumber> numbers;
  while (scanner.next_element(first)) numbers.push_back(scanner.read_number());
  scanner.finish();
  check(numbers.size() == 5, "five numbers");
  check(numbers[0].to_double() == 0.1, "0.1 correctly rounded");
  check(numbers[1].to_double() > 1e308, "1e400 is +inf");
  int64_t value = 0;
  check(numbers[2].to_int64(value) && value == INT64_MIN, "INT64_MIN fits");
  check(!numbers[3].to_int64(value), "2**63 does not fit int64");
  check(!numbers[4].to_int64(value), "3.0 is not an integer token");
}

const char* kSample = R"({
  "info": {"year": 2024}, "licenses": [],
  "annotations": [
    {"id": 10, "image_id": 2, "category_id": 5, "bbox": [1, 2, 3, 4], "area": 7.5,
     "segmentation": [[1, 2, 3, 4, 5, 6]], "iscrowd": 0},
    {"id": 11, "image_id": 1, "category_id": 9, "bbox": [0.5, 0.25, 10, 20], "iscrowd": 1,
     "keypoints": [1, 2, 2, 0, 0, 0]},
    {"id": 12, "image_id": 2, "category_id": 9, "bbox": [0, 0, 1, 1],
     "segmentation": {"counts": "abc", "size": [4, 4]}}
  ],
  "images": [{"id": 2, "file_name": "two.jpg", "width": 640, "height": 480},
             {"id": 1, "coco_url": "http://h/val2017/one.jpg", "width": 3, "height": 4,
              "not_exhaustive_category_ids": [9], "neg_category_ids": [5, 9]}],
  "categories": [{"id": 9, "name": "dog", "frequency": "c"},
                 {"id": 5, "name": "cat", "frequency": "f"}]
})";

void coco_columns_are_grouped_and_resolved() {
  const std::string text = kSample;
  const CocoIndex index = build_coco_index(text.data(), text.size());
  check(index.image_ids == std::vector<int64_t>({2, 1}), "images in file order");
  check(index.image_sizes == std::vector<int64_t>({480, 640, 4, 3}), "height, width");
  check(std::string(index.file_names.begin(), index.file_names.end()) == "two.jpgval2017/one.jpg",
        "file names, LVIS's from coco_url");
  check(index.category_ids == std::vector<int64_t>({5, 9}), "categories sorted by id");
  check(index.category_frequency == std::vector<uint8_t>({'f', 'c'}), "frequencies follow");
  check(index.object_offsets == std::vector<int64_t>({0, 2, 3}), "objects grouped by image");
  check(index.annotation_ids == std::vector<int64_t>({10, 12, 11}), "file order within an image");
  check(index.labels == std::vector<int64_t>({0, 1, 1}), "labels are sorted-id positions");
  check(index.boxes == std::vector<float>({1, 2, 4, 6, 0, 0, 1, 1, 0.5f, 0.25f, 10.5f, 20.25f}),
        "xywh -> xyxy");
  check(index.crowd == std::vector<uint8_t>({0, 0, 1}), "iscrowd");
  check(index.areas == std::vector<float>({7.5f, 1, 200}), "area, else w * h");
  check(index.num_keypoints == 2, "two keypoints");
  check(index.keypoints == std::vector<float>({-1, -1, -1, -1, -1, -1, -1, -1, 1, 2, -1, -1}),
        "keypoints, -1 where absent or invisible");
  check(index.has_lvis_image_fields, "LVIS image fields seen");
  check(index.not_exhaustive_offsets == std::vector<int64_t>({0, 0, 1}) &&
            index.not_exhaustive == std::vector<int64_t>({1}),
        "not_exhaustive as category positions");
  check(index.negative == std::vector<int64_t>({0, 1}), "neg_category_ids as positions");
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  if (at == std::string::npos) {
    std::fprintf(stderr, "test bug: %s not in the sample\n", from.c_str());
    std::abort();
  }
  return text.replace(at, from.size(), to);
}

bool format_error_mentions(const std::string& text, const char* needle) {
  try {
    build_coco_index(text.data(), text.size());
  } catch (const CocoFormatError& error) {
    if (std::strstr(error.what(), needle)) return true;
    std::fprintf(stderr, "message: %s\n", error.what());
  } catch (const std::exception& error) {
    std::fprintf(stderr, "other error: %s\n", error.what());
  }
  return false;
}

void coco_errors_name_the_ids() {
  const std::string text = kSample;
  check(format_error_mentions(replaced(text, "\"image_id\": 1,", "\"image_id\": 77,"),
                              "annotation id 11 names image_id 77"),
        "unknown image");
  check(format_error_mentions(replaced(text, "\"category_id\": 5,", "\"category_id\": 6,"),
                              "annotation id 10 names category_id 6"),
        "unknown category");
  check(format_error_mentions(replaced(text, "{\"id\": 1, \"coco", "{\"id\": 2, \"coco"),
                              "duplicate image id 2"),
        "duplicate image id");
  check(format_error_mentions(replaced(text, "\"id\": 12,", "\"id\": 10,"),
                              "duplicate annotation id 10"),
        "duplicate annotation id");
  check(format_error_mentions(replaced(text, "[1, 2, 3, 4]", "[1, 2, -3, 4]"), "negative size"),
        "negative width");
  check(format_error_mentions(replaced(text, "[1, 2, 3, 4]", "[1, 2, 3]"), "4 numbers"),
        "three bbox numbers");
  check(format_error_mentions(
            replaced(text, "\"neg_category_ids\": [5, 9]", "\"neg_category_ids\": [4]"),
            "names category id 4"),
        "unknown LVIS category");
  check(format_error_mentions(replaced(text, "\"width\": 640", "\"width\": 640.5"),
                              "'width' should be an integer"),
        "fractional width");
  check(format_error_mentions("[]", "JSON object"), "a list at the top");
  check(format_error_mentions(replaced(text, "\"images\"", "\"imagez\""), "no 'images'"),
        "no images");
  bool json_error = false;
  const std::string broken = replaced(text, "\"iscrowd\": 1,", "\"iscrowd\": 1,,");
  try {
    build_coco_index(broken.data(), broken.size());
  } catch (const JsonError& error) {
    json_error = error.offset == broken.find(",,") + 1;
  }
  check(json_error, "malformed JSON is a JsonError at the offending byte");
  // A UTF-8 byte-order mark is skipped, and offsets still count it.
  const std::string with_bom = "\xEF\xBB\xBF" + text;
  check(build_coco_index(with_bom.data(), with_bom.size()).annotation_ids ==
            std::vector<int64_t>({10, 12, 11}),
        "a byte-order mark is ignored");
  const std::string broken_bom = "\xEF\xBB\xBF" + broken;
  size_t offset = 0;
  try {
    build_coco_index(broken_bom.data(), broken_bom.size());
  } catch (const JsonError& error) {
    offset = error.offset;
  }
  check(offset == broken.find(",,") + 4, "offsets after a byte-order mark count it");
}

}  // namespace

int main() {
  scanner_accepts_rfc8259();
  scanner_rejects_what_rfc8259_does();
  deep_nesting_is_iterative();
  numbers_convert_exactly();
  coco_columns_are_grouped_and_resolved();
  coco_errors_name_the_ids();
  std::printf("%s\n", failures == 0 ? "all C++ checks passed" : "C++ checks FAILED");
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
