// COCO / LVIS detection JSON read in one pass into packed arrays (no object per annotation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace fastloader {

// The detection content of a COCO-format file. Segmentations (and every field not listed here)
// are validated as JSON and skipped without being stored.
struct CocoIndex {
  // Images, in file order.
  std::vector<int64_t> image_ids;
  std::vector<int64_t> image_sizes;  // [images, 2]: height, width
  std::vector<char> file_names;      // UTF-8, concatenated; image i is [offsets[i], offsets[i+1])
  std::vector<int64_t> file_name_offsets;  // images + 1
  // LVIS: per image, the categories (as positions among the sorted ids) whose absence is not
  // exhaustive, and those known absent. CSR by image; all offsets 0 when the file has none.
  bool has_lvis_image_fields = false;
  std::vector<int64_t> not_exhaustive_offsets, not_exhaustive;
  std::vector<int64_t> negative_offsets, negative;
  // Categories, sorted by id (a category's class index is its position here).
  std::vector<int64_t> category_ids;
  std::vector<char> category_names;
  std::vector<int64_t> category_name_offsets;  // categories + 1
  std::vector<uint8_t> category_frequency;     // LVIS 'f', 'c', 'r'; 0 when absent
  // Annotations grouped by image (image order, file order within an image).
  int64_t num_keypoints = 0;            // K: keypoints per annotation (0: the file has none)
  std::vector<int64_t> object_offsets;  // images + 1
  std::vector<int64_t> annotation_ids;
  std::vector<float> boxes;      // [objects, 4] x1, y1, x2, y2 in pixels (COCO's x + w, y + h)
  std::vector<int64_t> labels;   // class index (position of category_id among sorted ids)
  std::vector<uint8_t> crowd;    // iscrowd or ignore set
  std::vector<float> areas;      // "area", else w * h
  std::vector<float> keypoints;  // [objects, K, 2]; -1 where absent (visibility 0 or no keypoints)
};

// Parses a COCO JSON text (a leading UTF-8 byte-order mark is ignored). `consumed(offset)` is called now and then with how far the scan got,
// so a file mapping can drop what lies behind. Malformed JSON throws JsonError (its offset); a
// well-formed file whose content breaks the format (unknown or duplicate ids, bboxes that are
// not 4 finite numbers or have a negative size, ...) throws CocoFormatError naming the ids.
CocoIndex build_coco_index(const char* data, size_t size,
                           const std::function<void(size_t)>& consumed = {});

// Reads the file through a read-only mapping whose consumed prefix is released as the scan
// advances, so memory grows by the packed arrays, not the file. Every error is a
// std::invalid_argument whose message starts with the path; JSON errors give the byte offset,
// line and column.
CocoIndex load_coco_index(const std::string& path);

class CocoFormatError : public std::invalid_argument {
 public:
  // offset: the byte where the offending value starts (SIZE_MAX when none applies).
  CocoFormatError(const std::string& what, size_t offset)
      : std::invalid_argument(what), offset(offset) {}
  size_t offset;
};

}  // namespace fastloader
