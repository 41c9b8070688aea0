// C++ unit tests of the collate kernels and the buffer pool, without Python (also under ASan/UBSan).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "core/buffer_pool.hpp"
#include "core/collate.hpp"
#include "tests/checks.hpp"

namespace {

using fastloader_tests::check;
using fastloader_tests::check_throws;
using fastloader_tests::failures;

using fastloader::ImageBatchSpec;
using fastloader::StridedView;

// A planar float image [C, H, W] whose value encodes its position, so misplaced copies show up.
std::vector<float> make_image(int64_t c, int64_t h, int64_t w, float base) {
  std::vector<float> image(static_cast<size_t>(c * h * w));
  for (size_t i = 0; i < image.size(); ++i) image[i] = base + static_cast<float>(i);
  return image;
}

StridedView planar(const std::vector<float>& image, int64_t c, int64_t h, int64_t w) {
  const int64_t e = sizeof(float);
  return {reinterpret_cast<const unsigned char*>(image.data()), {c, h, w}, {h * w * e, w * e, e}};
}

void padded_batch_matches_a_naive_loop(bool channels_last, int threads) {
  // ~17 MB of output: enough rows that the kernel really splits the work over threads.
  const int64_t C = 3, H = 700, W = 400;
  const std::vector<std::vector<int64_t>> sizes{{700, 400}, {330, 400}, {700, 1}, {0, 5}, {410, 377}};
  std::vector<std::vector<float>> images;
  std::vector<StridedView> views;
  for (size_t b = 0; b < sizes.size(); ++b)
    images.push_back(make_image(C, sizes[b][0], sizes[b][1], 1000.0f * static_cast<float>(b)));
  for (size_t b = 0; b < sizes.size(); ++b) views.push_back(planar(images[b], C, sizes[b][0], sizes[b][1]));
  const float fill = -2.5f;
  ImageBatchSpec spec{C, H, W, sizeof(float), channels_last};
  const int64_t B = static_cast<int64_t>(sizes.size());
  std::vector<float> out(static_cast<size_t>(B * C * H * W), 7.0f);
  fastloader::pad_images(views, spec, reinterpret_cast<const unsigned char*>(&fill),
                         reinterpret_cast<unsigned char*>(out.data()),
                         static_cast<int64_t>(out.size() * sizeof(float)), threads);
  bool ok = true;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          const int64_t h = sizes[b][0], w = sizes[b][1];
          const float want = (y < h && x < w) ? images[b][(c * h + y) * w + x] : fill;
          const int64_t at = channels_last ? ((b * H + y) * W + x) * C + c : ((b * C + c) * H + y) * W + x;
          ok &= out[static_cast<size_t>(at)] == want;
        }
  check(ok, channels_last ? "channels_last padded batch equals the naive loop"
                          : "NCHW padded batch equals the naive loop");
}

void strided_and_flipped_sources_are_read_by_their_strides() {
  // A [2, 3, 4] uint8 image read transposed (strides of a [2, 4, 3] buffer) and row-flipped.
  std::vector<unsigned char> buffer(24);
  for (size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<unsigned char>(i);
  StridedView transposed{buffer.data(), {2, 3, 4}, {12, 1, 3}};
  StridedView flipped{buffer.data() + 8, {2, 3, 4}, {12, -4, 1}};  // rows 2, 1, 0 of [2, 3, 4]
  const unsigned char fill = 0;
  std::vector<unsigned char> out(2 * 2 * 3 * 4);
  fastloader::pad_images({transposed, flipped}, ImageBatchSpec{2, 3, 4, 1, false}, &fill, out.data(),
                         static_cast<int64_t>(out.size()), 2);
  bool ok = true;
  for (int c = 0; c < 2; ++c)
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 4; ++x) {
        ok &= out[static_cast<size_t>((c * 3 + y) * 4 + x)] == buffer[static_cast<size_t>(c * 12 + x * 3 + y)];
        ok &= out[static_cast<size_t>(24 + (c * 3 + y) * 4 + x)] ==
              buffer[static_cast<size_t>(c * 12 + (2 - y) * 4 + x)];
      }
  check(ok, "transposed and negative-stride sources");
}

void pack_arrays_concatenates_in_c_order() {
  std::vector<int32_t> a{1, 2, 3, 4, 5, 6};  // [2, 3]
  std::vector<int32_t> b{7, 8, 9, 10, 11, 12};  // read as its transpose [3, 2]... of a [2, 3]
  StridedView va{reinterpret_cast<const unsigned char*>(a.data()), {2, 3}, {12, 4}};
  StridedView empty{nullptr, {0, 3}, {12, 4}};
  StridedView vb{reinterpret_cast<const unsigned char*>(b.data()), {2, 3}, {4, 8}};  // b[j*2+i]
  std::vector<int32_t> out(12, -1);
  fastloader::pack_arrays({va, empty, vb}, 4, reinterpret_cast<unsigned char*>(out.data()), 48, 2);
  const std::vector<int32_t> want{1, 2, 3, 4, 5, 6, 7, 9, 11, 8, 10, 12};
  check(out == want, "pack_arrays: contiguous, empty and strided sources back to back");
}

void object_index_from_counts() {
  std::vector<int64_t> offsets(4), batch_index(5);
  fastloader::write_object_index({2, 0, 3}, offsets.data(), batch_index.data(), 5);
  check(offsets == std::vector<int64_t>({0, 2, 2, 5}), "offsets are exclusive prefix sums");
  check(batch_index == std::vector<int64_t>({0, 0, 2, 2, 2}), "batch_index names each object's image");
}

void bad_shapes_throw() {
  std::vector<float> image = make_image(3, 4, 4, 0);
  const float fill = 0;
  std::vector<float> out(3 * 4 * 4);
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  const auto* pattern = reinterpret_cast<const unsigned char*>(&fill);
  check_throws<std::invalid_argument>(
      [&] { fastloader::pad_images({planar(image, 3, 4, 4)}, {3, 3, 4, 4, false}, pattern, dst, 192, 1); },
      "an image taller than the slot is refused");
  check_throws<std::invalid_argument>(
      [&] { fastloader::pad_images({planar(image, 3, 4, 4)}, {2, 4, 4, 4, false}, pattern, dst, 192, 1); },
      "a channel mismatch is refused");
  check_throws<std::invalid_argument>(
      [&] { fastloader::pad_images({planar(image, 3, 4, 4)}, {3, 4, 4, 4, false}, pattern, dst, 100, 1); },
      "a too-small output is refused");
  check_throws<std::invalid_argument>(
      [&] {
        fastloader::pack_arrays({planar(image, 3, 4, 4)}, 4, dst, 16, 1);
      },
      "pack_arrays refuses a too-small output");
}

void overflowing_sizes_throw() {
  const unsigned char byte = 0;
  unsigned char out[16] = {};
  const int64_t big = int64_t{1} << 40;
  check_throws<std::invalid_argument>(
      [&] {
        const StridedView pixel{&byte, {1, 1, 1}, {1, 1, 1}};
        fastloader::pad_images({pixel}, {1, big, big, 1, false}, &byte, out, 16, 1);
      },
      "a padded batch whose byte count overflows int64 is refused");
  StridedView huge{&byte, {big, big}, {0, 0}};
  check_throws<std::invalid_argument>([&] { fastloader::pack_arrays({huge}, 1, out, 16, 1); },
                                      "an element count that overflows int64 is refused");
  StridedView far{&byte, {3}, {int64_t{1} << 62}};
  check_throws<std::invalid_argument>([&] { fastloader::pack_arrays({far}, 1, out, 16, 1); },
                                      "a stride whose span overflows int64 is refused");
  StridedView lowest{&byte, {2}, {std::numeric_limits<int64_t>::min()}};
  check_throws<std::invalid_argument>([&] { fastloader::pack_arrays({lowest}, 1, out, 16, 1); },
                                      "the lowest int64 stride is refused");
  int64_t offsets[3], index[1];
  check_throws<std::invalid_argument>(
      [&] { fastloader::write_object_index({INT64_MAX, 1}, offsets, index, 0); },
      "object counts whose sum overflows int64 are refused");
  check(fastloader::checked_mul(int64_t{1} << 31, int64_t{1} << 31, "x") == int64_t{1} << 62,
        "checked_mul of values that fit");
  check_throws<std::invalid_argument>(
      [&] { fastloader::checked_mul(int64_t{1} << 32, int64_t{1} << 31, "x"); },
      "checked_mul refuses 2^63");
  check_throws<std::invalid_argument>([&] { fastloader::checked_add(INT64_MAX, 1, "x"); },
                                      "checked_add refuses INT64_MAX + 1");
}

void index_block_from_counts_and_sizes() {
  std::vector<int64_t> block(4 * 3 + 1 + 3, -1);
  fastloader::write_index_block({2, 0, 1}, {4, 5, 6, 7, 8, 9}, block.data(),
                                static_cast<int64_t>(block.size()));
  check(block == std::vector<int64_t>({2, 0, 1, 0, 2, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 2}),
        "index block: counts | offsets | image_sizes | batch_index");
  check_throws<std::invalid_argument>(
      [&] { fastloader::write_index_block({2, 0, 1}, {4, 5, 6, 7, 8, 9}, block.data(), 15); },
      "an index block of the wrong length is refused");
  check_throws<std::invalid_argument>(
      [&] { fastloader::write_index_block({2, 0, 1}, {4, 5}, block.data(), 16); },
      "image sizes of the wrong length are refused");
}

void pool_reuses_released_blocks() {
  auto& pool = fastloader::BufferPool::global();
  pool.clear();
  const std::size_t bytes = (std::size_t{5} << 20) + 123;
  check(fastloader::BufferPool::size_class(bytes) >= bytes, "size class holds the request");
  check(fastloader::BufferPool::size_class(bytes) <= bytes + bytes / 8 + (std::size_t{2} << 20),
        "size class wastes at most 1/8 plus a huge page");
  void* first;
  {
    fastloader::PooledBuffer a(bytes);
    first = a.data();
    std::memset(a.data(), 1, a.size());
    check(a.capacity() == fastloader::BufferPool::size_class(bytes), "capacity is the size class");
  }
  const int64_t hits = pool.stats().hits;
  fastloader::PooledBuffer b(bytes);
  check(b.data() == first, "a released block is handed out again");
  check(pool.stats().hits == hits + 1, "the reuse counts as a hit");
  pool.set_limit(0);
}

}  // namespace

int main() {
  padded_batch_matches_a_naive_loop(false, 1);
  padded_batch_matches_a_naive_loop(false, 3);
  padded_batch_matches_a_naive_loop(true, 1);
  padded_batch_matches_a_naive_loop(true, 3);
  strided_and_flipped_sources_are_read_by_their_strides();
  pack_arrays_concatenates_in_c_order();
  object_index_from_counts();
  bad_shapes_throw();
  overflowing_sizes_throw();
  index_block_from_counts_and_sizes();
  pool_reuses_released_blocks();
  if (failures) std::fprintf(stderr, "%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
