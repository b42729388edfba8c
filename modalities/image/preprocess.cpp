#include "modalities/image/preprocess.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "modalities/image/pil_resize.h"

namespace omni {

PreprocessMode preprocess_mode_from_name(const std::string& name) {
  if (name == "clip") return PreprocessMode::kClip;
  if (name == "siglip") return PreprocessMode::kSiglip;
  if (name == "qwen") return PreprocessMode::kQwen;
  throw ConfigError("unknown image preprocessing mode '" + name +
                    "' (expected clip, siglip or qwen)");
}

const char* preprocess_mode_name(PreprocessMode m) {
  switch (m) {
    case PreprocessMode::kClip:
      return "clip";
    case PreprocessMode::kSiglip:
      return "siglip";
    case PreprocessMode::kQwen:
      return "qwen";
  }
  return "?";
}

void check_resized_pixels(const char* who, int64_t height, int64_t width) {
  // Sides up to 2^31 each: the product cannot overflow.
  if (height * width > kMaxResizedPixels) {
    throw InputError(std::string(who) + ": the resized picture would be " + std::to_string(width) +
                     "x" + std::to_string(height) + ", over the " +
                     std::to_string(kMaxResizedPixels) +
                     " pixels this reader allows (check min_pixels / the size option)");
  }
}

PreprocessOptions PreprocessOptions::defaults_for(PreprocessMode mode) {
  PreprocessOptions o;
  o.mode = mode;
  if (mode == PreprocessMode::kSiglip) {
    o.mean = {0.5f, 0.5f, 0.5f};
    o.std = {0.5f, 0.5f, 0.5f};
  }
  return o;
}

std::pair<int, int> smart_resize_sides(int height, int width, int factor, int64_t min_pixels,
                                       int64_t max_pixels) {
  const double f = factor;
  // std::nearbyint rounds half to even in the default rounding mode, as Python's round() does.
  int64_t h = static_cast<int64_t>(std::nearbyint(height / f)) * factor;
  int64_t w = static_cast<int64_t>(std::nearbyint(width / f)) * factor;
  if (h * w > max_pixels) {
    const double beta = std::sqrt(static_cast<double>(height) * width / max_pixels);
    h = std::max<int64_t>(factor, static_cast<int64_t>(std::floor(height / beta / f)) * factor);
    w = std::max<int64_t>(factor, static_cast<int64_t>(std::floor(width / beta / f)) * factor);
  } else if (h * w < min_pixels) {
    const double beta = std::sqrt(static_cast<double>(min_pixels) / (double(height) * width));
    h = static_cast<int64_t>(std::ceil(height * beta / f)) * factor;
    w = static_cast<int64_t>(std::ceil(width * beta / f)) * factor;
  }
  check_resized_pixels("smart_resize", h, w);
  return {static_cast<int>(h), static_cast<int>(w)};
}

std::pair<int, int> smart_resize(int height, int width, int factor, int64_t min_pixels,
                                 int64_t max_pixels) {
  if (factor <= 0 || height < factor || width < factor) {
    throw InputError("smart_resize: image " + std::to_string(width) + "x" + std::to_string(height) +
                     " is smaller than the factor " + std::to_string(factor) + " on a side");
  }
  if (static_cast<double>(std::max(height, width)) / std::min(height, width) > 200) {
    throw InputError("smart_resize: aspect ratio of " + std::to_string(width) + "x" +
                     std::to_string(height) + " exceeds 200");
  }
  return smart_resize_sides(height, width, factor, min_pixels, max_pixels);
}

std::pair<int, int> preprocess_resize_size(int height, int width, const PreprocessOptions& o) {
  if (height <= 0 || width <= 0)
    throw InputError("image preprocessing: empty image " + std::to_string(width) + "x" +
                     std::to_string(height));
  switch (o.mode) {
    case PreprocessMode::kClip: {
      // HF get_resize_output_image_size(default_to_square=False): the long side is truncated.
      const int short_side = std::min(height, width), long_side = std::max(height, width);
      const int64_t new_long_64 = static_cast<int64_t>(o.size) * long_side / short_side;
      check_resized_pixels("image preprocessing", new_long_64, o.size);
      const int new_long = static_cast<int>(new_long_64);
      return width <= height ? std::pair{new_long, o.size} : std::pair{o.size, new_long};
    }
    case PreprocessMode::kSiglip:
      check_resized_pixels("image preprocessing", o.size, o.size);
      return {o.size, o.size};
    case PreprocessMode::kQwen:
      return smart_resize(height, width, o.factor, o.min_pixels, o.max_pixels);
  }
  return {height, width};
}

std::pair<int, int> preprocess_output_size(int height, int width, const PreprocessOptions& o) {
  if (o.mode == PreprocessMode::kClip) return {o.size, o.size};
  return preprocess_resize_size(height, width, o);
}

at::Tensor preprocess_rgb(const uint8_t* rgb, int width, int height, int64_t row_stride,
                          const PreprocessOptions& o) {
  if (rgb == nullptr) throw InputError("image preprocessing: null image data");
  if ((o.mode != PreprocessMode::kQwen) && o.size <= 0)
    throw ConfigError("image preprocessing: size must be positive, got " + std::to_string(o.size));
  const auto [rh, rw] = preprocess_resize_size(height, width, o);
  std::vector<uint8_t> resized;
  const uint8_t* img = rgb;
  int64_t stride = row_stride;
  if (rh != height || rw != width) {
    resized = resize_bicubic_pil(rgb, width, height, row_stride, 3, rw, rh);
    img = resized.data();
    stride = static_cast<int64_t>(rw) * 3;
  }
  int top = 0, left = 0, oh = rh, ow = rw;
  if (o.mode == PreprocessMode::kClip) {
    // HF center_crop: floor division of the margin. (The resize never makes a side < size.)
    oh = ow = o.size;
    top = (rh - oh) / 2;
    left = (rw - ow) / 2;
  }
  at::Tensor out = at::empty({3, oh, ow}, at::kFloat);
  float* dst = out.data_ptr<float>();
  const int64_t plane = static_cast<int64_t>(oh) * ow;
  // HF rescales in float32 (x * (1/255)) and then normalises; the same order keeps us within
  // float rounding of the reference.
  const float kScale = 1.0f / 255.0f;
  for (int c = 0; c < 3; ++c) {
    const float mean = o.mean[c];
    float* p = dst + c * plane;
    for (int y = 0; y < oh; ++y) {
      const uint8_t* row = img + (y + top) * stride + static_cast<int64_t>(left) * 3 + c;
      for (int x = 0; x < ow; ++x) p[y * ow + x] = (row[x * 3] * kScale - mean) / o.std[c];
    }
  }
  return out;
}

}  // namespace omni
