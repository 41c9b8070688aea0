// Detection augmentation, rendering half: photometric distortion of the source region into a uint8
// scratch, then one separable resampling pass from the canvas maps straight into the output.
// One file past the ~400-line guide: both halves use the same dispatch macro and canvas maps.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "core/augment.hpp"

// NOTE [runtime CPU dispatch]: the vectorized loops are compiled three times, for SSE2, AVX2 and
// x86-64-v4 (AVX-512), as plain functions with a target attribute around one always-inlined body
// (FASTLOADER_VARIANT), and a call picks one by the CPU's cpuid (detected_isa), read once.
// -ffp-contract=off keeps FMA out of every variant and the maths is exact int32 / IEEE float, so
// all give the same bytes (tests compare them: FASTLOADER_AUGMENT_ISA caps the level). Not
// target_clones: its ifunc resolvers ask compiler-rt for the CPU's features, and the compiler-rt
// of zig's Clang (the release wheels) reports none, so every clone fell back to SSE2 there; and
// ifunc resolvers crash under ThreadSanitizer.
#if defined(__GNUC__)
#define FASTLOADER_INLINE __attribute__((always_inline)) inline
#else
#define FASTLOADER_INLINE inline
#endif
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FASTLOADER_X86_VARIANTS 1
#include <cpuid.h>
#endif

namespace fastloader::augment {

namespace detail {

namespace {

// OpenCV's tables for uint8 BGR -> HSV (hsv_shift = 12): 255 / v and 180 / (6 diff) in Q12.
struct HsvTables {
  int sdiv[256];
  int hdiv[256];
  HsvTables() {
    sdiv[0] = hdiv[0] = 0;
    // No quotient here is a tie (2^13 * 255 and 2^14 * 15 have no odd multiple below 256), so
    // adding 0.5 and truncating equals OpenCV's round-half-even.
    for (int i = 1; i < 256; ++i) {
      sdiv[i] = static_cast<int>((255 << 12) / (1.0 * i) + 0.5);
      hdiv[i] = static_cast<int>((180 << 12) / (6.0 * i) + 0.5);
    }
  }
};

const HsvTables& hsv_tables() {
  static const HsvTables tables;
  return tables;
}

inline uint8_t saturate_truncate(float v) {
  if (!(v > 0.0f)) return 0;
  if (v >= 255.0f) return 255;
  return static_cast<uint8_t>(static_cast<int>(v));
}

// Truncating, saturating LUT of v * alpha + beta (numpy: float64 maths, clamp, then astype(uint8)).
void affine_lut(uint8_t* lut, double alpha, double beta) {
  for (int v = 0; v < 256; ++v) {
    double x = static_cast<double>(v) * alpha + beta;
    x = x < 0.0 ? 0.0 : (x > 255.0 ? 255.0 : x);
    lut[v] = static_cast<uint8_t>(x);
  }
}

}  // namespace

void bgr_to_hsv(const uint8_t* px, int bidx, uint8_t* hsv) noexcept {
  const HsvTables& tab = hsv_tables();
  const int b = px[bidx], g = px[1], r = px[bidx ^ 2];
  const int v = std::max(b, std::max(g, r));
  const int vmin = std::min(b, std::min(g, r));
  const int diff = v - vmin;
  const int vr = v == r ? -1 : 0, vg = v == g ? -1 : 0;
  const int s = (diff * tab.sdiv[v] + (1 << 11)) >> 12;
  int h = (vr & (g - b)) + (~vr & ((vg & (b - r + 2 * diff)) + ((~vg) & (r - g + 4 * diff))));
  h = (h * tab.hdiv[diff] + (1 << 11)) >> 12;
  h += h < 0 ? 180 : 0;
  hsv[0] = static_cast<uint8_t>(std::min(std::max(h, 0), 255));
  hsv[1] = static_cast<uint8_t>(s);
  hsv[2] = static_cast<uint8_t>(v);
}

void hsv_to_bgr(const uint8_t* hsv, int bidx, uint8_t* px) noexcept {
  const float s = hsv[1] * (1.0f / 255.0f), v = hsv[2] * (1.0f / 255.0f);
  float b, g, r;
  if (s == 0.0f) {
    b = g = r = v;
  } else {
    static const int sector_data[6][3] = {{1, 3, 0}, {1, 0, 2}, {3, 0, 1},
                                          {0, 2, 1}, {0, 1, 3}, {2, 1, 0}};
    float h = static_cast<float>(hsv[0]) * (6.0f / 180.0f);
    // h < 6 * 255 / 180: one subtraction wraps it (OpenCV's fmod(h, 6)).
    while (h >= 6.0f) h -= 6.0f;
    int sector = static_cast<int>(h);
    h -= static_cast<float>(sector);
    if (sector < 0 || sector >= 6) {
      sector = 0;
      h = 0.0f;
    }
    float tab[4];
    tab[0] = v;
    tab[1] = v * (1.0f - s);
    tab[2] = v * (1.0f - s * h);
    tab[3] = v * (1.0f - s * (1.0f - h));
    b = tab[sector_data[sector][0]];
    g = tab[sector_data[sector][1]];
    r = tab[sector_data[sector][2]];
  }
  // OpenCV 5 truncates here (4.x rounded): equal to cv2 5.x on all but 0.015% of the
  // 180 x 256 x 256 HSV inputs, within one level on those.
  px[bidx] = saturate_truncate(b * 255.0f);
  px[1] = saturate_truncate(g * 255.0f);
  px[bidx ^ 2] = saturate_truncate(r * 255.0f);
}

FASTLOADER_INLINE uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

FASTLOADER_INLINE float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// 0: SSE2 (or not x86), 1: AVX2, 2: x86-64-v4. FASTLOADER_AUGMENT_ISA=sse2 / avx2 lowers it.
int detect_isa() {
#if defined(FASTLOADER_X86_VARIANTS)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  const bool fma = c & (1u << 12), movbe = c & (1u << 22), osxsave = c & (1u << 27);
  const bool avx = c & (1u << 28), f16c = c & (1u << 29);
  if (!osxsave || !avx) return 0;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0x6u) != 0x6u) return 0;  // the OS saves XMM and YMM state
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
  const bool avx2 = b & (1u << 5), bmi1 = b & (1u << 3), bmi2 = b & (1u << 8);
  int isa = avx2 ? 1 : 0;
  unsigned e = 0, f = 0, g = 0, h = 0;
  const bool lzcnt = __get_cpuid(0x80000001u, &e, &f, &g, &h) && (g & (1u << 5));
  // x86-64-v4: v3 (AVX2, BMI1/2, FMA, F16C, LZCNT, MOVBE) + AVX-512 F, DQ, CD, BW, VL, and the OS
  // saving the opmask and ZMM state.
  const bool v3 = avx2 && bmi1 && bmi2 && fma && f16c && lzcnt && movbe;
  const bool avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 28)) &&
                      (b & (1u << 30)) && (b & (1u << 31)) && (xcr0_lo & 0xE0u) == 0xE0u;
  if (v3 && avx512) isa = 2;
  const char* cap = std::getenv("FASTLOADER_AUGMENT_ISA");
  if (cap && std::strcmp(cap, "sse2") == 0) isa = 0;
  if (cap && std::strcmp(cap, "avx2") == 0 && isa > 1) isa = 1;
  return isa;
#else
  return 0;
#endif
}

int detected_isa() {
  static const int isa = detect_isa();
  return isa;
}

// FASTLOADER_VARIANT defines NAME_sse2, NAME_avx2 and NAME_v4, each its target's own compilation
// of the always-inlined BODY, and NAME, which calls the one detected_isa() picks (elsewhere: NAME
// alone). TEMPLATE / TARGS: a template head and its arguments (or FASTLOADER_NO_TEMPLATE);
// ARGS / CALL: the parameters and their names, parenthesized.
#define FASTLOADER_NO_TEMPLATE
#define FASTLOADER_TEMPLATE_KS template <int K, int S>
#define FASTLOADER_KS <K, S>
#define FASTLOADER_TEMPLATE_K template <int K>
#define FASTLOADER_K <K>
// x86-64-v4 as its features: Clang ignores target("arch=x86-64-v4") (it compiled SSE2 code).
#define FASTLOADER_TARGET_V4                                                                  \
  __attribute__((target("avx2,bmi,bmi2,fma,f16c,lzcnt,movbe,avx512f,avx512dq,avx512cd,"      \
                        "avx512bw,avx512vl")))
#if defined(FASTLOADER_X86_VARIANTS)
#define FASTLOADER_VARIANT(TEMPLATE, TARGS, RET, NAME, BODY, ARGS, CALL)                  \
  TEMPLATE RET NAME##_sse2 ARGS { return BODY TARGS CALL; }                             \
  TEMPLATE __attribute__((target("avx2"))) RET NAME##_avx2 ARGS { return BODY TARGS CALL; } \
  TEMPLATE FASTLOADER_TARGET_V4 RET NAME##_v4 ARGS {                                     \
    return BODY TARGS CALL;                                                             \
  }                                                                                     \
  TEMPLATE RET NAME ARGS {                                                              \
    switch (::fastloader::augment::detail::detected_isa()) {                            \
      case 2: return NAME##_v4 TARGS CALL;                                              \
      case 1: return NAME##_avx2 TARGS CALL;                                            \
      default: return NAME##_sse2 TARGS CALL;                                           \
    }                                                                                   \
  }
#else
#define FASTLOADER_VARIANT(TEMPLATE, TARGS, RET, NAME, BODY, ARGS, CALL) \
  TEMPLATE RET NAME ARGS { return BODY TARGS CALL; }
#endif

// Whether the distortion's affine parts run as float32 maths rather than byte LUTs: only with
// AVX2 or AVX-512, the SSE2 code (no int32 min / max, emulated conversions) being slower than
// the lookups. Either way the bytes are the LUT's.
bool vector_affine_parts() { return detected_isa() >= 1; }

// One truncating, saturating affine part of the distortion (v * alpha + beta in float64, as
// numpy does): its LUT, and whether float32 maths (v * a + b truncated, then clamped) gives the
// LUT's value for all 256 levels, checked when built. Then the part runs as vectorized
// arithmetic on the planes, else as scalar lookups; the result is the LUT's either way.
struct AffinePart {
  uint8_t lut[256];
  bool on = false;     // not the identity
  bool arith = false;  // float32 maths equals the LUT
  float a = 1.0f, b = 0.0f;
  AffinePart(bool enabled, double alpha, double beta) {
    affine_lut(lut, enabled ? alpha : 1.0, enabled ? beta : 0.0);
    a = static_cast<float>(enabled ? alpha : 1.0);
    b = static_cast<float>(enabled ? beta : 0.0);
    arith = vector_affine_parts();
    for (int v = 0; v < 256; ++v) {
      on = on || lut[v] != v;
      arith = arith && (*this)(v) == lut[v];
    }
  }
  // |v * a + b| < 2^31 for the ops' ranges (factors <= 1e6, deltas <= 255), so truncating
  // before clamping is the same as after.
  FASTLOADER_INLINE int32_t operator()(int32_t v) const {
    int32_t t = static_cast<int32_t>(static_cast<float>(v) * a + b);
    t = t < 0 ? 0 : t;
    return t > 255 ? 255 : t;
  }
  // The part on n values of each plane.
  FASTLOADER_INLINE void apply(int32_t* const* planes, int count, int64_t n) const {
    const AffinePart& part = *this;
    for (int c = 0; c < count; ++c) {
      int32_t* x = planes[c];
      if (arith)
        for (int64_t i = 0; i < n; ++i) x[i] = part(x[i]);
      else
        for (int64_t i = 0; i < n; ++i) x[i] = lut[x[i]];
    }
  }
};

struct Distorter {
  AffinePart bright, contrast, sat;
  bool contrast_first;
  explicit Distorter(const PhotometricParams& p)
      : bright(p.brightness_on, 1.0, p.beta),
        contrast(p.contrast_on, p.alpha, 0.0),
        sat(p.saturation_on, p.saturation, 0.0),
        contrast_first(p.contrast_first),
        hue_shift_(static_cast<int>(p.hue_on ? p.hue : 0)) {
    // Parts done by LUT are folded into the byte (de)interleaving loops instead (one lookup per
    // byte): the parts before the HSV round trip as one table, the one after as its own.
    const bool pre_contrast = contrast_first && contrast.on;
    pre_lut_ = (bright.on && !bright.arith) || (pre_contrast && !contrast.arith);
    for (int v = 0; v < 256; ++v) pre_[v] = pre_contrast ? contrast.lut[bright.lut[v]] : bright.lut[v];
    post_lut_ = !contrast_first && contrast.on && !contrast.arith;
  }
  // Blocks of pixels in planar form: the affine parts and the HSV arithmetic are branch-free
  // int32 / float maths the compiler vectorizes (OpenCV's reciprocal tables are
  // recomputed by float division, equal to them for every entry: tested). The planes hold the
  // pixels' channels in memory order (c0, c1, c2) so the (de)interleaving loops have fixed
  // strides; blue is c0 or c2 by bidx.
  // Reads `in`, writes `out` (they may be the same pixels).
  void apply(const uint8_t* in, uint8_t* px, int64_t count, int bidx) const;  // by CPU, below
  FASTLOADER_INLINE void apply_body(const uint8_t* in, uint8_t* px, int64_t count, int bidx) const {
    constexpr int64_t kBlock = 256;
    alignas(64) int32_t c0[kBlock], c1[kBlock], c2[kBlock], h[kBlock], s[kBlock], v[kBlock];
    int32_t* const b = bidx == 0 ? c0 : c2;
    int32_t* const g = c1;
    int32_t* const r = bidx == 0 ? c2 : c0;
    int32_t* const planes[3] = {c0, c1, c2};
    int32_t* const sp = s;
    const int hue_shift = hue_shift_;
    for (int64_t start = 0; start < count; start += kBlock) {
      const int64_t n = std::min(kBlock, count - start);
      uint8_t* p = px + 3 * start;
      const uint8_t* q = in + 3 * start;
      if (pre_lut_) {
        for (int64_t i = 0; i < n; ++i) {
          c0[i] = pre_[q[3 * i]];
          c1[i] = pre_[q[3 * i + 1]];
          c2[i] = pre_[q[3 * i + 2]];
        }
      } else {
        for (int64_t i = 0; i < n; ++i) {
          c0[i] = q[3 * i];
          c1[i] = q[3 * i + 1];
          c2[i] = q[3 * i + 2];
        }
        if (bright.on) bright.apply(planes, 3, n);
        if (contrast_first && contrast.on) contrast.apply(planes, 3, n);
      }
      forward(b, g, r, h, s, v, n, hue_shift);
      if (sat.on) sat.apply(&sp, 1, n);
      backward(h, s, v, b, g, r, n);
      if (post_lut_) {
        const uint8_t* post = contrast.lut;
        for (int64_t i = 0; i < n; ++i) {
          p[3 * i] = post[c0[i]];
          p[3 * i + 1] = post[c1[i]];
          p[3 * i + 2] = post[c2[i]];
        }
        continue;
      }
      if (!contrast_first && contrast.on) contrast.apply(planes, 3, n);
      for (int64_t i = 0; i < n; ++i) {
        p[3 * i] = static_cast<uint8_t>(c0[i]);
        p[3 * i + 1] = static_cast<uint8_t>(c1[i]);
        p[3 * i + 2] = static_cast<uint8_t>(c2[i]);
      }
    }
  }
  // BGR -> HSV, then H + hue_shift modulo 180 (Python's (h + shift) % 180 for h in 0..180 and
  // |shift| < 180): h in [0, 180).
  static FASTLOADER_INLINE void forward(const int32_t* __restrict b, const int32_t* __restrict g,
                             const int32_t* __restrict r, int32_t* __restrict h, int32_t* __restrict s,
                             int32_t* __restrict v, int64_t n, int hue_shift) {
    for (int64_t i = 0; i < n; ++i) {
      const int32_t bi = b[i], gi = g[i], ri = r[i];
      const int32_t bg_max = bi > gi ? bi : gi, bg_min = bi < gi ? bi : gi;
      const int32_t vv = bg_max > ri ? bg_max : ri;
      const int32_t vmin = bg_min < ri ? bg_min : ri;
      const int32_t diff = vv - vmin;
      const int32_t sdiv = static_cast<int32_t>(1044480.0f / static_cast<float>(vv > 1 ? vv : 1) + 0.5f);
      const int32_t hdiv = static_cast<int32_t>(122880.0f / static_cast<float>(diff > 1 ? diff : 1) + 0.5f);
      const int32_t num_g = bi - ri + 2 * diff, num_b = ri - gi + 4 * diff;
      const int32_t num = vv == ri ? gi - bi : (vv == gi ? num_g : num_b);
      int32_t hh = (num * hdiv + (1 << 11)) >> 12;
      hh += hh < 0 ? 180 : 0;
      hh += hue_shift;
      hh -= hh >= 180 ? 180 : 0;
      hh += hh < 0 ? 180 : 0;
      h[i] = hh;
      s[i] = (diff * sdiv + (1 << 11)) >> 12;
      v[i] = vv;
    }
  }
  // HSV -> BGR (OpenCV's float maths) and the truncation to uint8 levels. h < 180, so hf < 6 and
  // the sector is 0..5 (OpenCV's fmod never applies); each output picks one of v, p, q, t by
  // sector (sector_data {1,3,0},{1,0,2},{3,0,1},{0,2,1},{0,1,3},{2,1,0}) as selects, which
  // vectorize to blends. The products are below 255.5, so truncating then clamping to 255 is
  // OpenCV 5's truncation (4.x rounded): equal to cv2 5.x on all but 0.015% of the
  // 180 x 256 x 256 HSV inputs, within one level on those.
  static FASTLOADER_INLINE void backward(const int32_t* __restrict h, const int32_t* __restrict s,
                              const int32_t* __restrict v, int32_t* __restrict b, int32_t* __restrict g,
                              int32_t* __restrict r, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      const float sf = static_cast<float>(s[i]) * (1.0f / 255.0f);
      const float vf = static_cast<float>(v[i]) * (1.0f / 255.0f);
      const float hf = static_cast<float>(h[i]) * (6.0f / 180.0f);
      const int32_t sector = static_cast<int32_t>(hf);
      const float f = hf - static_cast<float>(sector);
      const float tp = vf * (1.0f - sf);
      const float tq = vf * (1.0f - sf * f);
      const float tt = vf * (1.0f - sf * (1.0f - f));
      // Exact selects as bit masks: GCC turns ?: chains on the sector back into a multi-way
      // branch, which does not vectorize.
      const uint32_t m0 = 0u - (sector == 0), m1 = 0u - (sector == 1), m2 = 0u - (sector == 2);
      const uint32_t m3 = 0u - (sector == 3), m4 = 0u - (sector == 4), m5 = 0u - (sector == 5);
      const uint32_t gray = 0u - (s[i] == 0), color = ~gray;
      const uint32_t uv = bits(vf), up = bits(tp), uq = bits(tq), ut = bits(tt);
      const uint32_t sb = ((m0 | m1) & up) | (m2 & ut) | ((m3 | m4) & uv) | (m5 & uq);
      const uint32_t sg = (m0 & ut) | ((m1 | m2) & uv) | (m3 & uq) | ((m4 | m5) & up);
      const uint32_t sr = ((m0 | m5) & uv) | (m1 & uq) | ((m2 | m3) & up) | (m4 & ut);
      const float ob = from_bits((gray & uv) | (color & sb));
      const float og = from_bits((gray & uv) | (color & sg));
      const float orr = from_bits((gray & uv) | (color & sr));
      const int32_t ib = static_cast<int32_t>(ob * 255.0f), ig = static_cast<int32_t>(og * 255.0f),
                    ir = static_cast<int32_t>(orr * 255.0f);
      b[i] = ib > 255 ? 255 : ib;
      g[i] = ig > 255 ? 255 : ig;
      r[i] = ir > 255 ? 255 : ir;
    }
  }
  int hue_shift_ = 0;
  bool pre_lut_ = false, post_lut_ = false;
  uint8_t pre_[256];
};

FASTLOADER_INLINE void distort_body(const Distorter& d, const uint8_t* in, uint8_t* px, int64_t count,
                                    int bidx) {
  d.apply_body(in, px, count, bidx);
}
FASTLOADER_VARIANT(FASTLOADER_NO_TEMPLATE, FASTLOADER_NO_TEMPLATE, void, distort_run, distort_body,
                   (const Distorter& d, const uint8_t* in, uint8_t* px, int64_t count, int bidx),
                   (d, in, px, count, bidx))
void Distorter::apply(const uint8_t* in, uint8_t* px, int64_t count, int bidx) const {
  distort_run(*this, in, px, count, bidx);
}

void distort_pixels(uint8_t* pixels, int64_t count, int bidx, const PhotometricParams& p) {
  if (bidx != 0 && bidx != 2) throw std::invalid_argument("bidx must be 0 or 2");
  if (count < 0) throw std::invalid_argument("count must be non-negative");
  Distorter(p).apply(pixels, pixels, count, bidx);
}

uint16_t float_to_half(float value) noexcept {
  uint32_t x;
  std::memcpy(&x, &value, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) return static_cast<uint16_t>(sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u : 0u));
  if (abs >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds past 65504
  if (abs < 0x38800000u) {  // below half's smallest normal: a subnormal (or zero)
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // under half the smallest one
    // value / 2^-24 = mantissa * 2^(exponent - 126): shift right by 126 - exponent (14..24).
    const uint32_t shift = 126 - (abs >> 23);
    const uint32_t mantissa = (abs & 0x7FFFFFu) | 0x800000u;
    uint32_t half = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t midpoint = 1u << (shift - 1);
    if (rest > midpoint || (rest == midpoint && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = ((abs - 0x38000000u) >> 13);
  const uint32_t rest = abs & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1))) ++half;
  return static_cast<uint16_t>(sign | half);
}

uint16_t float_to_bfloat16(float value) noexcept {
  uint32_t x;
  std::memcpy(&x, &value, 4);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  x += 0x7FFFu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

}  // namespace detail

namespace {

// Resampling taps of one axis: output position d reads region pixels index[d * k + j] with
// weight[d * k + j]; taps on fill pixels are folded into fill_weight[d].
struct Taps {
  int k = 1;
  std::vector<int32_t> index;
  std::vector<float> weight;
  std::vector<float> fill_weight;
};

struct FlatTaps {
  std::vector<std::pair<int64_t, float>> list;
  std::vector<size_t> begin;
  size_t count(int64_t d) const { return begin[static_cast<size_t>(d) + 1] - begin[static_cast<size_t>(d)]; }
};

// OpenCV's cubic coefficients (A = -0.75).
void cubic_coeffs(float x, float* c) {
  const float A = -0.75f;
  c[0] = ((A * (x + 1) - 5 * A) * (x + 1) + 8 * A) * (x + 1) - 4 * A;
  c[1] = ((A + 2) * x - (A + 3)) * x * x + 1;
  c[2] = ((A + 2) * (1 - x) - (A + 3)) * (1 - x) * (1 - x) + 1;
  c[3] = 1.f - c[0] - c[1] - c[2];
}

// OpenCV's Lanczos-4 coefficients (deterministic functions of the position; not random draws).
void lanczos_coeffs(float x, float* c) {
  static const double s45 = 0.70710678118654752440084436210485;
  static const double cs[8][2] = {{1, 0},  {-s45, -s45}, {0, 1},  {s45, -s45},
                                  {-1, 0}, {s45, s45},   {0, -1}, {-s45, s45}};
  const double pi = 3.141592653589793238462643383279502884;
  float sum = 0;
  const double y0 = -(x + 3) * pi * 0.25, s0 = std::sin(y0), c0 = std::cos(y0);
  for (int i = 0; i < 8; ++i) {
    const float yi = x + 3 - static_cast<float>(i);
    if (std::fabs(yi) >= 1e-6f) {
      const double y = -yi * pi * 0.25;
      c[i] = static_cast<float>((cs[i][0] * s0 + cs[i][1] * c0) / (y * y));
    } else {
      c[i] = 1e30f;
    }
    sum += c[i];
  }
  sum = 1.f / sum;
  for (int i = 0; i < 8; ++i) c[i] *= sum;
}

int64_t floor_to_int(double v) {
  const int64_t i = static_cast<int64_t>(v);
  return static_cast<double>(i) > v ? i - 1 : i;
}

// Taps from canvas (src pixels) to dst pixels with OpenCV's cv::resize coordinate rules, then
// composed with the canvas -> region map (-1: a fill pixel).
Taps build_taps(Interp interp, bool area_down, int64_t src, int64_t dst,
                const std::vector<int32_t>& map) {
  const double inv_scale = static_cast<double>(dst) / static_cast<double>(src);
  const double scale = 1.0 / inv_scale;
  // All positions' taps in one flat list (position d owns [begin[d], begin[d + 1])).
  FlatTaps taps;
  taps.list.reserve(static_cast<size_t>(dst) * 4);
  taps.begin.resize(static_cast<size_t>(dst) + 1);
  const auto clamp = [src](int64_t i) { return std::min<int64_t>(std::max<int64_t>(i, 0), src - 1); };
  for (int64_t d = 0; d < dst; ++d) {
    taps.begin[static_cast<size_t>(d)] = taps.list.size();
    if (interp == Interp::Nearest) {
      taps.list.emplace_back(std::min<int64_t>(floor_to_int(static_cast<double>(d) * scale), src - 1), 1.0f);
    } else if (interp == Interp::Area && area_down) {
      const double fs1 = static_cast<double>(d) * scale, fs2 = fs1 + scale;
      const double cell = std::min(scale, static_cast<double>(src) - fs1);
      int64_t s1 = floor_to_int(fs1);
      if (static_cast<double>(s1) < fs1) ++s1;  // ceil
      int64_t s2 = floor_to_int(fs2);
      s2 = std::min(s2, src - 1);
      s1 = std::min(s1, s2);
      if (static_cast<double>(s1) - fs1 > 1e-3)
        taps.list.emplace_back(s1 - 1, static_cast<float>((static_cast<double>(s1) - fs1) / cell));
      for (int64_t s = s1; s < s2; ++s) taps.list.emplace_back(s, static_cast<float>(1.0 / cell));
      if (fs2 - static_cast<double>(s2) > 1e-3)
        taps.list.emplace_back(s2, static_cast<float>(
                                  std::min(std::min(fs2 - static_cast<double>(s2), 1.0), cell) / cell));
    } else {
      int64_t sx;
      float fx;
      if (interp == Interp::Area) {  // area when enlarging: linear with OpenCV's area offsets
        sx = floor_to_int(static_cast<double>(d) * scale);
        fx = static_cast<float>(static_cast<double>(d + 1) - static_cast<double>(sx + 1) * inv_scale);
        fx = fx <= 0 ? 0.f : fx - static_cast<float>(floor_to_int(fx));
      } else {
        fx = static_cast<float>((static_cast<double>(d) + 0.5) * scale - 0.5);
        sx = floor_to_int(fx);
        fx -= static_cast<float>(sx);
      }
      if (interp == Interp::Linear || interp == Interp::Area) {
        if (sx < 0) fx = 0, sx = 0;
        if (sx >= src - 1) fx = 0, sx = src - 1;
        taps.list.emplace_back(sx, 1.0f - fx);
        taps.list.emplace_back(clamp(sx + 1), fx);
      } else if (interp == Interp::Cubic) {
        float c[4];
        cubic_coeffs(fx, c);
        for (int j = 0; j < 4; ++j) taps.list.emplace_back(clamp(sx - 1 + j), c[j]);
      } else {
        float c[8];
        lanczos_coeffs(fx, c);
        for (int j = 0; j < 8; ++j) taps.list.emplace_back(clamp(sx - 3 + j), c[j]);
      }
    }
  }
  taps.begin[static_cast<size_t>(dst)] = taps.list.size();
  Taps out;
  size_t k = 1;
  for (int64_t d = 0; d < dst; ++d) k = std::max(k, taps.count(d));
  out.k = static_cast<int>(k);
  out.index.assign(static_cast<size_t>(dst) * k, 0);
  out.weight.assign(static_cast<size_t>(dst) * k, 0.0f);
  out.fill_weight.assign(static_cast<size_t>(dst), 0.0f);
  for (int64_t d = 0; d < dst; ++d) {
    const std::pair<int64_t, float>* row = &taps.list[taps.begin[static_cast<size_t>(d)]];
    const size_t count = taps.count(d);
    // The region index of the first real tap pads the unused slots (weight 0), keeping them in
    // range and near their neighbours.
    int32_t pad_index = 0;
    for (size_t j = 0; j < count; ++j)
      if (map[static_cast<size_t>(row[j].first)] >= 0) {
        pad_index = map[static_cast<size_t>(row[j].first)];
        break;
      }
    for (size_t j = 0; j < k; ++j) out.index[static_cast<size_t>(d) * k + j] = pad_index;
    for (size_t j = 0; j < count; ++j) {
      const int32_t r = map[static_cast<size_t>(row[j].first)];
      if (r < 0) {
        out.fill_weight[static_cast<size_t>(d)] += row[j].second;
      } else {
        out.index[static_cast<size_t>(d) * k + j] = r;
        out.weight[static_cast<size_t>(d) * k + j] = row[j].second;
      }
    }
  }
  return out;
}

// Which output positions of an axis read k consecutive region pixels (index[d * k] + step * j,
// step +1, or -1 on a mirrored axis) and no fill: those take the horizontal pass's fast path
// (taps at fixed offsets from one pointer, no per-tap index loads); the rest (clamped borders,
// fill, area's uneven tap counts) the general one. Both compute the same sum in the same order.
struct Runs {
  int step = 1;
  std::vector<uint8_t> general;  // per position: 1 = general path
};

bool consecutive(const Taps& t, int64_t d, int step) {
  const size_t k = static_cast<size_t>(t.k);
  const int32_t* idx = &t.index[static_cast<size_t>(d) * k];
  bool ok = t.fill_weight[static_cast<size_t>(d)] == 0.0f;
  for (size_t j = 1; ok && j < k; ++j) ok = idx[j] == idx[0] + step * static_cast<int32_t>(j);
  return ok;
}

Runs contiguous_runs(const Taps& t, int64_t dst) {
  Runs r;
  int64_t up = 0, down = 0;
  for (int64_t d = 0; d < dst; ++d) {
    up += consecutive(t, d, 1);
    down += consecutive(t, d, -1);
  }
  r.step = up >= down ? 1 : -1;
  r.general.resize(static_cast<size_t>(dst));
  for (int64_t d = 0; d < dst; ++d) r.general[static_cast<size_t>(d)] = !consecutive(t, d, r.step);
  return r;
}

// Horizontal pass of one region row (floats, 3 interleaved channels, one float of slack at the
// end) into floats, one plane per channel ([3][dst]). A tap's 3 channels are one 4-lane vector
// (the 4th lane is the next pixel's, never used): GCC / Clang vector extensions compile to SSE2
// or NEON without target flags; elsewhere the scalar loop. Fast-path positions start from
// w0 * px0 where the general path starts from 0 * fill + w0 * px0: the same value (up to the
// sign of a zero, which the vertical pass's rounding erases).
#if defined(__GNUC__) || defined(__clang__)
typedef float Lanes4 __attribute__((vector_size(16)));
template <int K, int S>
FASTLOADER_INLINE void horizontal_body(const float* row, const Taps& t, const Runs& runs, int64_t dst,
                                       const float* fill, float* out) {
  const int k = K > 0 ? K : t.k;
  const int32_t* idx = t.index.data();
  const float* w = t.weight.data();
  const uint8_t* general = runs.general.data();
  const Lanes4 fill4 = {fill[0], fill[1], fill[2], 0.0f};
  for (int64_t d = 0; d < dst; ++d, idx += k, w += k) {
    Lanes4 acc;
    if (K > 0 && !general[d]) {
      const float* p = row + 3 * static_cast<int64_t>(idx[0]);
      std::memcpy(&acc, p, sizeof(acc));
      acc = w[0] * acc;
      for (int j = 1; j < K; ++j) {
        Lanes4 px;
        std::memcpy(&px, p + 3 * S * j, sizeof(px));
        acc += w[j] * px;
      }
    } else {
      acc = t.fill_weight[static_cast<size_t>(d)] * fill4;
      for (int j = 0; j < k; ++j) {
        Lanes4 px;
        std::memcpy(&px, row + 3 * static_cast<int64_t>(idx[j]), sizeof(px));
        acc += w[j] * px;
      }
    }
    out[d] = acc[0];
    out[dst + d] = acc[1];
    out[2 * dst + d] = acc[2];
  }
}
FASTLOADER_VARIANT(FASTLOADER_TEMPLATE_KS, FASTLOADER_KS, void, horizontal, horizontal_body,
                   (const float* row, const Taps& t, const Runs& runs, int64_t dst,
                    const float* fill, float* out),
                   (row, t, runs, dst, fill, out))
#else
template <int K, int S>
void horizontal(const float* row, const Taps& t, const Runs&, int64_t dst, const float* fill, float* out) {
  const int k = K > 0 ? K : t.k;
  const int32_t* idx = t.index.data();
  const float* w = t.weight.data();
  for (int64_t d = 0; d < dst; ++d, idx += k, w += k) {
    const float f = t.fill_weight[static_cast<size_t>(d)];
    float a0 = f * fill[0], a1 = f * fill[1], a2 = f * fill[2];
    for (int j = 0; j < k; ++j) {
      const float* p = row + 3 * static_cast<int64_t>(idx[j]);
      a0 += w[j] * p[0];
      a1 += w[j] * p[1];
      a2 += w[j] * p[2];
    }
    out[d] = a0;
    out[dst + d] = a1;
    out[2 * dst + d] = a2;
  }
}
#endif

template <int K>
void horizontal_k(const float* row, const Taps& t, const Runs& runs, int64_t dst, const float* fill,
                  float* out) {
  if (runs.step > 0)
    horizontal<K, 1>(row, t, runs, dst, fill, out);
  else
    horizontal<K, -1>(row, t, runs, dst, fill, out);
}

// Clamped to 0..255 and rounded half up: the uint8 level cv2.resize writes, as a float.
// Rounded before clamping (the same level for any |v| < 2^31; sums here stay within a few
// hundred): integer min / max vectorize where the float compares did not (-ftrapping-math).
FASTLOADER_INLINE float level_of(float v) {
  int32_t i = static_cast<int32_t>(v + 0.5f);
  i = i < 0 ? 0 : i;
  i = i > 255 ? 255 : i;
  return static_cast<float>(i);
}

// levels = level_of(base + sum_j weights[j] * planes[j][0..n)), summed in tap order.
FASTLOADER_INLINE void vertical_levels_body(float* levels, const float* const* planes,
                                            const float* weights, int taps, int64_t n, float base) {
  for (int64_t x = 0; x < n; ++x) levels[x] = base;
  for (int j = 0; j < taps; ++j) {
    const float w = weights[j];
    const float* h = planes[j];
    for (int64_t x = 0; x < n; ++x) levels[x] += w * h[x];
  }
  for (int64_t x = 0; x < n; ++x) levels[x] = level_of(levels[x]);
}
FASTLOADER_VARIANT(FASTLOADER_NO_TEMPLATE, FASTLOADER_NO_TEMPLATE, void, vertical_levels,
                   vertical_levels_body,
                   (float* levels, const float* const* planes, const float* weights, int taps,
                    int64_t n, float base),
                   (levels, planes, weights, taps, n, base))

// The vertical sum, the level rounding and the float32 output value (level * a + b) in one pass
// over a contiguous output row: the same floats as vertical_levels then level * a + b.
template <int K>
FASTLOADER_INLINE void vertical_store_body(float* __restrict out, const float* const* planes,
                                           const float* weights, int64_t n, float base, float a,
                                           float b) {
  const float* h[K > 0 ? K : 1];
  float w[K > 0 ? K : 1];
  for (int j = 0; j < K; ++j) h[j] = planes[j], w[j] = weights[j];
  for (int64_t x = 0; x < n; ++x) {
    float acc = base;
#pragma GCC unroll 8
    for (int j = 0; j < K; ++j) acc += w[j] * h[j][x];
    out[x] = level_of(acc) * a + b;
  }
}
FASTLOADER_VARIANT(FASTLOADER_TEMPLATE_K, FASTLOADER_K, void, vertical_store, vertical_store_body,
                   (float* __restrict out, const float* const* planes, const float* weights,
                    int64_t n, float base, float a, float b),
                   (out, planes, weights, n, base, a, b))

FASTLOADER_INLINE void affine_store_body(float* out, const float* levels, int64_t n, float a,
                                         float b) {
  for (int64_t x = 0; x < n; ++x) out[x] = levels[x] * a + b;
}
FASTLOADER_VARIANT(FASTLOADER_NO_TEMPLATE, FASTLOADER_NO_TEMPLATE, void, affine_store,
                   affine_store_body, (float* out, const float* levels, int64_t n, float a, float b),
                   (out, levels, n, a, b))

thread_local std::vector<uint8_t> tls_scratch;
thread_local std::vector<float> tls_rows;
thread_local std::vector<float> tls_row_f;

}  // namespace

void Pipeline::render(const Plan& plan, const ImageView& src, const OutputView& dst) const {
  if (src.height != plan.src_height || src.width != plan.src_width)
    throw std::invalid_argument("image: " + std::to_string(src.height) + "x" +
                                std::to_string(src.width) + " is not the " +
                                std::to_string(plan.src_height) + "x" +
                                std::to_string(plan.src_width) + " image the plan was made for");
  if (src.channels != 1 && src.channels != 3 && src.channels != 4)
    throw std::invalid_argument("image: 1, 3 or 4 channels expected, got " + std::to_string(src.channels));
  if (!src.data || !dst.data) throw std::invalid_argument("image / output: null data");

  const int64_t W = plan.canvas_width, H = plan.canvas_height;
  const AxisMap& cm = plan.cols;
  const AxisMap& rm = plan.rows;
  // The source region the canvas shows.
  const SourceRect region = source_rect(plan);
  const int64_t rw = region.width, rh = region.height, x0 = region.left, y0 = region.top;
  if (rw > 0 && rh > 0 && (x0 < 0 || y0 < 0 || x0 + rw > src.width || y0 + rh > src.height))
    throw std::logic_error("augment: canvas region outside the source");

  const int bidx = output_.input_rgb ? 2 : 0;
  // Output channel oc reads working channel perm[oc] (the working image is in the source order).
  const int perm[3] = {output_.input_rgb == output_.output_rgb ? 0 : 2, 1,
                       output_.input_rgb == output_.output_rgb ? 2 : 0};
  uint8_t fill[3];
  for (int c = 0; c < 3; ++c) fill[c] = output_.fill[perm[c]];
  const float fill_f[3] = {static_cast<float>(fill[0]), static_cast<float>(fill[1]),
                          static_cast<float>(fill[2])};

  // The working image: 3-channel uint8 HWC of the region, a view of the source when it already is
  // one and no distortion applies, else the scratch (channels mapped, distortion applied once per
  // source pixel).
  const uint8_t* work = nullptr;
  int64_t work_stride = 0;
  if (rw > 0 && rh > 0) {
    const bool direct = src.channels == 3 && src.col_stride == 3 && src.channel_stride == 1 &&
                        !plan.photometric.active;
    if (direct) {
      work = src.data + y0 * src.row_stride + x0 * 3;
      work_stride = src.row_stride;
    } else {
      std::vector<uint8_t>& scratch = tls_scratch;
      scratch.resize(static_cast<size_t>(rw * rh * 3));
      std::unique_ptr<detail::Distorter> distorter;
      if (plan.photometric.active) distorter = std::make_unique<detail::Distorter>(plan.photometric);
      for (int64_t y = 0; y < rh; ++y) {
        uint8_t* out = &scratch[static_cast<size_t>(y * rw * 3)];
        const uint8_t* in = src.data + (y0 + y) * src.row_stride + x0 * src.col_stride;
        if (src.channels == 3 && src.col_stride == 3 && src.channel_stride == 1) {
          // Distorted straight from the source row (the scratch is written once).
          if (distorter)
            distorter->apply(in, out, rw, bidx);
          else
            std::memcpy(out, in, static_cast<size_t>(rw * 3));
          continue;
        } else if (src.channels == 1) {
          for (int64_t x = 0; x < rw; ++x) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[x * src.col_stride];
        } else {
          const int64_t cs = src.channel_stride;
          for (int64_t x = 0; x < rw; ++x) {
            const uint8_t* p = in + x * src.col_stride;
            out[3 * x] = p[0];
            out[3 * x + 1] = p[cs];
            out[3 * x + 2] = p[2 * cs];
          }
        }
        if (distorter) distorter->apply(out, out, rw, bidx);
      }
      work = scratch.data();
      work_stride = rw * 3;
    }
  }

  // Canvas -> region index per axis (-1: fill).
  std::vector<int32_t> col_map(static_cast<size_t>(W)), row_map(static_cast<size_t>(H));
  for (int64_t c = 0; c < W; ++c)
    col_map[static_cast<size_t>(c)] =
        c >= cm.lo && c < cm.hi ? static_cast<int32_t>(cm.sign * c + cm.offset - x0) : -1;
  for (int64_t r = 0; r < H; ++r)
    row_map[static_cast<size_t>(r)] =
        r >= rm.lo && r < rm.hi ? static_cast<int32_t>(rm.sign * r + rm.offset - y0) : -1;

  const int64_t cw = plan.content_width, ch = plan.content_height;
  const int64_t ow = plan.out_width, oh = plan.out_height;
  const Interp interp = plan.resized ? plan.interp : Interp::Nearest;
  const bool area_down = static_cast<double>(W) >= static_cast<double>(cw) &&
                         static_cast<double>(H) >= static_cast<double>(ch);
  const Taps tx = build_taps(interp, area_down, W, cw, col_map);
  const Taps ty = build_taps(interp, area_down, H, ch, row_map);

  const auto lut_f32 = [&](int oc, uint8_t level) {
    return reinterpret_cast<const float*>(lut_[oc].data())[level];
  };
  // One output row of one channel from its levels (nullptr: all fill), padding columns included.
  const auto write_plane = [&](const float* lv, int oc, int64_t y, uint8_t fill_level,
                               const OutputView& d) {
    const int64_t xs = d.col_stride;
    const int64_t at = oc * d.channel_stride + y * d.row_stride;
    switch (output_.dtype) {
      case OutDType::Float32: {
        float* out = static_cast<float*>(d.data) + at;
        const float* lut = reinterpret_cast<const float*>(lut_[oc].data());
        if (lv && affine_exact_) {
          const float a = affine_scale_[oc], b = affine_offset_[oc];
          if (xs == 1) {
            affine_store(out, lv, cw, a, b);
          } else {
            for (int64_t x = 0; x < cw; ++x) out[x * xs] = lv[x] * a + b;
          }
        } else if (lv) {
          for (int64_t x = 0; x < cw; ++x) out[x * xs] = lut[static_cast<int32_t>(lv[x])];
        } else {
          for (int64_t x = 0; x < cw; ++x) out[x * xs] = lut[fill_level];
        }
        for (int64_t x = cw; x < ow; ++x) out[x * xs] = lut[fill_level];
        break;
      }
      case OutDType::UInt8: {
        uint8_t* out = static_cast<uint8_t*>(d.data) + at;
        for (int64_t x = 0; x < cw; ++x) out[x * xs] = lv ? static_cast<uint8_t>(lv[x]) : fill_level;
        for (int64_t x = cw; x < ow; ++x) out[x * xs] = fill_level;
        break;
      }
      default: {
        uint16_t* out = static_cast<uint16_t*>(d.data) + at;
        const uint16_t* lut = reinterpret_cast<const uint16_t*>(lut_[oc].data());
        for (int64_t x = 0; x < cw; ++x)
          out[x * xs] = lut[lv ? static_cast<int32_t>(lv[x]) : fill_level];
        for (int64_t x = cw; x < ow; ++x) out[x * xs] = lut[fill_level];
        break;
      }
    }
  };

  // float32 output by arithmetic into contiguous rows: written straight from the sums, no
  // level buffer in between.
  const bool fused = output_.dtype == OutDType::Float32 && affine_exact_ && dst.col_stride == 1;
  if (interp == Interp::Nearest) {
    // Exact: every output pixel is one canvas pixel; written plane by plane as levels.
    std::vector<float>& lv = tls_rows;
    lv.resize(static_cast<size_t>(std::max<int64_t>(cw, 1)));
    // Byte offset of each output column's pixel in a region row (-1: fill).
    std::vector<int32_t> offsets(static_cast<size_t>(cw));
    bool any_fill = false;
    for (int64_t x = 0; x < cw; ++x) {
      const bool is_fill = tx.fill_weight[static_cast<size_t>(x)] != 0;
      any_fill = any_fill || is_fill;
      offsets[static_cast<size_t>(x)] = is_fill ? -1 : 3 * tx.index[static_cast<size_t>(x)];
    }
    const int32_t* off = offsets.data();
    for (int64_t y = 0; y < ch; ++y) {
      const int32_t r = ty.fill_weight[static_cast<size_t>(y)] > 0 ? -1 : ty.index[static_cast<size_t>(y)];
      const uint8_t* in = r >= 0 ? work + r * work_stride : nullptr;
      for (int oc = 0; oc < 3; ++oc) {
        const int ic = perm[oc];
        if (!in) {
          write_plane(nullptr, oc, y, fill[ic], dst);
          continue;
        }
        const uint8_t* inc = in + ic;
        const float fill_level = fill_f[ic];
        if (fused) {
          float* out = static_cast<float*>(dst.data) + oc * dst.channel_stride + y * dst.row_stride;
          const float a = affine_scale_[oc], b = affine_offset_[oc];
          if (any_fill) {
            for (int64_t x = 0; x < cw; ++x)
              out[x] = (off[x] >= 0 ? static_cast<float>(inc[off[x]]) : fill_level) * a + b;
          } else {
            for (int64_t x = 0; x < cw; ++x) out[x] = static_cast<float>(inc[off[x]]) * a + b;
          }
          const float pad = lut_f32(oc, fill[ic]);
          for (int64_t x = cw; x < ow; ++x) out[x] = pad;
          continue;
        }
        for (int64_t x = 0; x < cw; ++x)
          lv[static_cast<size_t>(x)] = off[x] >= 0 ? static_cast<float>(inc[off[x]]) : fill_level;
        write_plane(lv.data(), oc, y, fill[ic], dst);
      }
    }
    for (int64_t y = ch; y < oh; ++y)
      for (int oc = 0; oc < 3; ++oc) write_plane(nullptr, oc, y, fill[perm[oc]], dst);
    return;
  } else {
    // Separable: horizontal rows cached in a ring of ty.k slots (the taps of one output row are
    // consecutive region rows, so they never collide), then the vertical sum.
    const int k = ty.k;
    std::vector<float>& rows = tls_rows;
    rows.resize(static_cast<size_t>((k + 1) * cw * 3));
    float* acc = rows.data() + static_cast<size_t>(k) * static_cast<size_t>(cw * 3);
    std::vector<int64_t> tags(static_cast<size_t>(k), -1);
    const Runs runs = contiguous_runs(tx, cw);
    std::vector<float>& row_f = tls_row_f;
    row_f.assign(static_cast<size_t>(std::max<int64_t>(rw, 1) * 3 + 1), 0.0f);  // + the slack lane
    const auto hrow = [&](int32_t r) -> const float* {
      float* slot = rows.data() + static_cast<size_t>(r % k) * static_cast<size_t>(cw * 3);
      if (tags[static_cast<size_t>(r % k)] != r) {
        // The row as floats once (vectorized), not each tap's bytes converted per output pixel.
        const uint8_t* bytes = work + r * work_stride;
        for (int64_t i = 0; i < rw * 3; ++i) row_f[static_cast<size_t>(i)] = static_cast<float>(bytes[i]);
        const float* in = row_f.data();
        switch (tx.k) {
          case 1: horizontal_k<1>(in, tx, runs, cw, fill_f, slot); break;
          case 2: horizontal_k<2>(in, tx, runs, cw, fill_f, slot); break;
          case 3: horizontal_k<3>(in, tx, runs, cw, fill_f, slot); break;
          case 4: horizontal_k<4>(in, tx, runs, cw, fill_f, slot); break;
          case 8: horizontal_k<8>(in, tx, runs, cw, fill_f, slot); break;
          default: horizontal<0, 1>(in, tx, runs, cw, fill_f, slot); break;
        }
        tags[static_cast<size_t>(r % k)] = r;
      }
      return slot;
    };
    // Per output channel: the vertical sum over contiguous planes, rounded to a uint8 level as
    // cv2.resize's uint8 output is, then that level's output value: arithmetic where it equals
    // the LUT for all 256 levels (checked when the pipeline was built), else the LUT.
    float* levels = acc;  // the rounded levels of one plane (as floats)
    std::vector<const float*> planes(static_cast<size_t>(k)), channel_planes(static_cast<size_t>(k));
    std::vector<float> weights(static_cast<size_t>(k));
    for (int64_t y = 0; y < ch; ++y) {
      const float fw = ty.fill_weight[static_cast<size_t>(y)];
      int taps = 0;
      for (int j = 0; j < k; ++j) {
        const float w = ty.weight[static_cast<size_t>(y * k + j)];
        if (w == 0.0f) continue;
        planes[static_cast<size_t>(taps)] = hrow(ty.index[static_cast<size_t>(y * k + j)]);
        weights[static_cast<size_t>(taps++)] = w;
      }
      for (int oc = 0; oc < 3; ++oc) {
        const int ic = perm[oc];
        for (int j = 0; j < taps; ++j) channel_planes[static_cast<size_t>(j)] = planes[static_cast<size_t>(j)] + ic * cw;
        const float base = fw * fill_f[ic];
        if (fused && taps <= 8) {
          float* out = static_cast<float*>(dst.data) + oc * dst.channel_stride + y * dst.row_stride;
          const float a = affine_scale_[oc], b = affine_offset_[oc];
          const float* const* cp = channel_planes.data();
          const float* wp = weights.data();
          switch (taps) {
            case 0: vertical_store<0>(out, cp, wp, cw, base, a, b); break;
            case 1: vertical_store<1>(out, cp, wp, cw, base, a, b); break;
            case 2: vertical_store<2>(out, cp, wp, cw, base, a, b); break;
            case 3: vertical_store<3>(out, cp, wp, cw, base, a, b); break;
            case 4: vertical_store<4>(out, cp, wp, cw, base, a, b); break;
            case 5: vertical_store<5>(out, cp, wp, cw, base, a, b); break;
            case 6: vertical_store<6>(out, cp, wp, cw, base, a, b); break;
            case 7: vertical_store<7>(out, cp, wp, cw, base, a, b); break;
            default: vertical_store<8>(out, cp, wp, cw, base, a, b); break;
          }
          const float pad = lut_f32(oc, fill[ic]);
          for (int64_t x = cw; x < ow; ++x) out[x] = pad;
          continue;
        }
        vertical_levels(levels, channel_planes.data(), weights.data(), taps, cw, base);
        write_plane(levels, oc, y, fill[ic], dst);
      }
    }
    for (int64_t y = ch; y < oh; ++y)
      for (int oc = 0; oc < 3; ++oc) write_plane(nullptr, oc, y, fill[perm[oc]], dst);
    return;
  }
}

}  // namespace fastloader::augment
