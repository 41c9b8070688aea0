// The COCO / LVIS reader: one scan of the JSON into column vectors, then ids resolved and
// annotations grouped by image. One file past the ~400-line guide: the scan is one state machine.
#include "core/coco_index.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>
#include <utility>

#include "core/json_scanner.hpp"

namespace fastloader {

namespace {

constexpr size_t kNowhere = std::numeric_limits<size_t>::max();

// Maps ids to their positions: a dense table when the ids are compact (COCO's and LVIS's are),
// else binary search over the sorted ids. Duplicates are an error naming the id.
class IdLookup {
 public:
  IdLookup(const std::vector<int64_t>& ids, const char* what) {
    const int64_t n = static_cast<int64_t>(ids.size());
    if (n == 0) return;
    min_ = *std::min_element(ids.begin(), ids.end());
    const int64_t max = *std::max_element(ids.begin(), ids.end());
    // The span fits uint64 even for INT64_MIN..INT64_MAX.
    const uint64_t span = static_cast<uint64_t>(max) - static_cast<uint64_t>(min_);
    if (span < static_cast<uint64_t>(4 * n + 1024)) {
      dense_.assign(span + 1, -1);
      for (int64_t i = 0; i < n; ++i) {
        int64_t& slot = dense_[static_cast<uint64_t>(ids[i]) - static_cast<uint64_t>(min_)];
        if (slot >= 0) duplicate(what, ids[i]);
        slot = i;
      }
    } else {
      sorted_.reserve(ids.size());
      for (int64_t i = 0; i < n; ++i) sorted_.emplace_back(ids[i], i);
      std::sort(sorted_.begin(), sorted_.end());
      for (size_t i = 1; i < sorted_.size(); ++i)
        if (sorted_[i].first == sorted_[i - 1].first) duplicate(what, sorted_[i].first);
    }
  }

  // The position of id, or -1.
  int64_t find(int64_t id) const {
    if (!dense_.empty()) {
      if (id < min_) return -1;
      const uint64_t slot = static_cast<uint64_t>(id) - static_cast<uint64_t>(min_);
      return slot < dense_.size() ? dense_[slot] : -1;
    }
    const auto it = std::lower_bound(sorted_.begin(), sorted_.end(),
                                     std::make_pair(id, std::numeric_limits<int64_t>::min()));
    return it != sorted_.end() && it->first == id ? it->second : -1;
  }

 private:
  [[noreturn]] static void duplicate(const char* what, int64_t id) {
    throw CocoFormatError(std::string("duplicate ") + what + " id " + std::to_string(id), kNowhere);
  }
  int64_t min_ = 0;
  std::vector<int64_t> dense_;
  std::vector<std::pair<int64_t, int64_t>> sorted_;
};

// Names an entry by kind and position ("annotation #12") only when a message needs it: building
// the text for every entry would cost an allocation each.
struct Owner {
  const char* kind;
  size_t index;
};

std::string operator+(const Owner& owner, const std::string& text) {
  return std::string(owner.kind) + " #" + std::to_string(owner.index) + text;
}

std::string operator+(const Owner& owner, const char* text) { return owner + std::string(text); }

// The file-order columns, before ids are resolved and annotations grouped.
struct RawCoco {
  std::vector<int64_t> image_ids, image_sizes, file_name_offsets{0};
  std::vector<char> file_names;
  std::vector<size_t> image_offsets;  // where each image object starts (for messages)
  bool lvis = false;
  std::vector<int64_t> not_exhaustive_offsets{0}, not_exhaustive, negative_offsets{0}, negative;
  std::vector<int64_t> category_ids, category_name_offsets{0};
  std::vector<char> category_names;
  std::vector<uint8_t> category_frequency;
  std::vector<int64_t> ann_ids, ann_images, ann_categories;
  std::vector<size_t> ann_offsets;
  std::vector<float> boxes, areas, keypoints;
  std::vector<uint8_t> crowd;
  int64_t num_keypoints = 0;
};

class Reader {
 public:
  Reader(const char* data, size_t size, const std::function<void(size_t)>& consumed)
      : scanner_(data, size), consumed_(consumed) {}

  RawCoco read() {
    if (scanner_.peek() != JsonKind::kObject)
      fail("the file should hold a JSON object with 'images', 'annotations' and 'categories'");
    scanner_.begin_object();
    bool first = true, seen_images = false;
    std::string_view key;
    while (scanner_.next_member(first, key, key_scratch_)) {
      if (key == "images") {
        seen_images = true;
        read_array("images", [this] { read_image(); });
      } else if (key == "annotations") {
        read_array("annotations", [this] { read_annotation(); });
      } else if (key == "categories") {
        read_array("categories", [this] { read_category(); });
      } else {
        scanner_.skip_value();  // info, licenses, ...
      }
    }
    scanner_.finish();
    if (!seen_images) fail("the file has no 'images' list (is it a COCO detection file?)");
    return std::move(raw_);
  }

 private:
  [[noreturn]] void fail(const std::string& what, size_t at = kNowhere) const {
    throw CocoFormatError(what, at == kNowhere ? scanner_.offset() : at);
  }

  template <typename Body>
  void read_array(const char* name, Body&& body) {
    if (scanner_.peek() != JsonKind::kArray) fail(std::string("'") + name + "' should be a list");
    scanner_.begin_array();
    bool first = true;
    while (scanner_.next_element(first)) {
      body();
      if (consumed_ && scanner_.offset() - reported_ >= kReportEvery) {
        reported_ = scanner_.offset();
        consumed_(reported_);
      }
    }
  }

  int64_t read_int(const char* field, const Owner& owner) {
    const size_t at = scanner_.offset();
    if (scanner_.peek() != JsonKind::kNumber)
      fail(owner + ": '" + field + "' should be an integer", at);
    const JsonNumber number = scanner_.read_number();
    int64_t value;
    if (!number.to_int64(value))
      fail(owner + ": '" + field + "' should be an integer, got " + std::string(number.text), at);
    return value;
  }

  double read_real(const char* field, const Owner& owner) {
    const size_t at = scanner_.offset();
    if (scanner_.peek() != JsonKind::kNumber)
      fail(owner + ": '" + field + "' should be a number", at);
    return scanner_.read_number().to_double();
  }

  void read_id_list(const char* field, const Owner& owner, std::vector<int64_t>& out) {
    if (scanner_.peek() != JsonKind::kArray) fail(owner + ": '" + field + "' should be a list");
    scanner_.begin_array();
    bool first = true;
    while (scanner_.next_element(first)) out.push_back(read_int(field, owner));
  }

  void read_image() {
    const size_t at = scanner_.offset();
    if (scanner_.peek() != JsonKind::kObject) fail("every entry of 'images' should be an object");
    scanner_.begin_object();
    bool first = true, has_id = false;
    int64_t id = 0, width = -1, height = -1;
    std::string file_name, coco_url;
    bool has_file_name = false;
    std::vector<int64_t> not_exhaustive, negative;
    std::string_view key;
    const Owner owner{"image", raw_.image_ids.size()};
    while (scanner_.next_member(first, key, key_scratch_)) {
      if (key == "id") {
        id = read_int("id", owner);
        has_id = true;
      } else if (key == "file_name") {
        if (scanner_.peek() != JsonKind::kString) fail(owner + ": 'file_name' should be a string");
        file_name = std::string(scanner_.read_string(value_scratch_));
        has_file_name = true;
      } else if (key == "coco_url") {
        if (scanner_.peek() == JsonKind::kString)
          coco_url = std::string(scanner_.read_string(value_scratch_));
        else
          scanner_.skip_value();
      } else if (key == "width") {
        width = read_int("width", owner);
      } else if (key == "height") {
        height = read_int("height", owner);
      } else if (key == "not_exhaustive_category_ids") {
        raw_.lvis = true;
        read_id_list("not_exhaustive_category_ids", owner, not_exhaustive);
      } else if (key == "neg_category_ids") {
        raw_.lvis = true;
        read_id_list("neg_category_ids", owner, negative);
      } else {
        scanner_.skip_value();
      }
    }
    if (!has_id) fail(owner + " has no 'id'", at);
    const auto named = [id] { return "image id " + std::to_string(id); };
    if (!has_file_name) {
      // LVIS gives coco_url only; its last two parts are the split folder and the file name.
      const size_t last = coco_url.rfind('/');
      const size_t before = last == std::string::npos || last == 0 ? std::string::npos
                                                                   : coco_url.rfind('/', last - 1);
      if (before == std::string::npos)
        fail(named() + " has neither 'file_name' nor 'coco_url'", at);
      file_name = coco_url.substr(before + 1);
    }
    if (width <= 0 || height <= 0)
      fail(named() + " should have a positive integer 'width' and 'height', got width=" +
               std::to_string(width) + ", height=" + std::to_string(height) + " (-1: missing)",
           at);
    raw_.image_ids.push_back(id);
    raw_.image_sizes.push_back(height);
    raw_.image_sizes.push_back(width);
    raw_.file_names.insert(raw_.file_names.end(), file_name.begin(), file_name.end());
    raw_.file_name_offsets.push_back(static_cast<int64_t>(raw_.file_names.size()));
    raw_.image_offsets.push_back(at);
    raw_.not_exhaustive.insert(raw_.not_exhaustive.end(), not_exhaustive.begin(),
                               not_exhaustive.end());
    raw_.not_exhaustive_offsets.push_back(static_cast<int64_t>(raw_.not_exhaustive.size()));
    raw_.negative.insert(raw_.negative.end(), negative.begin(), negative.end());
    raw_.negative_offsets.push_back(static_cast<int64_t>(raw_.negative.size()));
  }

  void read_category() {
    const size_t at = scanner_.offset();
    if (scanner_.peek() != JsonKind::kObject)
      fail("every entry of 'categories' should be an object");
    scanner_.begin_object();
    bool first = true, has_id = false, has_name = false;
    int64_t id = 0;
    std::string name;
    uint8_t frequency = 0;
    std::string_view key;
    const Owner owner{"category", raw_.category_ids.size()};
    while (scanner_.next_member(first, key, key_scratch_)) {
      if (key == "id") {
        id = read_int("id", owner);
        has_id = true;
      } else if (key == "name") {
        if (scanner_.peek() != JsonKind::kString) fail(owner + ": 'name' should be a string");
        name = std::string(scanner_.read_string(value_scratch_));
        has_name = true;
      } else if (key == "frequency") {
        const size_t where = scanner_.offset();
        const bool is_string = scanner_.peek() == JsonKind::kString;
        const std::string_view text = is_string ? scanner_.read_string(value_scratch_) : "";
        if (!is_string || text.size() != 1 || (text != "f" && text != "c" && text != "r"))
          fail(owner + ": 'frequency' should be \"f\", \"c\" or \"r\" (LVIS)", where);
        frequency = static_cast<uint8_t>(text[0]);
      } else {
        scanner_.skip_value();
      }
    }
    if (!has_id) fail(owner + " has no 'id'", at);
    if (!has_name) fail("category id " + std::to_string(id) + " has no 'name'", at);
    raw_.category_ids.push_back(id);
    raw_.category_names.insert(raw_.category_names.end(), name.begin(), name.end());
    raw_.category_name_offsets.push_back(static_cast<int64_t>(raw_.category_names.size()));
    raw_.category_frequency.push_back(frequency);
  }

  void read_annotation() {
    const size_t at = scanner_.offset();
    if (scanner_.peek() != JsonKind::kObject)
      fail("every entry of 'annotations' should be an object");
    scanner_.begin_object();
    bool first = true, has_id = false, has_image = false, has_category = false, has_box = false;
    bool has_area = false, crowd = false;
    int64_t id = 0, image = 0, category = 0;
    double box[4] = {0, 0, 0, 0};
    double area = 0;
    points_.clear();
    bool has_points = false;
    std::string_view key;
    const Owner owner{"annotation", raw_.ann_ids.size()};
    while (scanner_.next_member(first, key, key_scratch_)) {
      if (key == "segmentation") {
        scanner_.skip_value();  // the bulk of a COCO file: validated, never stored
      } else if (key == "id") {
        id = read_int("id", owner);
        has_id = true;
      } else if (key == "image_id") {
        image = read_int("image_id", owner);
        has_image = true;
      } else if (key == "category_id") {
        category = read_int("category_id", owner);
        has_category = true;
      } else if (key == "bbox") {
        const size_t where = scanner_.offset();
        if (scanner_.peek() != JsonKind::kArray) fail(owner + ": 'bbox' should be a list", where);
        scanner_.begin_array();
        bool first_number = true;
        int count = 0;
        while (scanner_.next_element(first_number)) {
          const double value = read_real("bbox", owner);
          if (count < 4) box[count] = value;
          ++count;
        }
        if (count != 4)
          fail(owner + ": 'bbox' should hold 4 numbers [x, y, width, height], got " +
                   std::to_string(count),
               where);
        has_box = true;
      } else if (key == "iscrowd" || key == "ignore") {
        const JsonKind kind = scanner_.peek();
        if (kind == JsonKind::kTrue || kind == JsonKind::kFalse)
          crowd = scanner_.read_bool() || crowd;
        else
          crowd = read_int(key == "iscrowd" ? "iscrowd" : "ignore", owner) != 0 || crowd;
      } else if (key == "area") {
        area = read_real("area", owner);
        has_area = true;
      } else if (key == "keypoints") {
        if (scanner_.peek() != JsonKind::kArray) fail(owner + ": 'keypoints' should be a list");
        scanner_.begin_array();
        bool first_number = true;
        while (scanner_.next_element(first_number))
          points_.push_back(read_real("keypoints", owner));
        has_points = !points_.empty();
      } else {
        scanner_.skip_value();
      }
    }
    if (!has_id) fail(owner + " has no 'id'", at);
    const auto named = [id] { return "annotation id " + std::to_string(id); };
    if (!has_image) fail(named() + " has no 'image_id'", at);
    if (!has_category) fail(named() + " has no 'category_id'", at);
    if (!has_box) fail(named() + " has no 'bbox'", at);
    for (double value : box)
      if (!std::isfinite(value)) fail(named() + ": 'bbox' holds a value that is not finite", at);
    if (box[2] < 0 || box[3] < 0)
      fail(named() + ": 'bbox' [x, y, width, height] has a negative size (width " +
               std::to_string(box[2]) + ", height " + std::to_string(box[3]) + ")",
           at);
    raw_.ann_ids.push_back(id);
    raw_.ann_images.push_back(image);
    raw_.ann_categories.push_back(category);
    raw_.ann_offsets.push_back(at);
    // In double, as pycocotools / detectron2 add them, then rounded once to float32.
    raw_.boxes.push_back(static_cast<float>(box[0]));
    raw_.boxes.push_back(static_cast<float>(box[1]));
    raw_.boxes.push_back(static_cast<float>(box[0] + box[2]));
    raw_.boxes.push_back(static_cast<float>(box[1] + box[3]));
    raw_.crowd.push_back(crowd ? 1 : 0);
    raw_.areas.push_back(static_cast<float>(has_area ? area : box[2] * box[3]));
    if (has_points) {
      if (points_.size() % 3 != 0)
        fail(named() + ": 'keypoints' should hold x, y, visibility triples, got " +
                 std::to_string(points_.size()) + " numbers",
             at);
      const int64_t k = static_cast<int64_t>(points_.size() / 3);
      if (raw_.num_keypoints == 0) {
        // Annotations before the first with keypoints have none: absent (-1).
        raw_.num_keypoints = k;
        raw_.keypoints.assign(static_cast<size_t>(2 * k) * (raw_.ann_ids.size() - 1), -1.0f);
      } else if (k != raw_.num_keypoints) {
        fail(named() + ": 'keypoints' holds " + std::to_string(k) +
                 " points, earlier annotations " + std::to_string(raw_.num_keypoints),
             at);
      }
      for (int64_t p = 0; p < k; ++p) {
        const bool visible = points_[3 * p + 2] != 0;
        raw_.keypoints.push_back(visible ? static_cast<float>(points_[3 * p]) : -1.0f);
        raw_.keypoints.push_back(visible ? static_cast<float>(points_[3 * p + 1]) : -1.0f);
      }
    } else if (raw_.num_keypoints > 0) {
      raw_.keypoints.insert(raw_.keypoints.end(), static_cast<size_t>(2 * raw_.num_keypoints),
                            -1.0f);
    }
  }

  static constexpr size_t kReportEvery = size_t{16} << 20;
  JsonScanner scanner_;
  const std::function<void(size_t)>& consumed_;
  size_t reported_ = 0;
  std::string key_scratch_, value_scratch_;
  std::vector<double> points_;
  RawCoco raw_;
};

// Category ids -> positions in a CSR list, in place.
void map_categories(std::vector<int64_t>& ids, const std::vector<int64_t>& offsets,
                    const std::vector<int64_t>& image_ids, const IdLookup& categories,
                    const char* field) {
  for (size_t image = 0; image + 1 < offsets.size(); ++image)
    for (int64_t k = offsets[image]; k < offsets[image + 1]; ++k) {
      const int64_t position = categories.find(ids[k]);
      if (position < 0)
        throw CocoFormatError("image id " + std::to_string(image_ids[image]) + ": '" + field +
                                  "' names category id " + std::to_string(ids[k]) +
                                  ", which is not in 'categories'",
                              kNowhere);
      ids[k] = position;
    }
}

CocoIndex resolve(RawCoco raw) {
  CocoIndex out;
  const size_t num_images = raw.image_ids.size();
  const IdLookup images(raw.image_ids, "image");
  // Categories sorted by id: a category's class index is its position (as detectron2 and
  // torchvision number them).
  const size_t num_categories = raw.category_ids.size();
  std::vector<int64_t> order(num_categories);
  for (size_t i = 0; i < num_categories; ++i) order[i] = static_cast<int64_t>(i);
  std::sort(order.begin(), order.end(),
            [&](int64_t a, int64_t b) { return raw.category_ids[a] < raw.category_ids[b]; });
  out.category_name_offsets.push_back(0);
  for (int64_t i : order) {
    out.category_ids.push_back(raw.category_ids[i]);
    out.category_names.insert(out.category_names.end(),
                              raw.category_names.begin() + raw.category_name_offsets[i],
                              raw.category_names.begin() + raw.category_name_offsets[i + 1]);
    out.category_name_offsets.push_back(static_cast<int64_t>(out.category_names.size()));
    out.category_frequency.push_back(raw.category_frequency[i]);
  }
  const IdLookup categories(out.category_ids, "category");
  {
    const IdLookup annotations(raw.ann_ids, "annotation");
  }

  // Resolve each annotation's image and category, then group by image (a stable counting sort).
  const size_t num_objects = raw.ann_ids.size();
  std::vector<int64_t> image_of(num_objects);
  out.object_offsets.assign(num_images + 1, 0);
  std::vector<int64_t> label_of(num_objects);
  for (size_t j = 0; j < num_objects; ++j) {
    const int64_t image = images.find(raw.ann_images[j]);
    if (image < 0)
      throw CocoFormatError("annotation id " + std::to_string(raw.ann_ids[j]) + " names image_id " +
                                std::to_string(raw.ann_images[j]) + ", which is not in 'images'",
                            raw.ann_offsets[j]);
    const int64_t label = categories.find(raw.ann_categories[j]);
    if (label < 0)
      throw CocoFormatError("annotation id " + std::to_string(raw.ann_ids[j]) +
                                " names category_id " + std::to_string(raw.ann_categories[j]) +
                                ", which is not in 'categories'",
                            raw.ann_offsets[j]);
    image_of[j] = image;
    label_of[j] = label;
    ++out.object_offsets[image + 1];
  }
  for (size_t i = 0; i < num_images; ++i) out.object_offsets[i + 1] += out.object_offsets[i];
  std::vector<int64_t> cursor(out.object_offsets.begin(), out.object_offsets.end() - 1);
  const int64_t k2 = 2 * raw.num_keypoints;
  out.num_keypoints = raw.num_keypoints;
  out.annotation_ids.resize(num_objects);
  out.labels.resize(num_objects);
  out.crowd.resize(num_objects);
  out.areas.resize(num_objects);
  out.boxes.resize(4 * num_objects);
  out.keypoints.resize(static_cast<size_t>(k2) * num_objects);
  for (size_t j = 0; j < num_objects; ++j) {
    const int64_t slot = cursor[image_of[j]]++;
    out.annotation_ids[slot] = raw.ann_ids[j];
    out.labels[slot] = label_of[j];
    out.crowd[slot] = raw.crowd[j];
    out.areas[slot] = raw.areas[j];
    std::memcpy(&out.boxes[4 * slot], &raw.boxes[4 * j], 4 * sizeof(float));
    if (k2) std::memcpy(&out.keypoints[k2 * slot], &raw.keypoints[k2 * j], k2 * sizeof(float));
  }

  map_categories(raw.not_exhaustive, raw.not_exhaustive_offsets, raw.image_ids, categories,
                 "not_exhaustive_category_ids");
  map_categories(raw.negative, raw.negative_offsets, raw.image_ids, categories, "neg_category_ids");
  out.has_lvis_image_fields = raw.lvis;
  out.not_exhaustive_offsets = std::move(raw.not_exhaustive_offsets);
  out.not_exhaustive = std::move(raw.not_exhaustive);
  out.negative_offsets = std::move(raw.negative_offsets);
  out.negative = std::move(raw.negative);
  out.image_ids = std::move(raw.image_ids);
  out.image_sizes = std::move(raw.image_sizes);
  out.file_names = std::move(raw.file_names);
  out.file_name_offsets = std::move(raw.file_name_offsets);
  return out;
}

// A read-only mapping of a whole file, unmapped on destruction.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::invalid_argument(path + ": cannot open: " + std::strerror(errno));
    struct stat info;
    if (::fstat(fd, &info) != 0) {
      const int error = errno;
      ::close(fd);
      throw std::invalid_argument(path + ": cannot stat: " + std::strerror(error));
    }
    size_ = static_cast<size_t>(info.st_size);
    if (size_ > 0) {
      void* base = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      const int error = errno;
      ::close(fd);
      if (base == MAP_FAILED)
        throw std::invalid_argument(path + ": cannot map: " + std::strerror(error));
      data_ = static_cast<const char*>(base);
      ::madvise(base, size_, MADV_SEQUENTIAL);
    } else {
      ::close(fd);
    }
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const char* data() const { return data_ ? data_ : ""; }
  size_t size() const { return size_; }

  // Drops the pages wholly before `offset` from this process (the page cache keeps them; a
  // later read, e.g. for an error's line number, faults them back in).
  void release_before(size_t offset) {
    if (!data_) return;
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const size_t end = offset / page * page;
    if (end > released_) {
      ::madvise(const_cast<char*>(data_) + released_, end - released_, MADV_DONTNEED);
      released_ = end;
    }
  }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
  size_t released_ = 0;
};

std::string locate(const char* data, size_t size, size_t offset) {
  size_t line, column;
  json_line_column(data, size, offset, line, column);
  return "byte " + std::to_string(offset) + " (line " + std::to_string(line) + ", column " +
         std::to_string(column) + ")";
}

}  // namespace

CocoIndex build_coco_index(const char* data, size_t size,
                           const std::function<void(size_t)>& consumed) {
  // RFC 8259 lets a reader ignore a UTF-8 byte-order mark (some Windows tools write one);
  // offsets in errors stay those of the whole file.
  const size_t skip = size >= 3 && std::memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
  try {
    RawCoco raw = Reader(data + skip, size - skip, [&consumed, skip](size_t offset) {
                    if (consumed) consumed(offset + skip);
                  }).read();
    return resolve(std::move(raw));
  } catch (const JsonError& error) {
    throw JsonError(error.what(), error.offset + skip);
  } catch (const CocoFormatError& error) {
    throw CocoFormatError(error.what(), error.offset == kNowhere ? kNowhere : error.offset + skip);
  }
}

CocoIndex load_coco_index(const std::string& path) {
  MappedFile file(path);
  try {
    // Keep a margin behind the scan: the member being read may start before the report.
    const size_t margin = size_t{1} << 20;
    return build_coco_index(file.data(), file.size(), [&file, margin](size_t offset) {
      if (offset > margin) file.release_before(offset - margin);
    });
  } catch (const JsonError& error) {
    throw std::invalid_argument(path + ": invalid JSON at " +
                                locate(file.data(), file.size(), error.offset) + ": " +
                                error.what());
  } catch (const CocoFormatError& error) {
    const std::string where =
        error.offset == kNowhere ? "" : " (" + locate(file.data(), file.size(), error.offset) + ")";
    throw std::invalid_argument(path + where + ": " + error.what());
  }
}

}  // namespace fastloader
