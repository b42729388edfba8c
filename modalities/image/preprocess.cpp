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

PreprocessOptions PreprocessOptions::defaults_for(PreprocessMode mode) {
  PreprocessOptions o;
  o.mode = mode;
  if (mode == PreprocessMode::kSiglip) {
    o.mean = {0.5f, 0.5f, 0.5f};
    o.std = {0.5f, 0.5f, 0.5f};
  }
  return o;
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
