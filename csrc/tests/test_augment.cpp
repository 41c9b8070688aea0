// C++ unit tests of the detection augmentation core: OpenCV's HSV arithmetic (known answers from
// cv2), the vectorized distortion against its scalar parts, exact geometric ops, resize against
// hand results, frozen draws, and bad specs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/augment.hpp"
#include "tests/checks.hpp"

namespace {

using namespace fastloader::augment;
using fastloader_tests::check;
using fastloader_tests::check_throws;
using fastloader_tests::failures;

// cv2.cvtColor(..., COLOR_BGR2HSV) and back, on OpenCV 5.1 (opencv-python-headless).
void hsv_matches_opencv() {
  const uint8_t bgr[7][3] = {{10, 200, 30}, {255, 0, 0},    {0, 0, 255},   {12, 12, 12},
                             {100, 50, 200}, {0, 255, 1}, {37, 180, 181}};
  const uint8_t hsv[7][3] = {{57, 242, 200}, {120, 255, 255}, {0, 255, 255}, {0, 0, 12},
                             {170, 191, 200}, {60, 255, 255}, {30, 203, 181}};
  const uint8_t shifted[7][3] = {{74, 255, 200}, {137, 255, 255}, {17, 255, 255}, {17, 0, 12},
                                 {7, 248, 200},  {77, 255, 255},  {47, 255, 181}};
  const uint8_t back[7][3] = {{93, 200, 0}, {255, 0, 145}, {0, 145, 255}, {12, 12, 12},
                              {5, 51, 200}, {145, 255, 0}, {0, 181, 78}};
  for (int i = 0; i < 7; ++i) {
    uint8_t got[3];
    detail::bgr_to_hsv(bgr[i], 0, got);
    check(std::memcmp(got, hsv[i], 3) == 0, "bgr_to_hsv equals cv2 (blue first)");
    const uint8_t rgb[3] = {bgr[i][2], bgr[i][1], bgr[i][0]};
    detail::bgr_to_hsv(rgb, 2, got);
    check(std::memcmp(got, hsv[i], 3) == 0, "bgr_to_hsv equals cv2 (blue last)");
    detail::hsv_to_bgr(shifted[i], 0, got);
    for (int c = 0; c < 3; ++c)
      check(std::abs(got[c] - back[i][c]) <= 1, "hsv_to_bgr within 1 level of cv2");
  }
}

void half_conversions() {
  check(detail::float_to_half(1.0f) == 0x3C00, "half(1)");
  check(detail::float_to_half(-2.0f) == 0xC000, "half(-2)");
  check(detail::float_to_half(65504.0f) == 0x7BFF, "half(max)");
  check(detail::float_to_half(1e6f) == 0x7C00, "half overflow is inf");
  check(detail::float_to_half(5.9604645e-8f) == 0x0001, "half smallest subnormal");
  check(detail::float_to_half(1.0f + 1.0f / 2048) == 0x3C00, "half tie rounds to even");
  check(detail::float_to_bfloat16(1.0f) == 0x3F80, "bf16(1)");
  check(detail::float_to_bfloat16(-104.0f) == 0xC2D0, "bf16(-104)");
}

std::vector<uint8_t> ramp_image(int64_t h, int64_t w) {
  std::vector<uint8_t> img(static_cast<size_t>(h * w * 3));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        img[static_cast<size_t>((y * w + x) * 3 + c)] = static_cast<uint8_t>((y * 7 + x * 3 + c * 50) & 0xFF);
  return img;
}

ImageView view(const std::vector<uint8_t>& img, int64_t h, int64_t w) {
  ImageView v;
  v.data = img.data();
  v.height = h;
  v.width = w;
  v.channels = 3;
  v.row_stride = w * 3;
  v.col_stride = 3;
  v.channel_stride = 1;
  return v;
}

OutputSpec uint8_hwc() {
  OutputSpec out;
  out.dtype = OutDType::UInt8;
  return out;
}

std::vector<uint8_t> render_hwc(const Pipeline& p, const Plan& plan, const std::vector<uint8_t>& img,
                                int64_t h, int64_t w) {
  std::vector<uint8_t> out(static_cast<size_t>(plan.out_height * plan.out_width * 3));
  OutputView ov{out.data(), 1, plan.out_width * 3, 3};
  p.render(plan, view(img, h, w), ov);
  return out;
}

void flip_is_exact_and_swaps_landmarks() {
  OpSpec flip;
  flip.kind = OpKind::Flip;
  flip.flip_pairs = {{0, 1}, {3, 4}};
  const Pipeline p({flip}, uint8_hwc());
  const float boxes[4] = {1, 2, 5, 6};
  float lm[10] = {2, 3, 4, 3, 3, 4, -1, -1, 4, 5};
  const BoxesIn in{boxes, 1, lm, 5};
  const Plan plan = p.plan(6, 10, in, 0, 0, 0);
  check(plan.boxes.size() == 4 && plan.boxes[0] == 5 && plan.boxes[2] == 9, "flip moves boxes");
  check(plan.landmarks[0] == 6 && plan.landmarks[2] == 8, "flip swaps the eyes");
  check(plan.landmarks[4] == 7 && plan.landmarks[5] == 4, "flip mirrors the nose");
  check(plan.landmarks[6] == 6 && plan.landmarks[7] == 5, "mouth corners swap");
  check(plan.landmarks[8] == -1 && plan.landmarks[9] == -1, "a missing point stays missing");
  const auto img = ramp_image(6, 10);
  const auto out = render_hwc(p, plan, img, 6, 10);
  bool same = true;
  for (int64_t y = 0; y < 6; ++y)
    for (int64_t x = 0; x < 10; ++x)
      for (int c = 0; c < 3; ++c)
        same = same && out[static_cast<size_t>((y * 10 + x) * 3 + c)] ==
                           img[static_cast<size_t>((y * 10 + 9 - x) * 3 + c)];
  check(same, "flip renders the mirror image");
}

void square_crop_keeps_centred_boxes_and_renders_the_window() {
  OpSpec crop;
  crop.kind = OpKind::SquareCrop;
  crop.scales = {0.5};
  const Pipeline p({crop}, uint8_hwc());
  const float boxes[8] = {10, 10, 14, 14, 0, 0, 40, 30};
  const BoxesIn in{boxes, 2, nullptr, 0};
  const auto img = ramp_image(30, 40);
  for (uint64_t index = 0; index < 20; ++index) {
    const Plan plan = p.plan(30, 40, in, 7, 1, index);
    const OpRecord& r = plan.records[0];
    check(r.values.back().first == "success", "square crop records success last");
    if (r.values.back().second != 1.0) continue;
    const int64_t left = static_cast<int64_t>(r.values[1].second), top = static_cast<int64_t>(r.values[2].second);
    check(plan.canvas_width == 15 && plan.canvas_height == 15, "crop side is int(0.5 * 30)");
    check(left >= 0 && left < 25 && top >= 0 && top < 15, "crop offsets in randrange");
    const auto out = render_hwc(p, plan, img, 30, 40);
    bool same = true;
    for (int64_t y = 0; y < 15; ++y)
      for (int64_t x = 0; x < 15; ++x)
        same = same && out[static_cast<size_t>((y * 15 + x) * 3)] ==
                           img[static_cast<size_t>(((y + top) * 40 + x + left) * 3)];
    check(same, "the crop renders its window");
    check(plan.keep.size() >= 1 && plan.keep[0] == 0, "the small box inside is kept");
  }
}

void failed_crop_pads_to_square_with_the_fill() {
  OpSpec crop;
  crop.kind = OpKind::SquareCrop;
  OutputSpec out = uint8_hwc();
  out.fill = {1, 2, 3};
  const Pipeline p({crop}, out);
  const BoxesIn none{nullptr, 0, nullptr, 0};
  const Plan plan = p.plan(4, 6, none, 0, 0, 0);
  check(plan.canvas_width == 6 && plan.canvas_height == 6, "padded to the long side");
  const auto img = ramp_image(4, 6);
  const auto pixels = render_hwc(p, plan, img, 4, 6);
  check(pixels[static_cast<size_t>((5 * 6 + 2) * 3)] == 1 && pixels[static_cast<size_t>((5 * 6 + 2) * 3 + 2)] == 3,
        "pad rows carry the fill");
  check(pixels[0] == img[0], "the image stays at the top-left");
}

void linear_resize_of_a_constant_is_constant_and_normalized() {
  OpSpec resize;
  resize.kind = OpKind::Resize;
  resize.out_width = 17;
  resize.out_height = 9;
  OutputSpec out;
  out.mean = {100, 0, 0};
  out.std = {2, 1, 1};
  const Pipeline p({resize}, out);
  std::vector<uint8_t> img(5 * 7 * 3, 120);
  const BoxesIn none{nullptr, 0, nullptr, 0};
  const Plan plan = p.plan(5, 7, none, 0, 0, 0);
  std::vector<float> chw(static_cast<size_t>(3 * 9 * 17));
  p.render(plan, view(img, 5, 7), OutputView{chw.data(), 9 * 17, 17, 1});
  bool ok = true;
  for (int64_t i = 0; i < 9 * 17; ++i) ok = ok && chw[static_cast<size_t>(i)] == 10.0f && chw[static_cast<size_t>(9 * 17 + i)] == 120.0f;
  check(ok, "constant stays constant; (v - mean) / std per channel in CHW");
}

// Frozen draws: changing the stream layout or an op's word order changes these (documented).
// numpy's truncating, saturating image * alpha + beta on one value (float64 maths).
int affine_level(int v, double alpha, double beta) {
  const double x = static_cast<double>(v) * alpha + beta;
  return static_cast<int>(x < 0.0 ? 0.0 : (x > 255.0 ? 255.0 : x));
}

// The vectorized distortion equals the per-pixel composition of its parts (the scalar
// bgr_to_hsv / hsv_to_bgr and float64 affine parts), bit for bit: with factors whose float32
// maths differs from the float64 LUT on some level (1.3, 1.4: the LUT path) and factors where
// it does not (1.31, 0.63: the arithmetic path), both blue positions, both contrast orders.
void distortion_equals_the_per_pixel_parts() {
  std::vector<uint8_t> pixels(3 * 40000);
  uint32_t state = 12345;
  for (auto& v : pixels) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<uint8_t>(state >> 24);
  }
  struct Case { bool contrast_first; double beta, alpha, saturation; int hue; };
  const Case cases[] = {{true, -20.7, 1.31, 0.63, -17}, {false, 12.5, 1.3, 1.4, 7}, {true, 0.4, 1.4, 1.3, 179},
                        {false, 31.9, 0.55, 1.0, 0}};
  for (const Case& c : cases)
    for (int bidx = 0; bidx <= 2; bidx += 2) {
      PhotometricParams p;
      p.active = p.brightness_on = p.contrast_on = p.saturation_on = p.hue_on = true;
      p.contrast_first = c.contrast_first;
      p.beta = c.beta;
      p.alpha = c.alpha;
      p.saturation = c.saturation;
      p.hue = c.hue;
      std::vector<uint8_t> got = pixels;
      detail::distort_pixels(got.data(), 40000, bidx, p);
      bool same = true;
      for (size_t i = 0; i < 40000; ++i) {
        uint8_t px[3], hsv[3];
        for (int k = 0; k < 3; ++k) {
          int v = affine_level(pixels[3 * i + k], 1.0, c.beta);
          if (c.contrast_first) v = affine_level(v, c.alpha, 0.0);
          px[k] = static_cast<uint8_t>(v);
        }
        detail::bgr_to_hsv(px, bidx, hsv);
        hsv[0] = static_cast<uint8_t>(((hsv[0] + c.hue) % 180 + 180) % 180);  // Python's %
        hsv[1] = static_cast<uint8_t>(affine_level(hsv[1], c.saturation, 0.0));
        detail::hsv_to_bgr(hsv, bidx, px);
        for (int k = 0; k < 3; ++k) {
          const int want = c.contrast_first ? px[k] : affine_level(px[k], c.alpha, 0.0);
          same = same && got[3 * i + k] == want;
        }
      }
      check(same, "distortion equals its per-pixel parts");
    }
}

void frozen_draws() {
  OpSpec crop;
  crop.kind = OpKind::SquareCrop;
  crop.scales = {0.3, 0.45, 0.6, 0.8, 1.0};
  OpSpec distort;
  distort.kind = OpKind::Distort;
  OpSpec flip;
  flip.kind = OpKind::Flip;
  flip.probability = 0.5;
  OpSpec resize;
  resize.kind = OpKind::Resize;
  resize.out_width = resize.out_height = 640;
  resize.interps = {Interp::Linear, Interp::Cubic, Interp::Area, Interp::Nearest, Interp::Lanczos4};
  const Pipeline p({crop, distort, flip, resize}, OutputSpec{});
  const float boxes[8] = {100, 100, 200, 220, 500, 300, 560, 380};
  const BoxesIn in{boxes, 2, nullptr, 0};
  std::vector<int64_t> digest_values;
  for (uint64_t index = 0; index < 8; ++index) {
    const Plan plan = p.plan(768, 1024, in, 42, 3, index);
    for (const OpRecord& r : plan.records) {
      digest_values.push_back(r.applied);
      for (const auto& [name, value] : r.values) digest_values.push_back(static_cast<int64_t>(value * 1e6));
    }
    for (float b : plan.boxes) digest_values.push_back(static_cast<int64_t>(b * 1000));
  }
  const uint64_t digest = fastloader_tests::fnv1a(digest_values);
  if (digest != 0x5928cc0c9ba5eb20ull)
    std::fprintf(stderr, "frozen draws digest now 0x%016llx\n", static_cast<unsigned long long>(digest));
  check(digest == 0x5928cc0c9ba5eb20ull, "frozen draws (seed 42, epoch 3, indices 0-7)");
  // The same (seed, epoch, index) gives the same plan; another epoch a different one.
  const Plan a = p.plan(768, 1024, in, 42, 3, 5), b = p.plan(768, 1024, in, 42, 3, 5);
  const Plan c = p.plan(768, 1024, in, 42, 4, 5);
  check(a.boxes == b.boxes && a.records.size() == b.records.size(), "plans are pure functions");
  bool differs = a.boxes != c.boxes;
  for (size_t i = 0; i < a.records.size() && !differs; ++i) differs = a.records[i].values != c.records[i].values;
  check(differs, "another epoch draws differently");
}

void bad_specs_throw() {
  OpSpec resize;
  resize.kind = OpKind::Resize;
  resize.out_width = resize.out_height = 8;
  OpSpec flip;
  flip.kind = OpKind::Flip;
  check_throws<std::invalid_argument>([&] { Pipeline({resize, flip}, OutputSpec{}); },
                                      "a geometric op after the resize");
  OpSpec bad = flip;
  bad.probability = 1.5;
  check_throws<std::invalid_argument>([&] { Pipeline({bad}, OutputSpec{}); }, "probability > 1");
  OpSpec crop;
  crop.kind = OpKind::SquareCrop;
  crop.scales = {0.0};
  check_throws<std::invalid_argument>([&] { Pipeline({crop}, OutputSpec{}); }, "scale 0");
  OutputSpec out;
  out.std = {1, 0, 1};
  check_throws<std::invalid_argument>([&] { Pipeline({flip}, out); }, "std 0");
  const Pipeline p({flip}, OutputSpec{});
  const BoxesIn none{nullptr, 0, nullptr, 0};
  check_throws<std::invalid_argument>([&] { p.plan(0, 5, none, 0, 0, 0); }, "empty image");
  const float nan_box[4] = {0, 0, NAN, 1};
  check_throws<std::invalid_argument>([&] { p.plan(5, 5, BoxesIn{nan_box, 1, nullptr, 0}, 0, 0, 0); },
                                      "NaN box");
  const Plan plan = p.plan(5, 5, none, 0, 0, 0);
  std::vector<uint8_t> img(4 * 5 * 3);
  std::vector<float> out_buf(75);
  check_throws<std::invalid_argument>(
      [&] { p.render(plan, view(img, 4, 5), OutputView{out_buf.data(), 25, 5, 1}); },
      "render on another image size");
}

// A plan re-expressed for a rectangle of its source (a region-decoded JPEG) renders the same
// bytes from that rectangle alone; a rectangle missing a read pixel is refused.
void source_rect_plans_render_the_same() {
  OpSpec crop;
  crop.kind = OpKind::SquareCrop;
  crop.scales = {0.5};
  OpSpec flip;
  flip.kind = OpKind::Flip;
  OpSpec resize;
  resize.kind = OpKind::Resize;
  resize.out_width = resize.out_height = 12;
  resize.interps = {Interp::Cubic};
  const Pipeline p({crop, flip, resize}, uint8_hwc());
  const float boxes[4] = {10, 10, 14, 14};
  const BoxesIn in{boxes, 1, nullptr, 0};
  const auto img = ramp_image(30, 40);
  int compared = 0;
  for (uint64_t index = 0; index < 20; ++index) {
    const Plan plan = p.plan(30, 40, in, 7, 1, index);
    const SourceRect used = source_rect(plan);
    if (used.height == 0 || used.height == 30) continue;
    // The read rectangle with a margin where the image has room (as the JPEG decoder gives it).
    const int64_t top = std::max<int64_t>(0, used.top - 1), left = std::max<int64_t>(0, used.left - 2);
    const SourceRect big{top, left, std::min<int64_t>(30, used.top + used.height + 1) - top,
                         std::min<int64_t>(40, used.left + used.width + 3) - left};
    std::vector<uint8_t> part(static_cast<size_t>(big.height * big.width * 3));
    for (int64_t y = 0; y < big.height; ++y)
      std::memcpy(&part[static_cast<size_t>(y * big.width * 3)],
                  &img[static_cast<size_t>(((y + big.top) * 40 + big.left) * 3)],
                  static_cast<size_t>(big.width * 3));
    const Plan moved = for_source_rect(plan, big);
    check(render_hwc(p, moved, part, big.height, big.width) == render_hwc(p, plan, img, 30, 40),
          "a rectangle's plan renders the same bytes");
    const SourceRect short_by_one{used.top + 1, used.left, used.height - 1, used.width};
    check_throws<std::invalid_argument>([&] { for_source_rect(plan, short_by_one); },
                                        "a rectangle without a read row");
    ++compared;
  }
  check(compared > 0, "some crops were compared");
  const Plan plan = p.plan(30, 40, in, 7, 1, 0);
  check_throws<std::invalid_argument>([&] { for_source_rect(plan, SourceRect{0, 0, 31, 40}); },
                                      "a rectangle outside the source");
}

}  // namespace

int main() {
  hsv_matches_opencv();
  distortion_equals_the_per_pixel_parts();
  half_conversions();
  flip_is_exact_and_swaps_landmarks();
  square_crop_keeps_centred_boxes_and_renders_the_window();
  failed_crop_pads_to_square_with_the_fill();
  linear_resize_of_a_constant_is_constant_and_normalized();
  frozen_draws();
  bad_specs_throw();
  source_rect_plans_render_the_same();
  if (failures) std::fprintf(stderr, "%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
