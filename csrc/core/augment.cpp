// Detection augmentation, planning half: validates the op list, draws each op's parameters from the
// sample's Philox stream and moves boxes and landmarks; the canvas is kept as per-axis maps.
// One file past the ~400-line guide: every op plans against the same targets and canvas maps.
#include "core/augment.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace fastloader::augment {

namespace {

const char* op_name(OpKind kind) {
  switch (kind) {
    case OpKind::SquareCrop: return "square_crop";
    case OpKind::IoUCrop: return "iou_crop";
    case OpKind::Distort: return "distort";
    case OpKind::Expand: return "expand";
    case OpKind::Flip: return "flip";
    case OpKind::PadToSquare: return "pad_to_square";
    case OpKind::Resize: return "resize";
  }
  return "?";
}

bool is_geometric(OpKind kind) { return kind != OpKind::Distort; }

[[noreturn]] void bad_op(size_t i, OpKind kind, const std::string& what) {
  throw std::invalid_argument("ops[" + std::to_string(i) + "] (" + op_name(kind) + "): " + what);
}

bool finite(double v) { return v == v && v - v == 0.0; }

// A point is missing when both coordinates are exactly -1 (WIDER FACE's marker).
bool missing(const float* point) { return point[0] == -1.0f && point[1] == -1.0f; }

// One axis of the canvas: canvas pixel c shows source pixel sign * c + offset when lo <= c < hi,
// the fill colour otherwise.
struct Axis {
  int64_t size, sign = 1, offset = 0, lo, hi;
  explicit Axis(int64_t n) : size(n), lo(0), hi(n) {}
  // The canvas becomes its window [start, start + length) (a crop, or a pad when it reaches past).
  void window(int64_t start, int64_t length) {
    offset += sign * start;
    lo = std::max<int64_t>(lo - start, 0);
    hi = std::min<int64_t>(hi - start, length);
    if (hi < lo) hi = lo;
    size = length;
  }
  void mirror() {
    offset += sign * (size - 1);
    sign = -sign;
    const int64_t new_lo = size - hi, new_hi = size - lo;
    lo = new_lo;
    hi = new_hi;
  }
};

struct Targets {
  std::vector<float> boxes, landmarks;
  std::vector<int64_t> keep;
  int64_t points = 0;
  int64_t count() const { return static_cast<int64_t>(keep.size()); }
  // Keeps the boxes whose centres lie strictly inside the rectangle, clipped to it and moved to
  // its origin; their landmarks moved too and clipped to [0, w] x [0, h] (missing ones stay).
  void crop_to(int64_t left, int64_t top, int64_t w, int64_t h, const std::vector<char>& take) {
    const float fl = static_cast<float>(left), ft = static_cast<float>(top);
    const float fr = static_cast<float>(left + w), fb = static_cast<float>(top + h);
    const float fw = static_cast<float>(w), fh = static_cast<float>(h);
    const int64_t lw = 2 * points;
    int64_t out = 0;
    for (int64_t i = 0; i < count(); ++i) {
      if (!take[static_cast<size_t>(i)]) continue;
      float* b = &boxes[static_cast<size_t>(4 * out)];
      const float* s = &boxes[static_cast<size_t>(4 * i)];
      const float x1 = s[0], y1 = s[1], x2 = s[2], y2 = s[3];
      b[0] = std::max(x1, fl) - fl;
      b[1] = std::max(y1, ft) - ft;
      b[2] = std::min(x2, fr) - fl;
      b[3] = std::min(y2, fb) - ft;
      for (int64_t p = 0; p < points; ++p) {
        float* d = &landmarks[static_cast<size_t>(out * lw + 2 * p)];
        const float* q = &landmarks[static_cast<size_t>(i * lw + 2 * p)];
        if (missing(q)) {
          d[0] = d[1] = -1.0f;
        } else {
          d[0] = std::min(std::max(q[0] - fl, 0.0f), fw);
          d[1] = std::min(std::max(q[1] - ft, 0.0f), fh);
        }
      }
      keep[static_cast<size_t>(out)] = keep[static_cast<size_t>(i)];
      ++out;
    }
    resize(out);
  }
  void shift(int64_t left, int64_t top) {
    const float fl = static_cast<float>(left), ft = static_cast<float>(top);
    for (int64_t i = 0; i < count(); ++i) {
      float* b = &boxes[static_cast<size_t>(4 * i)];
      b[0] += fl;
      b[1] += ft;
      b[2] += fl;
      b[3] += ft;
    }
    for (size_t p = 0; p + 1 < landmarks.size(); p += 2)
      if (!missing(&landmarks[p])) {
        landmarks[p] += fl;
        landmarks[p + 1] += ft;
      }
  }
  void mirror(int64_t width, const std::vector<std::pair<int64_t, int64_t>>& pairs) {
    const float fw = static_cast<float>(width);
    for (int64_t i = 0; i < count(); ++i) {
      float* b = &boxes[static_cast<size_t>(4 * i)];
      const float x1 = b[0], x2 = b[2];
      b[0] = fw - x2;
      b[2] = fw - x1;
      float* l = landmarks.empty() ? nullptr : &landmarks[static_cast<size_t>(i * 2 * points)];
      if (!l) continue;
      for (int64_t p = 0; p < points; ++p)
        if (!missing(l + 2 * p)) l[2 * p] = fw - l[2 * p];
      for (const auto& [a, c] : pairs) {
        std::swap(l[2 * a], l[2 * c]);
        std::swap(l[2 * a + 1], l[2 * c + 1]);
      }
    }
  }
  void resize(int64_t n) {
    boxes.resize(static_cast<size_t>(4 * n));
    landmarks.resize(static_cast<size_t>(2 * points * n));
    keep.resize(static_cast<size_t>(n));
  }
};

double box_area(const float* b) {
  return (static_cast<double>(b[2]) - b[0]) * (static_cast<double>(b[3]) - b[1]);
}

// A box that can make a square crop acceptable: not inverted, area >= 1 (matrix_iof divides by
// max(area, 1), so smaller boxes never reach an IoF of 1; inverted ones intersect nothing).
bool usable(const float* b) { return b[2] > b[0] && b[3] > b[1] && box_area(b) >= 1.0; }

// Centres strictly inside the rectangle (computed in double, as numpy's float64 would).
bool centre_inside(const float* b, int64_t l, int64_t t, int64_t r, int64_t bottom) {
  const double cx = (static_cast<double>(b[0]) + b[2]) / 2, cy = (static_cast<double>(b[1]) + b[3]) / 2;
  return l < cx && cx < r && t < cy && cy < bottom;
}

void add(OpRecord& record, const char* name, double value) { record.values.emplace_back(name, value); }

// level * scale + offset in float, as the render loop computes it (-ffp-contract=off: no FMA).
float affine_level(float level, float scale, float offset) { return level * scale + offset; }

}  // namespace

Pipeline::Pipeline(std::vector<OpSpec> ops, OutputSpec output)
    : ops_(std::move(ops)), output_(output) {
  bool resized = false, distorted = false;
  for (size_t i = 0; i < ops_.size(); ++i) {
    const OpSpec& op = ops_[i];
    if (!(op.probability >= 0.0 && op.probability <= 1.0))
      bad_op(i, op.kind, "probability must be in [0, 1]");
    if (resized && is_geometric(op.kind))
      bad_op(i, op.kind, "geometric ops must come before the resize (it is the one resampling)");
    switch (op.kind) {
      case OpKind::SquareCrop:
        for (double s : op.scales)
          if (!(s > 0.0 && s <= 1.0)) bad_op(i, op.kind, "scales must be in (0, 1]");
        if (op.scales.empty() &&
            !(op.scale_min > 0.0 && op.scale_min <= op.scale_max && op.scale_max <= 1.0))
          bad_op(i, op.kind, "need 0 < scale_min <= scale_max <= 1");
        if (!(op.full_probability >= 0.0 && op.full_probability <= 1.0))
          bad_op(i, op.kind, "full_probability must be in [0, 1]");
        if (op.max_tries < 1 || op.max_tries > (kWordsPerOp - 1) / 4)
          bad_op(i, op.kind, "max_tries must be in [1, " + std::to_string((kWordsPerOp - 1) / 4) + "]");
        break;
      case OpKind::IoUCrop:
        if (op.min_ious.empty()) bad_op(i, op.kind, "min_ious must not be empty");
        for (double v : op.min_ious)
          if (!finite(v)) bad_op(i, op.kind, "min_ious must be finite");
        if (!(op.scale_min > 0.0 && op.scale_min <= op.scale_max && op.scale_max <= 1.0))
          bad_op(i, op.kind, "need 0 < scale_min <= scale_max <= 1");
        if (!(op.aspect_min > 0.0 && op.aspect_min <= op.aspect_max && finite(op.aspect_max)))
          bad_op(i, op.kind, "need 0 < aspect_min <= aspect_max");
        if (op.trials < 1 || op.max_options < 1 ||
            (1 + 4 * op.trials) * op.max_options + 1 > kWordsPerOp)
          bad_op(i, op.kind, "trials and max_options must be >= 1 with (1 + 4 trials) max_options "
                             "< " + std::to_string(kWordsPerOp));
        break;
      case OpKind::Distort:
        if (distorted) bad_op(i, op.kind, "at most one distort op");
        distorted = true;
        if (!(op.part_probability >= 0.0 && op.part_probability <= 1.0))
          bad_op(i, op.kind, "part_probability must be in [0, 1]");
        if (!(op.brightness_delta >= 0.0 && op.brightness_delta <= 255.0))
          bad_op(i, op.kind, "brightness_delta must be in [0, 255]");
        if (!(op.contrast_min >= 0.0 && op.contrast_min <= op.contrast_max && finite(op.contrast_max)))
          bad_op(i, op.kind, "need 0 <= contrast_min <= contrast_max");
        if (!(op.saturation_min >= 0.0 && op.saturation_min <= op.saturation_max &&
              finite(op.saturation_max)))
          bad_op(i, op.kind, "need 0 <= saturation_min <= saturation_max");
        if (op.hue_delta < 0 || op.hue_delta > 179) bad_op(i, op.kind, "hue_delta must be in [0, 179]");
        break;
      case OpKind::Expand:
        if (!(op.max_ratio >= 1.0 && op.max_ratio <= 64.0))
          bad_op(i, op.kind, "max_ratio must be in [1, 64]");
        break;
      case OpKind::Flip:
        for (const auto& [a, b] : op.flip_pairs)
          if (a < 0 || b < 0) bad_op(i, op.kind, "flip_pairs must hold non-negative point indices");
        break;
      case OpKind::PadToSquare:
        break;
      case OpKind::Resize:
        resized = true;
        if (op.probability != 1.0) bad_op(i, op.kind, "the resize must have probability 1");
        if (op.interps.empty()) bad_op(i, op.kind, "interps must not be empty");
        for (Interp m : op.interps)
          if (static_cast<int>(m) < 0 || static_cast<int>(m) > 4)
            bad_op(i, op.kind, "interps must be cv2.INTER_NEAREST, LINEAR, CUBIC, AREA or LANCZOS4");
        if (op.shorter_sizes.empty()) {
          if (op.out_width < 1 || op.out_height < 1 || op.out_width > (1 << 16) ||
              op.out_height > (1 << 16))
            bad_op(i, op.kind, "the output size must be in [1, 65536]");
        } else {
          for (int64_t s : op.shorter_sizes)
            if (s < 1 || s > (1 << 16)) bad_op(i, op.kind, "shorter_sizes must be in [1, 65536]");
          if (op.max_size < 0 || op.max_size > (1 << 16))
            bad_op(i, op.kind, "max_size must be in [0, 65536]");
        }
        if (op.size_divisibility < 0 || op.size_divisibility > 4096)
          bad_op(i, op.kind, "size_divisibility must be in [0, 4096]");
        break;
    }
  }
  if (ops_.size() > 0xFFFF) throw std::invalid_argument("ops: at most 65535 ops");
  for (int c = 0; c < 3; ++c) {
    if (!finite(output_.mean[c]) || !finite(output_.std[c]) || output_.std[c] == 0.0)
      throw std::invalid_argument("mean and std must be finite and std non-zero");
  }
  if (!(output_.min_box_size < 0.0 || finite(output_.min_box_size)))
    throw std::invalid_argument("min_box_size must be finite");
  out_elem_size_ = output_.dtype == OutDType::UInt8 ? 1 : output_.dtype == OutDType::Float32 ? 4 : 2;
  for (int c = 0; c < 3; ++c) {
    std::vector<uint8_t>& lut = lut_[c];
    lut.resize(static_cast<size_t>(256 * out_elem_size_));
    for (int v = 0; v < 256; ++v) {
      // (v - mean) / std in double, rounded once to float: numpy's float64 arithmetic then astype.
      const float value = static_cast<float>((v - output_.mean[c]) / output_.std[c]);
      uint8_t* slot = &lut[static_cast<size_t>(v * out_elem_size_)];
      switch (output_.dtype) {
        case OutDType::UInt8: slot[0] = static_cast<uint8_t>(v); break;
        case OutDType::Float32: std::memcpy(slot, &value, 4); break;
        case OutDType::Float16: {
          const uint16_t h = detail::float_to_half(value);
          std::memcpy(slot, &h, 2);
          break;
        }
        case OutDType::BFloat16: {
          const uint16_t h = detail::float_to_bfloat16(value);
          std::memcpy(slot, &h, 2);
          break;
        }
      }
    }
  }
  if (output_.dtype == OutDType::Float32) {
    affine_exact_ = true;
    for (int c = 0; c < 3; ++c) {
      affine_scale_[c] = static_cast<float>(1.0 / output_.std[c]);
      affine_offset_[c] = static_cast<float>(-output_.mean[c] / output_.std[c]);
      const float* lut = reinterpret_cast<const float*>(lut_[c].data());
      for (int v = 0; v < 256; ++v)
        affine_exact_ = affine_exact_ &&
                        affine_level(static_cast<float>(v), affine_scale_[c], affine_offset_[c]) == lut[v];
    }
  }
}

Plan Pipeline::plan(int64_t height, int64_t width, const BoxesIn& in, uint64_t seed, uint64_t epoch,
                    uint64_t index) const {
  if (height < 1 || width < 1 || height > (int64_t{1} << 24) || width > (int64_t{1} << 24))
    throw std::invalid_argument("image: height and width must be in [1, 2^24], got " +
                                std::to_string(height) + "x" + std::to_string(width));
  if (in.count < 0 || in.points < 0 || (in.count > 0 && !in.boxes) ||
      (in.count > 0 && in.points > 0 && !in.landmarks))
    throw std::invalid_argument("boxes / landmarks: bad counts or null data");
  if (epoch >> 32) throw std::invalid_argument("epoch must be < 2^32");
  for (const OpSpec& op : ops_)
    for (const auto& [a, b] : op.flip_pairs)
      if (in.points > 0 && (a >= in.points || b >= in.points))
        throw std::invalid_argument("flip_pairs: point index " + std::to_string(std::max(a, b)) +
                                    " out of range for landmarks with " +
                                    std::to_string(in.points) + " points");

  const SampleStream stream(seed, epoch, index);
  Plan plan;
  plan.src_height = height;
  plan.src_width = width;
  Targets t;
  t.points = in.points;
  t.boxes.assign(in.boxes, in.boxes + 4 * in.count);
  if (in.points > 0) t.landmarks.assign(in.landmarks, in.landmarks + 2 * in.points * in.count);
  t.keep.resize(static_cast<size_t>(in.count));
  for (int64_t i = 0; i < in.count; ++i) t.keep[static_cast<size_t>(i)] = i;
  for (size_t i = 0; i < t.boxes.size(); ++i)
    if (!finite(t.boxes[i])) throw std::invalid_argument("boxes must be finite");
  for (size_t i = 0; i < t.landmarks.size(); ++i)
    if (!finite(t.landmarks[i])) throw std::invalid_argument("landmarks must be finite");

  Axis cols(width), rows(height);
  for (size_t i = 0; i < ops_.size(); ++i) {
    const OpSpec& op = ops_[i];
    const uint64_t id = i;
    OpRecord record;
    record.name = op_name(op.kind);
    record.applied = op.probability >= 1.0 || stream.unit(id, 0) < op.probability;
    if (!record.applied) {
      plan.records.push_back(std::move(record));
      continue;
    }
    const int64_t W = cols.size, H = rows.size;
    switch (op.kind) {
      case OpKind::SquareCrop: {
        const int64_t short_side = std::min(W, H);
        // A box counts when wholly inside with area >= 1 (matrix_iof's max(area, 1) divisor).
        bool any_usable = false;
        for (int64_t b = 0; b < t.count() && !any_usable; ++b)
          any_usable = usable(&t.boxes[static_cast<size_t>(4 * b)]);
        int64_t tries = 0;
        bool done = false;
        for (int64_t attempt = 0; any_usable && attempt < op.max_tries && !done; ++attempt) {
          ++tries;
          const uint64_t base = 1 + 4 * static_cast<uint64_t>(attempt);
          double scale;
          if (!op.scales.empty())
            scale = op.scales[static_cast<size_t>(
                stream.below(id, base, static_cast<int64_t>(op.scales.size())))];
          else
            scale = stream.unit(id, base) < op.full_probability
                        ? 1.0
                        : stream.uniform(id, base + 1, op.scale_min, op.scale_max);
          const int64_t side = static_cast<int64_t>(scale * static_cast<double>(short_side));
          if (side < 1) continue;
          const int64_t left = W == side ? 0 : stream.below(id, base + 2, W - side);
          const int64_t top = H == side ? 0 : stream.below(id, base + 3, H - side);
          const int64_t right = left + side, bottom = top + side;
          bool inside = false;
          std::vector<char> take(static_cast<size_t>(t.count()));
          bool any_take = false;
          for (int64_t b = 0; b < t.count(); ++b) {
            const float* x = &t.boxes[static_cast<size_t>(4 * b)];
            if (x[0] >= left && x[1] >= top && x[2] <= right && x[3] <= bottom && usable(x))
              inside = true;
            take[static_cast<size_t>(b)] = centre_inside(x, left, top, right, bottom);
            any_take = any_take || take[static_cast<size_t>(b)];
          }
          if (!inside || !any_take) continue;
          t.crop_to(left, top, side, side, take);
          cols.window(left, side);
          rows.window(top, side);
          add(record, "scale", scale);
          add(record, "left", static_cast<double>(left));
          add(record, "top", static_cast<double>(top));
          add(record, "size", static_cast<double>(side));
          done = true;
        }
        add(record, "tries", static_cast<double>(tries));
        add(record, "success", done ? 1.0 : 0.0);
        if (!done && op.pad_on_failure) {
          const int64_t long_side = std::max(W, H);
          cols.window(0, long_side);
          rows.window(0, long_side);
        }
        break;
      }
      case OpKind::IoUCrop: {
        bool done = false, leave = t.count() == 0;
        int64_t options = 0;
        for (int64_t o = 0; !leave && !done && o < op.max_options; ++o) {
          ++options;
          const uint64_t base = 1 + static_cast<uint64_t>(o) * (1 + 4 * static_cast<uint64_t>(op.trials));
          const double min_iou = op.min_ious[static_cast<size_t>(
              stream.below(id, base, static_cast<int64_t>(op.min_ious.size())))];
          if (min_iou >= 1.0) {
            leave = true;
            add(record, "min_iou", min_iou);
            break;
          }
          for (int64_t k = 0; k < op.trials && !done; ++k) {
            const uint64_t w0 = base + 1 + 4 * static_cast<uint64_t>(k);
            const int64_t new_w = static_cast<int64_t>(
                static_cast<double>(W) * stream.uniform(id, w0, op.scale_min, op.scale_max));
            const int64_t new_h = static_cast<int64_t>(
                static_cast<double>(H) * stream.uniform(id, w0 + 1, op.scale_min, op.scale_max));
            if (new_w < 1 || new_h < 1) continue;
            const double aspect = static_cast<double>(new_w) / static_cast<double>(new_h);
            if (!(op.aspect_min <= aspect && aspect <= op.aspect_max)) continue;
            const int64_t left =
                static_cast<int64_t>(static_cast<double>(W - new_w) * stream.unit(id, w0 + 2));
            const int64_t top =
                static_cast<int64_t>(static_cast<double>(H - new_h) * stream.unit(id, w0 + 3));
            const int64_t right = left + new_w, bottom = top + new_h;
            std::vector<char> take(static_cast<size_t>(t.count()));
            double best = -1.0;
            for (int64_t b = 0; b < t.count(); ++b) {
              const float* x = &t.boxes[static_cast<size_t>(4 * b)];
              if (!centre_inside(x, left, top, right, bottom)) continue;
              take[static_cast<size_t>(b)] = 1;
              const double iw = std::min<double>(x[2], right) - std::max<double>(x[0], left);
              const double ih = std::min<double>(x[3], bottom) - std::max<double>(x[1], top);
              const double inter = iw > 0 && ih > 0 ? iw * ih : 0.0;
              const double uni = std::max(box_area(x), 0.0) +
                                 static_cast<double>(new_w) * static_cast<double>(new_h) - inter;
              best = std::max(best, uni > 0 ? inter / uni : 0.0);
            }
            if (best < 0.0 || best < min_iou) continue;
            t.crop_to(left, top, new_w, new_h, take);
            cols.window(left, new_w);
            rows.window(top, new_h);
            add(record, "min_iou", min_iou);
            add(record, "left", static_cast<double>(left));
            add(record, "top", static_cast<double>(top));
            add(record, "width", static_cast<double>(new_w));
            add(record, "height", static_cast<double>(new_h));
            done = true;
          }
        }
        add(record, "options", static_cast<double>(options));
        add(record, "success", done ? 1.0 : 0.0);
        break;
      }
      case OpKind::Distort: {
        PhotometricParams& p = plan.photometric;
        p.active = true;
        p.contrast_first = stream.unit(id, 1) < 0.5;
        p.brightness_on = stream.unit(id, 2) < op.part_probability;
        p.beta = stream.uniform(id, 3, -op.brightness_delta, op.brightness_delta);
        p.contrast_on = stream.unit(id, 4) < op.part_probability;
        p.alpha = stream.uniform(id, 5, op.contrast_min, op.contrast_max);
        p.saturation_on = stream.unit(id, 6) < op.part_probability;
        p.saturation = stream.uniform(id, 7, op.saturation_min, op.saturation_max);
        p.hue_on = stream.unit(id, 8) < op.part_probability;
        p.hue = stream.below(id, 9, 2 * op.hue_delta + 1) - op.hue_delta;
        add(record, "contrast_first", p.contrast_first);
        add(record, "brightness_on", p.brightness_on);
        add(record, "beta", p.beta);
        add(record, "contrast_on", p.contrast_on);
        add(record, "alpha", p.alpha);
        add(record, "saturation_on", p.saturation_on);
        add(record, "saturation", p.saturation);
        add(record, "hue_on", p.hue_on);
        add(record, "hue", static_cast<double>(p.hue));
        break;
      }
      case OpKind::Expand: {
        const double ratio = stream.uniform(id, 1, 1.0, op.max_ratio);
        const int64_t new_w = std::max(W, static_cast<int64_t>(ratio * static_cast<double>(W)));
        const int64_t new_h = std::max(H, static_cast<int64_t>(ratio * static_cast<double>(H)));
        if (new_w > (int64_t{1} << 24) || new_h > (int64_t{1} << 24))
          throw std::invalid_argument("expand: canvas above 2^24 pixels a side");
        const int64_t left = stream.below(id, 2, new_w - W + 1);
        const int64_t top = stream.below(id, 3, new_h - H + 1);
        t.shift(left, top);
        cols.window(-left, new_w);
        rows.window(-top, new_h);
        add(record, "ratio", ratio);
        add(record, "left", static_cast<double>(left));
        add(record, "top", static_cast<double>(top));
        add(record, "width", static_cast<double>(new_w));
        add(record, "height", static_cast<double>(new_h));
        break;
      }
      case OpKind::Flip:
        t.mirror(W, op.flip_pairs);
        cols.mirror();
        break;
      case OpKind::PadToSquare: {
        const int64_t long_side = std::max(W, H);
        cols.window(0, long_side);
        rows.window(0, long_side);
        add(record, "size", static_cast<double>(long_side));
        break;
      }
      case OpKind::Resize: {
        plan.resized = true;
        plan.interp = op.interps[static_cast<size_t>(
            stream.below(id, 1, static_cast<int64_t>(op.interps.size())))];
        if (op.shorter_sizes.empty()) {
          plan.content_width = op.out_width;
          plan.content_height = op.out_height;
        } else {
          const int64_t target = op.shorter_sizes[static_cast<size_t>(
              stream.below(id, 2, static_cast<int64_t>(op.shorter_sizes.size())))];
          const double short_side = static_cast<double>(std::min(W, H));
          const double long_side = static_cast<double>(std::max(W, H));
          double scale = static_cast<double>(target) / short_side;
          if (op.max_size > 0 && long_side * scale > static_cast<double>(op.max_size))
            scale = static_cast<double>(op.max_size) / long_side;
          plan.content_width = std::max<int64_t>(1, static_cast<int64_t>(W * scale + 0.5));
          plan.content_height = std::max<int64_t>(1, static_cast<int64_t>(H * scale + 0.5));
          add(record, "shorter_size", static_cast<double>(target));
        }
        const int64_t d = std::max<int64_t>(1, op.size_divisibility);
        plan.out_width = (plan.content_width + d - 1) / d * d;
        plan.out_height = (plan.content_height + d - 1) / d * d;
        add(record, "interp", static_cast<double>(static_cast<int>(plan.interp)));
        add(record, "width", static_cast<double>(plan.content_width));
        add(record, "height", static_cast<double>(plan.content_height));
        break;
      }
    }
    plan.records.push_back(std::move(record));
  }

  plan.canvas_width = cols.size;
  plan.canvas_height = rows.size;
  plan.cols = AxisMap{cols.sign, cols.offset, cols.lo, cols.hi};
  plan.rows = AxisMap{rows.sign, rows.offset, rows.lo, rows.hi};
  if (!plan.resized) {
    plan.content_width = plan.out_width = cols.size;
    plan.content_height = plan.out_height = rows.size;
  }

  // Targets in output coordinates: clip to the canvas, drop small boxes, scale or normalize.
  const float cw = static_cast<float>(cols.size), ch = static_cast<float>(rows.size);
  const float sx = static_cast<float>(static_cast<double>(plan.content_width) / static_cast<double>(cols.size));
  const float sy = static_cast<float>(static_cast<double>(plan.content_height) / static_cast<double>(rows.size));
  std::vector<char> take(static_cast<size_t>(t.count()), 1);
  for (int64_t b = 0; b < t.count(); ++b) {
    float* x = &t.boxes[static_cast<size_t>(4 * b)];
    if (output_.clip_boxes) {
      x[0] = std::min(std::max(x[0], 0.0f), cw);
      x[1] = std::min(std::max(x[1], 0.0f), ch);
      x[2] = std::min(std::max(x[2], 0.0f), cw);
      x[3] = std::min(std::max(x[3], 0.0f), ch);
    }
    if (output_.min_box_size >= 0.0) {
      const double bw = static_cast<double>((x[2] - x[0]) * sx);
      const double bh = static_cast<double>((x[3] - x[1]) * sy);
      take[static_cast<size_t>(b)] = bw >= output_.min_box_size && bh >= output_.min_box_size;
    }
  }
  const int64_t lw = 2 * t.points;
  int64_t kept = 0;
  for (int64_t b = 0; b < t.count(); ++b) {
    if (!take[static_cast<size_t>(b)]) continue;
    float* x = &t.boxes[static_cast<size_t>(4 * kept)];
    std::memmove(x, &t.boxes[static_cast<size_t>(4 * b)], 4 * sizeof(float));
    if (lw)
      std::memmove(&t.landmarks[static_cast<size_t>(kept * lw)],
                   &t.landmarks[static_cast<size_t>(b * lw)], static_cast<size_t>(lw) * sizeof(float));
    t.keep[static_cast<size_t>(kept)] = t.keep[static_cast<size_t>(b)];
    for (int k = 0; k < 4; ++k) {
      if (output_.normalize_boxes)
        x[k] = x[k] / ((k & 1) ? ch : cw);
      else if (plan.resized)
        x[k] = x[k] * ((k & 1) ? sy : sx);
    }
    float* l = lw ? &t.landmarks[static_cast<size_t>(kept * lw)] : nullptr;
    for (int64_t p = 0; p < t.points; ++p) {
      float* q = l + 2 * p;
      if (missing(q)) continue;
      if (output_.normalize_boxes) {
        q[0] = q[0] / cw;
        q[1] = q[1] / ch;
      } else if (plan.resized) {
        q[0] = q[0] * sx;
        q[1] = q[1] * sy;
      }
    }
    ++kept;
  }
  t.resize(kept);
  plan.boxes = std::move(t.boxes);
  plan.landmarks = std::move(t.landmarks);
  plan.keep = std::move(t.keep);
  return plan;
}

namespace {

// One axis of for_reduced_source: canvas pixel c' of the reduced canvas shows reduced source pixel
// sign * c' + offset'; the map is the original scaled by 1 / ratio, rounded to whole pixels.
AxisMap reduce_axis(const AxisMap& a, int64_t canvas, int64_t src, int64_t reduced,
                    int64_t& reduced_canvas) {
  const double ratio = static_cast<double>(src) / static_cast<double>(reduced);
  reduced_canvas = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(canvas) / ratio + 0.5));
  const auto round_div = [ratio](int64_t v) {  // round(v / ratio) without libm (v may be < 0)
    const double x = static_cast<double>(v) / ratio + 0.5;
    const int64_t t = static_cast<int64_t>(x);
    return static_cast<double>(t) > x ? t - 1 : t;
  };
  AxisMap b;
  b.sign = a.sign;
  b.offset = a.sign > 0 ? round_div(a.offset) : round_div(a.offset + 1) - 1;
  b.lo = round_div(a.lo);
  b.hi = round_div(a.hi);
  // Keep every shown pixel inside the reduced source and the reduced canvas.
  if (b.sign > 0) {
    b.lo = std::max(b.lo, -b.offset);
    b.hi = std::min(b.hi, reduced - b.offset);
  } else {
    b.lo = std::max(b.lo, b.offset - reduced + 1);
    b.hi = std::min(b.hi, b.offset + 1);
  }
  b.lo = std::min(std::max<int64_t>(b.lo, 0), reduced_canvas);
  b.hi = std::min(std::max(b.hi, b.lo), reduced_canvas);
  if (a.hi <= a.lo) b.hi = b.lo;
  return b;
}

}  // namespace

Plan Pipeline::for_reduced_source(const Plan& plan, int64_t height, int64_t width) const {
  if (!plan.resized)
    throw std::invalid_argument("only a plan that ends in a resize can use a reduced source");
  if (height < 1 || width < 1 || height > plan.src_height || width > plan.src_width)
    throw std::invalid_argument("the reduced source must be 1.." + std::to_string(plan.src_height) +
                                " x 1.." + std::to_string(plan.src_width) + ", got " +
                                std::to_string(height) + "x" + std::to_string(width));
  Plan out = plan;
  out.src_height = height;
  out.src_width = width;
  out.cols = reduce_axis(plan.cols, plan.canvas_width, plan.src_width, width, out.canvas_width);
  out.rows = reduce_axis(plan.rows, plan.canvas_height, plan.src_height, height, out.canvas_height);
  return out;
}

SourceRect source_rect(const Plan& plan) noexcept {
  const AxisMap& cm = plan.cols;
  const AxisMap& rm = plan.rows;
  const int64_t width = cm.hi - cm.lo, height = rm.hi - rm.lo;
  if (width <= 0 || height <= 0) return SourceRect{};
  // 1. canvas c shows source sign * c + offset: the first shown pixel is at lo (sign +1) or at
  //    hi - 1 (sign -1, a mirror).
  const int64_t left = cm.sign > 0 ? cm.lo + cm.offset : cm.offset - (cm.hi - 1);
  const int64_t top = rm.sign > 0 ? rm.lo + rm.offset : rm.offset - (rm.hi - 1);
  return SourceRect{top, left, height, width};
}

Plan for_source_rect(const Plan& plan, const SourceRect& rect) {
  const auto text = [](const SourceRect& r) {
    return "rows " + std::to_string(r.top) + "+" + std::to_string(r.height) + ", columns " +
           std::to_string(r.left) + "+" + std::to_string(r.width);
  };
  if (rect.top < 0 || rect.left < 0 || rect.height < 1 || rect.width < 1 ||
      rect.top + rect.height > plan.src_height || rect.left + rect.width > plan.src_width)
    throw std::invalid_argument("source rectangle " + text(rect) + " is not inside the " +
                                std::to_string(plan.src_height) + "x" +
                                std::to_string(plan.src_width) + " source");
  const SourceRect used = source_rect(plan);
  if (used.height > 0 && (used.top < rect.top || used.left < rect.left ||
                          used.top + used.height > rect.top + rect.height ||
                          used.left + used.width > rect.left + rect.width))
    throw std::invalid_argument("source rectangle " + text(rect) + " does not hold the " +
                                text(used) + " the plan reads");
  Plan out = plan;
  out.src_height = rect.height;
  out.src_width = rect.width;
  out.rows.offset -= rect.top;  // 2. pixel p of the source is pixel p - top of the rectangle
  out.cols.offset -= rect.left;
  return out;
}

}  // namespace fastloader::augment
