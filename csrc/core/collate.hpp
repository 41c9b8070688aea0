// Copy kernels of the detection collate: padded image batches and ragged fields packed into one buffer.
#pragma once

#include <cstdint>
#include <vector>

namespace fastloader {

// A read-only strided array: the address of element 0, its shape, and byte strides (any sign, as
// numpy allows). The caller keeps the memory alive for the duration of a kernel call.
struct StridedView {
  const unsigned char* data = nullptr;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in bytes

  // The product of the extents; throws std::invalid_argument when it overflows int64.
  int64_t numel() const;
};

// a * b and a + b for non-negative sizes, or std::invalid_argument naming `what` when the result
// does not fit int64: every size and byte count the kernels compute goes through these.
int64_t checked_mul(int64_t a, int64_t b, const char* what);
int64_t checked_add(int64_t a, int64_t b, const char* what);

// Where a padded image batch goes: `out` holds batch * channels * height * width elements of
// element_size bytes, laid out [B, C, H, W] or, when channels_last, [B, H, W, C].
struct ImageBatchSpec {
  int64_t channels = 0;
  int64_t height = 0;
  int64_t width = 0;
  int64_t element_size = 1;
  bool channels_last = false;
};

// Copies image b ([C, H_b, W_b] with H_b <= H, W_b <= W) into slot b of `out` and writes the
// element_size-byte pattern `fill` into the padding (right and bottom), in one pass. Work is split
// by output rows over at most `threads` threads. Throws std::invalid_argument on a shape mismatch,
// an element size that differs from the fill's, or sizes whose byte count overflows int64.
void pad_images(const std::vector<StridedView>& images, const ImageBatchSpec& spec,
                const unsigned char* fill, unsigned char* out, int64_t out_bytes, int threads);

// Copies every source's elements in C order, back to back, into `out` (out_bytes long): packing
// ragged per-object fields ([N_i, ...] -> [sum N_i, ...]) and stacking fixed-shape ones alike.
// Throws std::invalid_argument when out_bytes is too small or a byte count overflows int64.
void pack_arrays(const std::vector<StridedView>& sources, int64_t element_size, unsigned char* out,
                 int64_t out_bytes, int threads);

// Fills the int64 index block of a batch from per-image object counts: offsets [B+1] (exclusive
// prefix sums) and batch_index [sum counts] (the image each object belongs to). `offsets` holds
// counts.size() + 1 entries and `batch_index` batch_index_len; throws std::invalid_argument when
// a count is negative, the counts overflow int64 or do not sum to batch_index_len.
void write_object_index(const std::vector<int64_t>& counts, int64_t* offsets, int64_t* batch_index,
                        int64_t batch_index_len);

// Fills a batch's whole int64 index block of out_len entries: counts [B] | offsets [B+1] |
// image_sizes [B, 2] (image_sizes holds 2B values, H and W per image) | batch_index [sum counts].
// Throws std::invalid_argument when out_len is not 4B + 1 + sum(counts) or the sizes are not 2B.
void write_index_block(const std::vector<int64_t>& counts, const std::vector<int64_t>& image_sizes,
                       int64_t* out, int64_t out_len);

}  // namespace fastloader
