// Region decoding through libjpeg-turbo's libjpeg API, resolved with dlopen / dlsym.
//
// NOTE [errors inside libjpeg]: libjpeg reports errors by calling error_exit, which must not
// return; we longjmp back to the setjmp in run_session. A longjmp may only skip frames with
// trivially destructible objects, so run_session and everything it calls between setjmp and the
// end of the session holds only C structs (the session's state lives in a Session the caller
// owns), and the C++ exception is thrown after run_session has returned.
#include "core/jpeg_region.hpp"

#include <algorithm>
#include <csetjmp>
#include <cstdio>  // jpeglib.h uses FILE
#include <cstring>
#include <stdexcept>

#if !defined(_WIN32)
#include <dlfcn.h>
#endif

#include "jpeglib.h"

namespace fastloader::jpeg {

struct RegionDecoder::Api {
  jpeg_error_mgr* (*std_error)(jpeg_error_mgr*);
  void (*create_decompress)(j_decompress_ptr, int, size_t);
  void (*destroy_decompress)(j_decompress_ptr);
  void (*mem_src)(j_decompress_ptr, const unsigned char*, unsigned long);
  int (*read_header)(j_decompress_ptr, boolean);
  boolean (*start_decompress)(j_decompress_ptr);
  void (*crop_scanline)(j_decompress_ptr, JDIMENSION*, JDIMENSION*);
  JDIMENSION (*skip_scanlines)(j_decompress_ptr, JDIMENSION);
  JDIMENSION (*read_scanlines)(j_decompress_ptr, JSAMPARRAY, JDIMENSION);
  void (*abort_decompress)(j_decompress_ptr);
};

namespace {

struct ErrorState {
  jpeg_error_mgr mgr;  // first member: libjpeg hands &mgr back as cinfo->err
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jump_on_error(j_common_ptr cinfo) {
  ErrorState* state = reinterpret_cast<ErrorState*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, state->message);
  std::longjmp(state->jump, 1);
}

// Corrupt-data warnings (msg_level -1: bad Huffman data, a truncated file) are errors, as
// simplejpeg's strict mode makes them; trace messages are dropped, never printed.
void jump_on_warning(j_common_ptr cinfo, int msg_level) {
  if (msg_level < 0) jump_on_error(cinfo);
}

enum class Step { CreateOnly, Header, Region };

// Everything one session reads and writes: C structs only (NOTE [errors inside libjpeg]).
struct Session {
  Step step = Step::Header;
  const uint8_t* data = nullptr;
  size_t size = 0;
  JDIMENSION top = 0, left = 0, height = 0, width = 0;
  bool bgr = false;
  uint8_t* out = nullptr;
  int64_t out_row_stride = 0, capacity = 0;
  Header header;
  Region region;
  ErrorState error;
  jpeg_decompress_struct cinfo;
};

bool fail(Session& s, const char* message) {
  std::snprintf(s.error.message, sizeof s.error.message, "%s", message);
  return false;
}

// The region part of a session, after the header has been read.
bool decode_rows(const RegionDecoder::Api& api, Session& s) {
  jpeg_decompress_struct& c = s.cinfo;
  if (!s.header.region_decodable) return fail(s, "not a YCbCr, RGB or grayscale JPEG");
  if (s.height == 0 || s.width == 0 || s.top + s.height > c.image_height ||
      s.left + s.width > c.image_width) {
    std::snprintf(s.error.message, sizeof s.error.message,
                  "rows %u+%u, columns %u+%u are not inside the %ux%u (HxW) image", s.top, s.height,
                  s.left, s.width, c.image_height, c.image_width);
    return false;
  }
  c.out_color_space = s.bgr ? JCS_EXT_BGR : JCS_EXT_RGB;
  api.start_decompress(&c);
  JDIMENSION x = s.left > 0 ? s.left - 1 : 0;  // the context columns (see Region)
  const JDIMENSION right = std::min<JDIMENSION>(s.left + s.width + region_right_context, c.output_width);
  JDIMENSION w = right - x;
  if (x != 0 || w != c.output_width) api.crop_scanline(&c, &x, &w);
  if (static_cast<int64_t>(w) > s.capacity || x > s.left || x + w < s.left + s.width)
    return fail(s, "the library widened the region past the room given for it");
  if (s.top > 0 && api.skip_scanlines(&c, s.top) != s.top)
    return fail(s, "the library skipped fewer rows than asked");
  JSAMPROW rows[16];
  for (JDIMENSION done = 0; done < s.height;) {
    const JDIMENSION n = std::min<JDIMENSION>(16, s.height - done);
    for (JDIMENSION i = 0; i < n; ++i) rows[i] = s.out + static_cast<int64_t>(done + i) * s.out_row_stride;
    const JDIMENSION got = api.read_scanlines(&c, rows, n);
    if (got == 0) return fail(s, "the library returned no rows");
    done += got;
  }
  s.region = Region{s.top, x, s.height, w};
  return true;
}

// One decompressor's life; false with s.error.message set when it failed.
bool run_session(const RegionDecoder::Api& api, Session& s) {
  std::memset(&s.cinfo, 0, sizeof s.cinfo);
  s.cinfo.err = api.std_error(&s.error.mgr);
  s.error.mgr.error_exit = jump_on_error;
  s.error.mgr.emit_message = jump_on_warning;
  s.error.message[0] = '\0';
  volatile bool created = false;
  if (setjmp(s.error.jump)) {
    if (created) api.destroy_decompress(&s.cinfo);
    return false;
  }
  // Checks the library's version and struct size against these headers' (an error if they differ).
  api.create_decompress(&s.cinfo, JPEG_LIB_VERSION, sizeof s.cinfo);
  created = true;
  bool ok = true;
  if (s.step != Step::CreateOnly) {
    api.mem_src(&s.cinfo, s.data, static_cast<unsigned long>(s.size));
    api.read_header(&s.cinfo, TRUE);
    const J_COLOR_SPACE space = s.cinfo.jpeg_color_space;
    s.header = Header{s.cinfo.image_height, s.cinfo.image_width, s.cinfo.num_components,
                      space == JCS_YCbCr || space == JCS_RGB || space == JCS_GRAYSCALE};
    if (s.step == Step::Region) ok = decode_rows(api, s);
    api.abort_decompress(&s.cinfo);  // the rows below the region are never read
  }
  api.destroy_decompress(&s.cinfo);
  return ok;
}

template <typename F>
void resolve(void* handle, const char* name, F& into, const std::string& path) {
#if !defined(_WIN32)
  void* symbol = dlsym(handle, name);
#else
  void* symbol = nullptr;
  (void)handle;
#endif
  if (!symbol)
    throw std::invalid_argument(path + ": not libjpeg-turbo 2.0 or newer with the libjpeg 6.2 API (no " +
                                name + ")");
  into = reinterpret_cast<F>(symbol);
}

}  // namespace

RegionDecoder::RegionDecoder(const std::string& library_path) : path_(library_path) {
#if defined(_WIN32)
  throw std::invalid_argument(path_ + ": region decoding is not available on Windows");
#else
  handle_ = dlopen(path_.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle_) {
    const char* why = dlerror();
    throw std::invalid_argument(path_ + ": cannot open the library: " + (why ? why : "unknown"));
  }
  try {
    api_ = std::make_unique<Api>();
    resolve(handle_, "jpeg_std_error", api_->std_error, path_);
    resolve(handle_, "jpeg_CreateDecompress", api_->create_decompress, path_);
    resolve(handle_, "jpeg_destroy_decompress", api_->destroy_decompress, path_);
    resolve(handle_, "jpeg_mem_src", api_->mem_src, path_);
    resolve(handle_, "jpeg_read_header", api_->read_header, path_);
    resolve(handle_, "jpeg_start_decompress", api_->start_decompress, path_);
    resolve(handle_, "jpeg_crop_scanline", api_->crop_scanline, path_);
    resolve(handle_, "jpeg_skip_scanlines", api_->skip_scanlines, path_);
    resolve(handle_, "jpeg_read_scanlines", api_->read_scanlines, path_);
    resolve(handle_, "jpeg_abort_decompress", api_->abort_decompress, path_);
    // Region decoding before libjpeg-turbo 2.0 had known faults; this symbol marks 2.0.
    void (*icc)() = nullptr;
    resolve(handle_, "jpeg_read_icc_profile", icc, path_);
    auto session = std::make_unique<Session>();
    session->step = Step::CreateOnly;
    if (!run_session(*api_, *session))
      throw std::invalid_argument(path_ + ": not the libjpeg 6.2 ABI: " + session->error.message);
  } catch (...) {
    dlclose(handle_);
    throw;
  }
#endif
}

RegionDecoder::~RegionDecoder() {
#if !defined(_WIN32)
  if (handle_) dlclose(handle_);
#endif
}

Header RegionDecoder::header(const uint8_t* data, size_t size) const {
  if (!data || size == 0) throw std::invalid_argument("empty JPEG data");
  auto session = std::make_unique<Session>();
  session->step = Step::Header;
  session->data = data;
  session->size = size;
  if (!run_session(*api_, *session)) throw std::invalid_argument(session->error.message);
  return session->header;
}

Region RegionDecoder::decode_region(const uint8_t* data, size_t size, int64_t top, int64_t left,
                                    int64_t height, int64_t width, bool bgr, uint8_t* out,
                                    int64_t out_row_stride, int64_t out_capacity_columns) const {
  if (!data || size == 0) throw std::invalid_argument("empty JPEG data");
  constexpr int64_t kMaxSide = 65535;  // JPEG's own limit on a side
  if (top < 0 || left < 0 || height < 1 || width < 1 || top + height > kMaxSide ||
      left + width > kMaxSide)
    throw std::invalid_argument("region rows " + std::to_string(top) + "+" + std::to_string(height) +
                                ", columns " + std::to_string(left) + "+" + std::to_string(width) +
                                ": not a rectangle of a JPEG");
  if (!out || out_row_stride < out_capacity_columns * 3 ||
      out_capacity_columns < width + region_slack)
    throw std::invalid_argument("out: too small for the region");
  auto session = std::make_unique<Session>();
  Session& s = *session;
  s.step = Step::Region;
  s.data = data;
  s.size = size;
  s.top = static_cast<JDIMENSION>(top);
  s.left = static_cast<JDIMENSION>(left);
  s.height = static_cast<JDIMENSION>(height);
  s.width = static_cast<JDIMENSION>(width);
  s.bgr = bgr;
  s.out = out;
  s.out_row_stride = out_row_stride;
  s.capacity = out_capacity_columns;
  if (!run_session(*api_, s)) throw std::invalid_argument(s.error.message);
  return s.region;
}

}  // namespace fastloader::jpeg
