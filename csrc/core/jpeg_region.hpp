// Decoding one rectangle of a JPEG with libjpeg-turbo, opened at run time: the rows above it are
// skipped (entropy-decoded only), the rows below it never read, the columns beside it never
// transformed (jpeg_skip_scanlines, jpeg_crop_scanline). We ship no codec and link none: the
// library is the one Pillow bundles or the system's, found by the Python layer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace fastloader::jpeg {

struct Header {
  int64_t height = 0, width = 0;
  int components = 0;
  // Whether decode_region can give 3-channel pixels (YCbCr, RGB or grayscale; not CMYK / YCCK).
  bool region_decodable = false;
};

// The rectangle decode_region wrote: rows [top, top + height), columns [left, left + width) of
// the image. It holds the one asked for and up to region_slack more columns: one column of
// context left and region_right_context right (fancy upsampling of an edge column reads the
// chroma sample beyond it: with them the asked columns equal a full decode's), then the left
// edge moved left to an iMCU boundary (up to 31 columns).
struct Region {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

constexpr int64_t region_right_context = 16;
constexpr int64_t region_slack = 1 + 31 + region_right_context;

class RegionDecoder {
 public:
  // Opens the libjpeg-turbo library at `library_path` (libjpeg 6.2 ABI, libjpeg-turbo 2.0 or
  // newer). Throws std::invalid_argument naming the path when it cannot be opened or is not one.
  explicit RegionDecoder(const std::string& library_path);
  ~RegionDecoder();
  RegionDecoder(const RegionDecoder&) = delete;
  RegionDecoder& operator=(const RegionDecoder&) = delete;

  const std::string& path() const noexcept { return path_; }

  // The image's size from its header. Throws std::invalid_argument with libjpeg's message.
  Header header(const uint8_t* data, size_t size) const;

  // Decodes rows [top, top + height) and columns [left, left + width) as 3-channel uint8 (BGR
  // when `bgr`, else RGB; grayscale replicated) into `out`, row r of the region at
  // out + r * out_row_stride, room for out_capacity_columns pixels a row (at least
  // width + region_slack). Equal to the same pixels of a full decode. libjpeg's warnings (corrupt or truncated
  // data in the rows read) are errors. Throws std::invalid_argument on bad data or arguments.
  Region decode_region(const uint8_t* data, size_t size, int64_t top, int64_t left, int64_t height,
                       int64_t width, bool bgr, uint8_t* out, int64_t out_row_stride,
                       int64_t out_capacity_columns) const;

  struct Api;  // the library's functions (defined in the .cpp)

 private:
  std::string path_;
  void* handle_ = nullptr;
  std::unique_ptr<Api> api_;
};

}  // namespace fastloader::jpeg
