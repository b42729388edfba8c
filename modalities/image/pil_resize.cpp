#include "modalities/image/pil_resize.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace omni {
namespace {

// Pillow's fixed-point precision for 8-bit images (32 bits minus 8 for the pixel, 2 for headroom).
constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// One axis' filter taps: for output index i, taps [first[i], first[i] + count[i]) of the input with
// fixed-point weights coeff[i * ksize + j].
struct Taps {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> coeff;
};

// Mirrors Pillow's precompute_coeffs + normalize_coeffs_8bpc (box = the whole input).
Taps make_taps(int in_size, int out_size) {
  constexpr double kSupport = 2.0;  // bicubic
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = kSupport * filterscale;
  Taps t;
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.coeff.assign(static_cast<size_t>(out_size) * t.ksize, 0);
  std::vector<double> k(t.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // Pillow truncates toward zero (a C cast) before clamping; keep that exactly.
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[x] = bicubic((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double w = ww != 0.0 ? k[x] / ww : k[x];
      const double f = w * (1 << kPrecisionBits);
      t.coeff[static_cast<size_t>(xx) * t.ksize + x] =
          static_cast<int32_t>(w < 0 ? -0.5 + f : 0.5 + f);
    }
    t.first[xx] = xmin;
    t.count[xx] = xmax;
  }
  return t;
}

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;  // arithmetic shift: floor, as in Pillow
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

}  // namespace

std::vector<uint8_t> resize_bicubic_pil(const uint8_t* src, int width, int height,
                                        int64_t row_stride, int channels, int out_w, int out_h) {
  if (width <= 0 || height <= 0 || out_w <= 0 || out_h <= 0 || channels < 1 || channels > 4 ||
      row_stride < static_cast<int64_t>(width) * channels) {
    throw InputError("resize_bicubic_pil: invalid sizes " + std::to_string(width) + "x" +
                     std::to_string(height) + "x" + std::to_string(channels) + " (stride " +
                     std::to_string(row_stride) + ") -> " + std::to_string(out_w) + "x" +
                     std::to_string(out_h));
  }
  const int c = channels;
  const bool need_h = out_w != width, need_v = out_h != height;
  const int64_t out_row = static_cast<int64_t>(out_w) * c;

  // Pillow runs the horizontal pass only over the input rows the vertical pass reads.
  Taps vt;
  int row_first = 0, row_end = height;
  if (need_v) {
    vt = make_taps(height, out_h);
    row_first = vt.first[0];
    row_end = vt.first[out_h - 1] + vt.count[out_h - 1];
  }

  // Horizontal pass into an 8-bit intermediate of (row_end - row_first) rows.
  std::vector<uint8_t> tmp;
  const uint8_t* mid = nullptr;
  int64_t mid_stride = 0;
  if (need_h) {
    const Taps ht = make_taps(width, out_w);
    const int rows = row_end - row_first;
    tmp.resize(static_cast<size_t>(rows) * out_row);
    for (int y = 0; y < rows; ++y) {
      const uint8_t* in = src + (y + row_first) * row_stride;
      uint8_t* out = tmp.data() + y * out_row;
      for (int xx = 0; xx < out_w; ++xx) {
        const int32_t* k = &ht.coeff[static_cast<size_t>(xx) * ht.ksize];
        const uint8_t* px = in + static_cast<int64_t>(ht.first[xx]) * c;
        for (int ch = 0; ch < c; ++ch) {
          int32_t acc = 1 << (kPrecisionBits - 1);
          for (int x = 0; x < ht.count[xx]; ++x) acc += px[x * c + ch] * k[x];
          out[xx * c + ch] = clip8(acc);
        }
      }
    }
    mid = tmp.data();
    mid_stride = out_row;
  } else {
    mid = src + row_first * row_stride;
    mid_stride = row_stride;
  }

  std::vector<uint8_t> dst(static_cast<size_t>(out_h) * out_row);
  if (!need_v) {
    for (int y = 0; y < out_h; ++y)
      std::copy_n(mid + y * mid_stride, out_row, dst.data() + y * out_row);
    return dst;
  }
  // Row-wise accumulation keeps the vertical pass cache friendly.
  std::vector<int32_t> acc(out_row);
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* k = &vt.coeff[static_cast<size_t>(yy) * vt.ksize];
    const uint8_t* row0 = mid + static_cast<int64_t>(vt.first[yy] - row_first) * mid_stride;
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    for (int y = 0; y < vt.count[yy]; ++y) {
      const uint8_t* row = row0 + y * mid_stride;
      const int32_t w = k[y];
      for (int64_t i = 0; i < out_row; ++i) acc[i] += row[i] * w;
    }
    uint8_t* out = dst.data() + yy * out_row;
    for (int64_t i = 0; i < out_row; ++i) out[i] = clip8(acc[i]);
  }
  return dst;
}

}  // namespace omni
