// Detection augmentation: a pipeline of crop / distort / expand / pad / flip / resize ops planned on
// the targets first (plan), then rendered as one pass from the source image into the output (render).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/philox.hpp"

namespace fastloader::augment {

// OpenCV's interpolation codes, so users and tests can pass cv2.INTER_* values unchanged.
enum class Interp : int { Nearest = 0, Linear = 1, Cubic = 2, Area = 3, Lanczos4 = 4 };

enum class OpKind : int {
  SquareCrop = 0,  // RetinaFace's random square crop
  IoUCrop = 1,     // SSD's / torchvision's RandomIoUCrop
  Distort = 2,     // RetinaFace's / SSD's photometric distortion (OpenCV uint8 HSV)
  Expand = 3,      // SSD's zoom out onto a canvas filled with the fill colour
  Flip = 4,        // horizontal flip, landmark pairs swapped
  PadToSquare = 5, // bottom / right padding to a square, image at the top-left
  Resize = 6,      // the one resampling step: must be the last geometric op
};

enum class OutDType : int { UInt8 = 0, Float32 = 1, Float16 = 2, BFloat16 = 3 };

struct OpSpec {
  OpKind kind = OpKind::Flip;
  double probability = 1.0;
  // SquareCrop: scale drawn from `scales` when non-empty, else 1.0 with probability full_probability
  // and uniform in [scale_min, scale_max) otherwise (Pytorch_Retinaface's current code).
  std::vector<double> scales;
  double scale_min = 0.3, scale_max = 1.0, full_probability = 0.2;
  int64_t max_tries = 250;
  bool pad_on_failure = true;
  // IoUCrop: min IoU options (a value > 1 means "leave the image as it is"); per-axis scale and
  // aspect ranges; trials per drawn option; outer draws before giving up (image left as it is).
  std::vector<double> min_ious;
  double aspect_min = 0.5, aspect_max = 2.0;
  int64_t trials = 40, max_options = 50;
  // Distort: each part's probability and range.
  double part_probability = 0.5, brightness_delta = 32.0, contrast_min = 0.5, contrast_max = 1.5;
  double saturation_min = 0.5, saturation_max = 1.5;
  int64_t hue_delta = 18;
  // Expand: canvas side ratio drawn in [1, max_ratio).
  double max_ratio = 4.0;
  // Flip: landmark point index pairs swapped by the mirror.
  std::vector<std::pair<int64_t, int64_t>> flip_pairs;
  // Resize: fixed (out_width x out_height) when shorter_sizes is empty, else the shorter side
  // drawn from shorter_sizes, capped so the longer side is <= max_size (0: no cap), the output
  // padded up to a multiple of size_divisibility (<= 1: none). Interpolation drawn from interps.
  int64_t out_width = 0, out_height = 0;
  std::vector<int64_t> shorter_sizes;
  int64_t max_size = 0, size_divisibility = 1;
  std::vector<Interp> interps{Interp::Linear};
};

struct OutputSpec {
  bool input_rgb = true;   // channel order of 3- and 4-channel sources
  bool output_rgb = true;  // channel order written
  OutDType dtype = OutDType::Float32;
  std::array<double, 3> mean{0, 0, 0}, std{1, 1, 1};  // output order; uint8 output ignores them
  std::array<uint8_t, 3> fill{0, 0, 0};                // output order; pads, expand canvas
  bool clip_boxes = true;
  double min_box_size = -1.0;  // < 0: keep every box; else drop boxes narrower or lower (output px)
  bool normalize_boxes = false;  // divide boxes and landmarks by the final canvas size
};

// What one op drew for one sample: a name, whether it was applied, and its values by name.
struct OpRecord {
  std::string name;
  bool applied = false;
  std::vector<std::pair<std::string, double>> values;
};

// Per-axis map: canvas pixel c shows source pixel sign * c + offset when lo <= c < hi, else fill.
struct AxisMap {
  int64_t sign = 1, offset = 0, lo = 0, hi = 0;
};

struct PhotometricParams {
  bool active = false;
  bool contrast_first = true;
  bool brightness_on = false, contrast_on = false, saturation_on = false, hue_on = false;
  double beta = 0.0, alpha = 1.0, saturation = 1.0;
  int64_t hue = 0;
};

struct Plan {
  int64_t src_height = 0, src_width = 0;
  int64_t canvas_height = 0, canvas_width = 0;  // the image just before the resize
  AxisMap cols, rows;
  int64_t content_height = 0, content_width = 0;  // resized canvas
  int64_t out_height = 0, out_width = 0;          // content padded for size_divisibility
  Interp interp = Interp::Nearest;
  bool resized = false;
  PhotometricParams photometric;
  std::vector<float> boxes;      // [n, 4]
  std::vector<float> landmarks;  // [n, 2 * points]
  std::vector<int64_t> keep;     // source box index of each output box
  std::vector<OpRecord> records;
};

struct BoxesIn {
  const float* boxes = nullptr;  // [count, 4] x1 y1 x2 y2
  int64_t count = 0;
  const float* landmarks = nullptr;  // [count, 2 * points], (-1, -1) = missing point
  int64_t points = 0;
};

struct ImageView {
  const uint8_t* data = nullptr;
  int64_t height = 0, width = 0, channels = 3;          // channels: 1, 3 or 4
  int64_t row_stride = 0, col_stride = 0, channel_stride = 1;  // in bytes
};

struct OutputView {
  void* data = nullptr;
  int64_t channel_stride = 0, row_stride = 0, col_stride = 0;  // in elements
};

// The per-sample random stream: op i's word j comes from Philox block (index, epoch << 32 | i << 16
// | j / 2), half j % 2, under the key mix64(seed). Each op owns its words, so the draws of one op
// never shift another's, and a sample depends only on (seed, epoch, index).
class SampleStream {
 public:
  SampleStream(uint64_t seed, uint64_t epoch, uint64_t index) noexcept
      : rng_(mix64(seed)), epoch_(epoch), index_(index) {}
  uint64_t word(uint64_t op, uint64_t j) const noexcept {
    const Philox4x32::Block b = rng_(index_, (epoch_ << 32) | (op << 16) | (j >> 1));
    return (j & 1) ? high64(b) : low64(b);
  }
  double unit(uint64_t op, uint64_t j) const noexcept { return unit_interval(word(op, j)); }
  double uniform(uint64_t op, uint64_t j, double lo, double hi) const noexcept {
    return lo + (hi - lo) * unit(op, j);
  }
  // Uniform integer in [0, n); 0 when n <= 0.
  int64_t below(uint64_t op, uint64_t j, int64_t n) const noexcept {
    return n <= 0 ? 0 : static_cast<int64_t>(bounded(word(op, j), static_cast<uint64_t>(n)));
  }

 private:
  Philox4x32 rng_;
  uint64_t epoch_, index_;
};

// Words each op may use: op streams hold 2^17 words (2^16 blocks).
constexpr int64_t kWordsPerOp = int64_t{1} << 17;

class Pipeline {
 public:
  // Throws std::invalid_argument on a bad spec (the message names the op and field).
  Pipeline(std::vector<OpSpec> ops, OutputSpec output);

  // Draws every op's parameters and moves the targets; the image is not touched.
  Plan plan(int64_t height, int64_t width, const BoxesIn& boxes, uint64_t seed, uint64_t epoch,
            uint64_t index) const;

  // The plan re-expressed for the same image decoded smaller (a JPEG decoded at 1/2, 1/4, 1/8
  // scale): height x width, at most the plan's source size. The canvas shrinks by the same
  // factor and the resize maps it to the same output; edges move by at most half a reduced
  // pixel. Only plans that end in a resize can be rescaled (their output size is fixed).
  Plan for_reduced_source(const Plan& plan, int64_t height, int64_t width) const;

  // Writes the augmented image of `plan` into dst ([3, out_height, out_width] by its strides).
  // `src` must be the image the plan was made for.
  void render(const Plan& plan, const ImageView& src, const OutputView& dst) const;

  const std::vector<OpSpec>& ops() const noexcept { return ops_; }
  const OutputSpec& output() const noexcept { return output_; }

 private:
  std::vector<OpSpec> ops_;
  OutputSpec output_;
  // Output value of each uint8 level per output channel, in the output dtype's bytes.
  std::array<std::vector<uint8_t>, 3> lut_;
  int64_t out_elem_size_ = 4;
  // float32 output: level * scale + offset equals the LUT for every level (then it is used,
  // being vectorizable where the LUT gather is not).
  bool affine_exact_ = false;
  std::array<float, 3> affine_scale_{1, 1, 1}, affine_offset_{0, 0, 0};
};

// The source rectangle a plan's render reads: rows [top, top + height), columns [left, left +
// width); empty (height or width 0) when the canvas shows only fill.
struct SourceRect {
  int64_t top = 0, left = 0, height = 0, width = 0;
};
SourceRect source_rect(const Plan& plan) noexcept;

// The plan re-expressed for a source that holds only `rect` of the planned one (a JPEG decoded
// region by region): it renders the same output. `rect` must lie in the planned source and
// contain source_rect(plan); std::invalid_argument otherwise.
Plan for_source_rect(const Plan& plan, const SourceRect& rect);

// Building blocks exposed for the tests (and the reference comparisons).
namespace detail {
// OpenCV's uint8 BGR -> HSV (H in 0..179) of one pixel; blue at bidx (0 or 2).
void bgr_to_hsv(const uint8_t* px, int bidx, uint8_t* hsv) noexcept;
// OpenCV's uint8 HSV -> BGR.
void hsv_to_bgr(const uint8_t* hsv, int bidx, uint8_t* px) noexcept;
// The photometric distortion on `count` 3-channel pixels (in place), blue at bidx.
void distort_pixels(uint8_t* pixels, int64_t count, int bidx, const PhotometricParams& p);
// float -> IEEE half / bfloat16 bits, round to nearest even.
uint16_t float_to_half(float value) noexcept;
uint16_t float_to_bfloat16(float value) noexcept;
}  // namespace detail

}  // namespace fastloader::augment
