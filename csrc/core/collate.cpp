// Copy kernels of the detection collate: one pass from each sample straight into the batch buffer.
#include "core/collate.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "core/parallel.hpp"

namespace fastloader {

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  if (a < 0 || b < 0) throw std::invalid_argument(std::string(what) + " is negative");
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a)
    throw std::invalid_argument(std::string(what) + " overflows int64 (" + std::to_string(a) +
                                " * " + std::to_string(b) + ")");
  return a * b;
}

int64_t checked_add(int64_t a, int64_t b, const char* what) {
  if (a < 0 || b < 0) throw std::invalid_argument(std::string(what) + " is negative");
  if (b > std::numeric_limits<int64_t>::max() - a)
    throw std::invalid_argument(std::string(what) + " overflows int64 (" + std::to_string(a) +
                                " + " + std::to_string(b) + ")");
  return a + b;
}

namespace {

// Below this many output bytes per thread, starting a thread costs more than its share of the
// copy saves (figures: bench/results/collate_steps.md).
constexpr int64_t kMinBytesPerThread = int64_t{4} << 20;

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void check_view(const StridedView& view, int64_t element_size, const char* what, size_t index) {
  const std::string name = std::string(what) + " " + std::to_string(index);
  if (view.shape.size() != view.strides.size())
    throw std::invalid_argument(name + ": shape and strides differ in length");
  for (int64_t extent : view.shape)
    if (extent < 0)
      throw std::invalid_argument(name + " has a negative extent in shape " +
                                  shape_string(view.shape));
  const int64_t numel = view.numel();  // throws on overflow
  if (numel == 0) return;
  if (view.data == nullptr) throw std::invalid_argument(name + " has no data");
  // The farthest byte any element is read from, relative to element 0, must be representable:
  // the copy loops form data + i * stride for every index.
  int64_t span = element_size;
  for (size_t d = 0; d < view.shape.size(); ++d) {
    const int64_t stride = view.strides[d];
    if (stride == std::numeric_limits<int64_t>::min())
      throw std::invalid_argument(name + " has stride " + std::to_string(stride));
    const int64_t magnitude = stride < 0 ? -stride : stride;
    span = checked_add(span, checked_mul(magnitude, view.shape[d] - 1, "a stride"), "a stride");
  }
}

// Fixed-size element types let the compiler turn strided loops into plain moves.
template <int64_t E>
struct Element {
  unsigned char bytes[E];
};

template <int64_t E>
void copy_strided(unsigned char* dst, int64_t dst_stride, const unsigned char* src,
                  int64_t src_stride, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    std::memcpy(dst + i * dst_stride, src + i * src_stride, static_cast<size_t>(E));
}

// dst[i * dst_stride] = src[i * src_stride] for count elements of `element_size` bytes.
void copy_elements(unsigned char* dst, int64_t dst_stride, const unsigned char* src,
                   int64_t src_stride, int64_t count, int64_t element_size) {
  if (count <= 0) return;
  if (dst_stride == element_size && src_stride == element_size) {
    std::memcpy(dst, src, static_cast<size_t>(count * element_size));
    return;
  }
  switch (element_size) {
    case 1: return copy_strided<1>(dst, dst_stride, src, src_stride, count);
    case 2: return copy_strided<2>(dst, dst_stride, src, src_stride, count);
    case 4: return copy_strided<4>(dst, dst_stride, src, src_stride, count);
    case 8: return copy_strided<8>(dst, dst_stride, src, src_stride, count);
    default:
      for (int64_t i = 0; i < count; ++i)
        std::memcpy(dst + i * dst_stride, src + i * src_stride, static_cast<size_t>(element_size));
  }
}

template <typename Word>
void fill_words(unsigned char* dst, const unsigned char* pattern, int64_t count) {
  Word word;
  std::memcpy(&word, pattern, sizeof(Word));
  for (int64_t i = 0; i < count; ++i) std::memcpy(dst + i * int64_t{sizeof(Word)}, &word, sizeof(Word));
}

// Writes `count` contiguous copies of the element_size-byte `pattern`.
void fill_elements(unsigned char* dst, const unsigned char* pattern, int64_t count,
                   int64_t element_size) {
  if (count <= 0) return;
  bool uniform = true;  // every byte equal (0, or 0xFF...): one memset does it
  for (int64_t i = 1; i < element_size; ++i) uniform &= pattern[i] == pattern[0];
  if (uniform) {
    std::memset(dst, pattern[0], static_cast<size_t>(count * element_size));
    return;
  }
  switch (element_size) {
    case 2: return fill_words<uint16_t>(dst, pattern, count);
    case 4: return fill_words<uint32_t>(dst, pattern, count);
    case 8: return fill_words<uint64_t>(dst, pattern, count);
    default:
      for (int64_t i = 0; i < count; ++i)
        std::memcpy(dst + i * element_size, pattern, static_cast<size_t>(element_size));
  }
}

void check_images(const std::vector<StridedView>& images, const ImageBatchSpec& spec,
                  int64_t out_bytes) {
  if (spec.channels < 0 || spec.height < 0 || spec.width < 0 || spec.element_size <= 0)
    throw std::invalid_argument("pad_images: negative output shape or non-positive element size");
  for (size_t b = 0; b < images.size(); ++b) {
    const StridedView& image = images[b];
    check_view(image, spec.element_size, "image", b);
    if (image.shape.size() != 3)
      throw std::invalid_argument("image " + std::to_string(b) + " should be 3-D [C, H, W], got " +
                                  shape_string(image.shape));
    if (image.shape[0] != spec.channels || image.shape[1] > spec.height ||
        image.shape[2] > spec.width)
      throw std::invalid_argument("image " + std::to_string(b) + " of shape " +
                                  shape_string(image.shape) + " does not fit the batch slot [" +
                                  std::to_string(spec.channels) + ", " +
                                  std::to_string(spec.height) + ", " + std::to_string(spec.width) +
                                  "]");
  }
  // Checked once here: every row offset and byte count the copy loops form is below `needed`.
  const char* what = "pad_images: the batch's byte count";
  int64_t needed = checked_mul(static_cast<int64_t>(images.size()), spec.channels, what);
  needed = checked_mul(needed, spec.height, what);
  needed = checked_mul(needed, spec.width, what);
  needed = checked_mul(needed, spec.element_size, what);
  if (out_bytes < needed)
    throw std::invalid_argument("pad_images: output holds " + std::to_string(out_bytes) +
                                " bytes, " + std::to_string(needed) + " needed");
}

// Output rows [begin, end) of a [B, C, H, W] batch; row r is (b, c, y) in C order.
void pad_rows_nchw(const std::vector<StridedView>& images, const ImageBatchSpec& spec,
                   const unsigned char* fill, unsigned char* out, int64_t begin, int64_t end) {
  const int64_t E = spec.element_size, H = spec.height, W = spec.width, C = spec.channels;
  const int64_t row_bytes = W * E;
  int64_t row = begin;
  while (row < end) {
    const int64_t plane = row / H, y = row % H;
    const int64_t b = plane / C, c = plane % C;
    const StridedView& image = images[static_cast<size_t>(b)];
    const int64_t h = image.shape[1], w = image.shape[2];
    const int64_t plane_end = std::min(end, (plane + 1) * H);  // rows of this (b, c) in range
    unsigned char* dst = out + row * row_bytes;
    const int64_t copy_end = std::min(plane_end, plane * H + h);
    const unsigned char* src = image.data + c * image.strides[0];
    if (row < copy_end) {
      const int64_t rows = copy_end - row;
      const unsigned char* first = src + y * image.strides[1];
      if (w == W && image.strides[2] == E && image.strides[1] == row_bytes) {
        // Same-width contiguous rows: the plain stacking path, one memcpy per plane run.
        std::memcpy(dst, first, static_cast<size_t>(rows * row_bytes));
      } else {
        for (int64_t i = 0; i < rows; ++i) {
          unsigned char* d = dst + i * row_bytes;
          copy_elements(d, E, first + i * image.strides[1], image.strides[2], w, E);
          fill_elements(d + w * E, fill, W - w, E);
        }
      }
      dst += rows * row_bytes;
      row = copy_end;
    }
    if (row < plane_end) {  // bottom padding rows are one contiguous run
      fill_elements(dst, fill, (plane_end - row) * W, E);
      row = plane_end;
    }
  }
}

// Output rows [begin, end) of a channels_last [B, H, W, C] batch; row r is (b, y).
void pad_rows_nhwc(const std::vector<StridedView>& images, const ImageBatchSpec& spec,
                   const unsigned char* fill, unsigned char* out, int64_t begin, int64_t end) {
  const int64_t E = spec.element_size, H = spec.height, W = spec.width, C = spec.channels;
  const int64_t pixel_bytes = C * E, row_bytes = W * pixel_bytes;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / H, y = row % H;
    const StridedView& image = images[static_cast<size_t>(b)];
    const int64_t h = image.shape[1], w = image.shape[2];
    unsigned char* dst = out + row * row_bytes;
    if (y >= h) {
      fill_elements(dst, fill, W * C, E);
      continue;
    }
    const unsigned char* src = image.data + y * image.strides[1];
    if (image.strides[0] == E && image.strides[2] == pixel_bytes) {
      std::memcpy(dst, src, static_cast<size_t>(w * pixel_bytes));  // source already HWC
    } else {
      // Planar source: channel c of pixel x lands at x * C + c; reads stay sequential.
      for (int64_t c = 0; c < C; ++c)
        copy_elements(dst + c * E, pixel_bytes, src + c * image.strides[0], image.strides[2], w, E);
    }
    fill_elements(dst + w * pixel_bytes, fill, (W - w) * C, E);
  }
}

// Copies one N-d strided source in C order to contiguous dst.
void copy_to_contiguous(unsigned char* dst, const StridedView& src, int64_t element_size) {
  const size_t ndim = src.shape.size();
  const int64_t numel = src.numel();
  if (numel == 0) return;
  // Fold trailing dimensions that are already contiguous into one memcpy-able run.
  int64_t run = 1;
  size_t inner = ndim;  // dims [inner, ndim) form the contiguous run
  int64_t expected = element_size;
  while (inner > 0 && (src.shape[inner - 1] == 1 || src.strides[inner - 1] == expected)) {
    --inner;
    run *= src.shape[inner];
    expected *= src.shape[inner];
  }
  if (inner == 0) {
    std::memcpy(dst, src.data, static_cast<size_t>(numel * element_size));
    return;
  }
  // The innermost non-contiguous dim is copied element-strided; the outer ones are counted.
  const size_t last = inner - 1;
  const int64_t count = src.shape[last];
  const int64_t step = src.strides[last];
  std::vector<int64_t> index(last, 0);
  const int64_t chunk_bytes = run * element_size;
  for (;;) {
    const unsigned char* base = src.data;
    for (size_t d = 0; d < last; ++d) base += index[d] * src.strides[d];
    if (run == 1) {
      copy_elements(dst, element_size, base, step, count, element_size);
    } else {
      for (int64_t i = 0; i < count; ++i)
        std::memcpy(dst + i * chunk_bytes, base + i * step, static_cast<size_t>(chunk_bytes));
    }
    dst += count * chunk_bytes;
    // Odometer over the outer dims [0, last); done when the outermost one wraps.
    for (size_t d = last;;) {
      if (d == 0) return;
      --d;
      if (++index[d] < src.shape[d]) break;
      index[d] = 0;
    }
  }
}

}  // namespace

int64_t StridedView::numel() const {
  int64_t n = 1;
  for (int64_t extent : shape) n = checked_mul(n, extent, "an array's element count");
  return n;
}

void pad_images(const std::vector<StridedView>& images, const ImageBatchSpec& spec,
                const unsigned char* fill, unsigned char* out, int64_t out_bytes, int threads) {
  check_images(images, spec, out_bytes);
  const int64_t batch = static_cast<int64_t>(images.size());
  const int64_t rows = spec.channels_last ? batch * spec.height : batch * spec.channels * spec.height;
  if (rows == 0 || spec.width == 0) return;
  const int64_t row_bytes = spec.width * spec.element_size * (spec.channels_last ? spec.channels : 1);
  if (row_bytes == 0) return;
  const int64_t min_rows = std::max<int64_t>(1, kMinBytesPerThread / row_bytes);
  parallel_for(rows, threads, min_rows, [&](int64_t begin, int64_t end) {
    if (spec.channels_last)
      pad_rows_nhwc(images, spec, fill, out, begin, end);
    else
      pad_rows_nchw(images, spec, fill, out, begin, end);
  });
}

void pack_arrays(const std::vector<StridedView>& sources, int64_t element_size, unsigned char* out,
                 int64_t out_bytes, int threads) {
  if (element_size <= 0) throw std::invalid_argument("pack_arrays: element_size must be positive");
  std::vector<int64_t> offsets(sources.size() + 1, 0);
  for (size_t i = 0; i < sources.size(); ++i) {
    check_view(sources[i], element_size, "array", i);
    const int64_t bytes = checked_mul(sources[i].numel(), element_size, "pack_arrays: a byte count");
    offsets[i + 1] = checked_add(offsets[i], bytes, "pack_arrays: the total byte count");
  }
  if (out_bytes < offsets.back())
    throw std::invalid_argument("pack_arrays: output holds " + std::to_string(out_bytes) +
                                " bytes, " + std::to_string(offsets.back()) + " needed");
  const int64_t count = static_cast<int64_t>(sources.size());
  const int64_t mean_bytes = count ? offsets.back() / count : 0;
  const int64_t min_sources = std::max<int64_t>(1, kMinBytesPerThread / std::max<int64_t>(1, mean_bytes));
  parallel_for(count, threads, min_sources, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      copy_to_contiguous(out + offsets[static_cast<size_t>(i)], sources[static_cast<size_t>(i)],
                         element_size);
  });
}

void write_object_index(const std::vector<int64_t>& counts, int64_t* offsets, int64_t* batch_index,
                        int64_t batch_index_len) {
  int64_t total = 0;
  for (size_t b = 0; b < counts.size(); ++b) {
    if (counts[b] < 0)
      throw std::invalid_argument("object count of image " + std::to_string(b) + " is negative");
    total = checked_add(total, counts[b], "the sum of the object counts");
  }
  if (total != batch_index_len)
    throw std::invalid_argument("batch_index holds " + std::to_string(batch_index_len) +
                                " entries, the counts sum to " + std::to_string(total));
  int64_t position = 0;
  offsets[0] = 0;
  for (size_t b = 0; b < counts.size(); ++b) {
    std::fill_n(batch_index + position, counts[b], static_cast<int64_t>(b));
    position += counts[b];
    offsets[b + 1] = position;
  }
}

void write_index_block(const std::vector<int64_t>& counts, const std::vector<int64_t>& image_sizes,
                       int64_t* out, int64_t out_len) {
  const int64_t batch = static_cast<int64_t>(counts.size());
  if (static_cast<int64_t>(image_sizes.size()) != 2 * batch)
    throw std::invalid_argument("image_sizes holds " + std::to_string(image_sizes.size()) +
                                " values, expected 2 per image (" + std::to_string(2 * batch) + ")");
  int64_t total = 0;
  for (size_t b = 0; b < counts.size(); ++b) {
    if (counts[b] < 0)
      throw std::invalid_argument("object count of image " + std::to_string(b) + " is negative");
    total = checked_add(total, counts[b], "the sum of the object counts");
  }
  const int64_t needed = checked_add(4 * batch + 1, total, "the index block's length");
  if (out_len != needed)
    throw std::invalid_argument("the index block holds " + std::to_string(out_len) +
                                " entries, expected " + std::to_string(needed) + " (4 * " +
                                std::to_string(batch) + " + 1 + " + std::to_string(total) + ")");
  std::copy(counts.begin(), counts.end(), out);
  std::copy(image_sizes.begin(), image_sizes.end(), out + 2 * batch + 1);
  write_object_index(counts, out + batch, out + 4 * batch + 1, total);
}

}  // namespace fastloader
