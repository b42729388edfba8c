#include "modalities/image/torch_resize.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace omni {
namespace {

// ATen's aa_filter for bicubic (a = -0.5) in float32. PyTorch's x86 builds compile this kernel
// with FMA contraction, so the polynomial is evaluated with fused multiply-adds (checked against
// torch 2.15: the weights then agree bit for bit; without them they differ in the last bits).
float aa_cubic(float x) {
  constexpr float a = -0.5f;
  x = std::fabs(x);
  if (x < 1.0f) return std::fma(std::fma(a + 2.0f, x, -(a + 3.0f)) * x, x, 1.0f);
  if (x < 2.0f) return std::fma(std::fma(std::fma(a, x, -(5.0f * a)), x, 8.0f * a), x, -(4.0f * a));
  return 0.0f;
}

// One axis: for output i, input taps [first[i], first[i] + count[i]) with weights
// w[i * ksize + j] (ATen's _compute_index_ranges_weights with antialias, interp_size 4).
struct Taps {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<float> w;
};

Taps make_taps(int in_size, int out_size) {
  // area_pixel_compute_scale (align_corners=False, no explicit scale): in / out in float. The mixed
  // float/double expressions below keep ATen's promotions (its literals 0.5 are doubles).
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  const float support = scale >= 1.0f ? static_cast<float>((4 * 0.5) * scale) : 2.0f;
  const float invscale = scale >= 1.0f ? static_cast<float>(1.0 / scale) : 1.0f;
  Taps t;
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.w.assign(static_cast<size_t>(out_size) * t.ksize, 0.0f);
  for (int i = 0; i < out_size; ++i) {
    const float center = static_cast<float>(scale * (i + 0.5));
    const int64_t xmin = std::max<int64_t>(static_cast<int64_t>((center - support) + 0.5), 0);
    const int64_t xsize =
        std::min<int64_t>(static_cast<int64_t>((center + support) + 0.5), in_size) - xmin;
    float* w = t.w.data() + static_cast<size_t>(i) * t.ksize;
    float total = 0.0f;
    for (int64_t j = 0; j < xsize; ++j) {
      const float d = static_cast<float>(j + xmin) - center;
      w[j] = aa_cubic(static_cast<float>((d + 0.5) * invscale));
      total += w[j];
    }
    if (total != 0.0f) {
      for (int64_t j = 0; j < xsize; ++j) w[j] /= total;
    }
    t.first[i] = static_cast<int>(xmin);
    t.count[i] = static_cast<int>(xsize);
  }
  return t;
}

// ATen's int16 taps for the uint8 kernel (_compute_index_ranges_int16_weights).
struct TapsI16 {
  int ksize = 0;
  int precision = 0;
  std::vector<int> first, count;
  std::vector<int16_t> w;
};

TapsI16 make_taps_i16(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double support = scale >= 1.0 ? (4 * 0.5) * scale : 4 * 0.5;
  const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  auto cubic = [](double x) {
    constexpr double a = -0.5;
    x = std::fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    return 0.0;
  };
  TapsI16 t;
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  std::vector<double> wd(static_cast<size_t>(out_size) * t.ksize, 0.0);
  double wt_max = 0.0;
  for (int i = 0; i < out_size; ++i) {
    const double center = scale * (i + 0.5);
    const int64_t xmin = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    int64_t xsize = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in_size) - xmin;
    xsize = std::clamp<int64_t>(xsize, 0, t.ksize);
    double* w = wd.data() + static_cast<size_t>(i) * t.ksize;
    double total = 0.0;
    for (int64_t j = 0; j < xsize; ++j) {
      w[j] = cubic((j + xmin - center + 0.5) * invscale);
      total += w[j];
    }
    for (int64_t j = 0; j < xsize; ++j) {
      if (total != 0.0) w[j] /= total;
      wt_max = std::max(wt_max, w[j]);
    }
    t.first[i] = static_cast<int>(xmin);
    t.count[i] = static_cast<int>(xsize);
  }
  int precision = 0;
  for (precision = 0; precision < 22; ++precision) {
    const int next = static_cast<int>(0.5 + wt_max * (1 << (precision + 1)));
    if (next >= (1 << 15)) break;
  }
  t.precision = precision;
  t.w.resize(wd.size());
  for (size_t k = 0; k < wd.size(); ++k) {
    const double v = wd[k] * (1 << precision);
    t.w[k] = static_cast<int16_t>(v < 0 ? v - 0.5 : v + 0.5);
  }
  return t;
}

inline uint8_t clamp8(int32_t acc, int precision) {
  const int32_t v = acc >> precision;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

void check_sizes(const char* what, int width, int height, int out_w, int out_h) {
  if (width <= 0 || height <= 0 || out_w <= 0 || out_h <= 0) {
    throw InputError(std::string(what) + ": invalid sizes " + std::to_string(width) + "x" +
                     std::to_string(height) + " -> " + std::to_string(out_w) + "x" +
                     std::to_string(out_h));
  }
}

}  // namespace

std::vector<float> resize_bicubic_torch_aa(const float* src, int planes, int width, int height,
                                           int out_w, int out_h) {
  check_sizes("resize_bicubic_torch_aa", width, height, out_w, out_h);
  if (src == nullptr || planes <= 0) throw InputError("resize_bicubic_torch_aa: no input planes");
  std::vector<float> cur(src, src + static_cast<size_t>(planes) * width * height);
  int cw = width;
  if (out_w != width) {  // horizontal pass
    const Taps t = make_taps(width, out_w);
    std::vector<float> next(static_cast<size_t>(planes) * height * out_w);
    for (int64_t r = 0; r < static_cast<int64_t>(planes) * height; ++r) {
      const float* in = cur.data() + r * width;
      float* out = next.data() + r * out_w;
      for (int x = 0; x < out_w; ++x) {
        const float* w = t.w.data() + static_cast<size_t>(x) * t.ksize;
        const float* s = in + t.first[x];
        float acc = s[0] * w[0];  // then fused multiply-adds, as ATen's compiled loop does
        for (int j = 1; j < t.count[x]; ++j) acc = std::fma(s[j], w[j], acc);
        out[x] = acc;
      }
    }
    cur.swap(next);
    cw = out_w;
  }
  if (out_h != height) {  // vertical pass
    const Taps t = make_taps(height, out_h);
    std::vector<float> next(static_cast<size_t>(planes) * out_h * cw);
    for (int p = 0; p < planes; ++p) {
      const float* in = cur.data() + static_cast<size_t>(p) * height * cw;
      float* out = next.data() + static_cast<size_t>(p) * out_h * cw;
      for (int y = 0; y < out_h; ++y) {
        const float* w = t.w.data() + static_cast<size_t>(y) * t.ksize;
        const float* s = in + static_cast<size_t>(t.first[y]) * cw;
        for (int x = 0; x < cw; ++x) {
          float acc = s[x] * w[0];
          for (int j = 1; j < t.count[y]; ++j) {
            acc = std::fma(s[static_cast<size_t>(j) * cw + x], w[j], acc);
          }
          out[static_cast<size_t>(y) * cw + x] = acc;
        }
      }
    }
    cur.swap(next);
  }
  return cur;
}

std::vector<uint8_t> resize_bicubic_torch_aa(const uint8_t* src, int width, int height,
                                             int64_t row_stride, int channels, int out_w,
                                             int out_h) {
  check_sizes("resize_bicubic_torch_aa", width, height, out_w, out_h);
  if (src == nullptr || channels < 1 || channels > 4 ||
      row_stride < static_cast<int64_t>(width) * channels) {
    throw InputError("resize_bicubic_torch_aa: invalid image (channels " +
                     std::to_string(channels) + ", row stride " + std::to_string(row_stride) +
                     " for width " + std::to_string(width) + ")");
  }
  std::vector<uint8_t> out(static_cast<size_t>(out_w) * out_h * channels);
  if (out_w == width && out_h == height) {  // torchvision returns the image untouched
    for (int y = 0; y < height; ++y) {
      std::copy(src + y * row_stride, src + y * row_stride + static_cast<int64_t>(width) * channels,
                out.begin() + static_cast<size_t>(y) * width * channels);
    }
    return out;
  }
  // Planar float (the CHW tensor torchvision casts to), resize, clamp, round half to even.
  std::vector<float> planes(static_cast<size_t>(channels) * width * height);
  for (int c = 0; c < channels; ++c) {
    for (int y = 0; y < height; ++y) {
      const uint8_t* row = src + y * row_stride + c;
      float* dst = planes.data() + (static_cast<size_t>(c) * height + y) * width;
      for (int x = 0; x < width; ++x) dst[x] = row[x * channels];
    }
  }
  const std::vector<float> r =
      resize_bicubic_torch_aa(planes.data(), channels, width, height, out_w, out_h);
  for (int c = 0; c < channels; ++c) {
    const float* p = r.data() + static_cast<size_t>(c) * out_w * out_h;
    for (int64_t i = 0; i < static_cast<int64_t>(out_w) * out_h; ++i) {
      const float v = std::nearbyint(std::clamp(p[i], 0.0f, 255.0f));
      out[static_cast<size_t>(i) * channels + c] = static_cast<uint8_t>(v);
    }
  }
  return out;
}

std::vector<uint8_t> resize_bicubic_torch_u8(const uint8_t* src, int width, int height,
                                             int64_t row_stride, int channels, int out_w,
                                             int out_h) {
  check_sizes("resize_bicubic_torch_u8", width, height, out_w, out_h);
  if (src == nullptr || channels < 1 || channels > 4 ||
      row_stride < static_cast<int64_t>(width) * channels) {
    throw InputError("resize_bicubic_torch_u8: invalid image (channels " +
                     std::to_string(channels) + ", row stride " + std::to_string(row_stride) +
                     " for width " + std::to_string(width) + ")");
  }
  // Tightly packed copy of the input, then the passes.
  std::vector<uint8_t> cur(static_cast<size_t>(width) * height * channels);
  for (int y = 0; y < height; ++y) {
    std::copy(src + y * row_stride, src + y * row_stride + static_cast<int64_t>(width) * channels,
              cur.begin() + static_cast<size_t>(y) * width * channels);
  }
  int cw = width;
  if (out_w != width) {
    const TapsI16 t = make_taps_i16(width, out_w);
    std::vector<uint8_t> next(static_cast<size_t>(out_w) * height * channels);
    for (int y = 0; y < height; ++y) {
      const uint8_t* in = cur.data() + static_cast<size_t>(y) * width * channels;
      uint8_t* out = next.data() + static_cast<size_t>(y) * out_w * channels;
      for (int x = 0; x < out_w; ++x) {
        const int16_t* w = t.w.data() + static_cast<size_t>(x) * t.ksize;
        for (int c = 0; c < channels; ++c) {
          int32_t acc = 1 << (t.precision - 1);
          for (int j = 0; j < t.count[x]; ++j) acc += in[(t.first[x] + j) * channels + c] * w[j];
          out[x * channels + c] = clamp8(acc, t.precision);
        }
      }
    }
    cur.swap(next);
    cw = out_w;
  }
  if (out_h != height) {
    const TapsI16 t = make_taps_i16(height, out_h);
    const int64_t row = static_cast<int64_t>(cw) * channels;
    std::vector<uint8_t> next(static_cast<size_t>(out_h) * row);
    for (int y = 0; y < out_h; ++y) {
      const int16_t* w = t.w.data() + static_cast<size_t>(y) * t.ksize;
      const uint8_t* in = cur.data() + t.first[y] * row;
      uint8_t* out = next.data() + y * row;
      for (int64_t k = 0; k < row; ++k) {
        int32_t acc = 1 << (t.precision - 1);
        for (int j = 0; j < t.count[y]; ++j) acc += in[j * row + k] * w[j];
        out[k] = clamp8(acc, t.precision);
      }
    }
    cur.swap(next);
  }
  return cur;
}

}  // namespace omni
