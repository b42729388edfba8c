// Image preprocessing that reproduces the reference processors (CLIP, SigLIP, Qwen2-VL): resize
// with PIL's antialiased bicubic, optional centre crop, rescale 1/255, mean/std normalisation.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>

namespace omni {

enum class PreprocessMode {
  kClip,    // resize the shortest side to `size`, centre crop size x size (HF CLIPImageProcessor)
  kSiglip,  // resize to size x size, mean = std = 0.5 (HF SiglipImageProcessor)
  kQwen,    // smart_resize: sides multiples of `factor` within pixel bounds (HF Qwen2-VL)
};
PreprocessMode preprocess_mode_from_name(const std::string& name);  // throws ConfigError
const char* preprocess_mode_name(PreprocessMode m);

// The most pixels a resize may produce (as many as the image readers decode, kMaxImagePixels):
// pixel bounds from a config file, or a sliver of an image scaled up to a side, end with an
// InputError before the picture is allocated.
inline constexpr int64_t kMaxResizedPixels = int64_t{1} << 26;
// Throws InputError naming `who` when a height x width result is over kMaxResizedPixels.
void check_resized_pixels(const char* who, int64_t height, int64_t width);

inline constexpr std::array<float, 3> kClipMean = {0.48145466f, 0.4578275f, 0.40821073f};
inline constexpr std::array<float, 3> kClipStd = {0.26862954f, 0.26130258f, 0.27577711f};

struct PreprocessOptions {
  PreprocessMode mode = PreprocessMode::kClip;
  int size = 224;                // clip / siglip output side
  int factor = 28;               // qwen: sides are multiples of this (patch 14 x merge 2)
  int64_t min_pixels = 56 * 56;  // qwen bounds (Qwen2-VL defaults)
  int64_t max_pixels = 28 * 28 * 1280;
  // The mode's reference constants (CLIP's for clip/qwen, 0.5 for siglip).
  static PreprocessOptions defaults_for(PreprocessMode mode);
  std::array<float, 3> mean = kClipMean;
  std::array<float, 3> std = kClipStd;
};

// The rounding and pixel-bound rule of Qwen2-VL's smart_resize without its input checks (callers
// check sizes as their reference does): sides multiples of `factor`, h*w within the bounds.
std::pair<int, int> smart_resize_sides(int height, int width, int factor, int64_t min_pixels,
                                       int64_t max_pixels);
// Qwen2-VL's smart_resize: returns (height, width). Rounds half to even like Python's round().
// Throws InputError for sides below `factor` or an aspect ratio above 200.
std::pair<int, int> smart_resize(int height, int width, int factor, int64_t min_pixels,
                                 int64_t max_pixels);
// Output (height, width) of preprocess_rgb for an input of that size.
std::pair<int, int> preprocess_output_size(int height, int width, const PreprocessOptions& o);
// The size the image is resized to before any crop (height, width).
std::pair<int, int> preprocess_resize_size(int height, int width, const PreprocessOptions& o);

// Preprocesses an interleaved RGB8 image (rows `row_stride` bytes apart) into a float32 CPU tensor
// [3, H, W]. Throws InputError on invalid input.
at::Tensor preprocess_rgb(const uint8_t* rgb, int width, int height, int64_t row_stride,
                          const PreprocessOptions& o);

}  // namespace omni
