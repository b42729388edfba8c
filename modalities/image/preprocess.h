// Image preprocessing that reproduces the reference processors (CLIP, SigLIP, Qwen2-VL): resize
// with PIL's antialiased bicubic, optional centre crop, rescale 1/255, mean/std normalisation.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include "modalities/image/resize_rules.h"

namespace omni {

enum class PreprocessMode {
  kClip,    // resize the shortest side to `size`, centre crop size x size (HF CLIPImageProcessor)
  kSiglip,  // resize to size x size, mean = std = 0.5 (HF SiglipImageProcessor)
  kQwen,    // smart_resize: sides multiples of `factor` within pixel bounds (HF Qwen2-VL)
};
PreprocessMode preprocess_mode_from_name(const std::string& name);  // throws ConfigError
const char* preprocess_mode_name(PreprocessMode m);

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

// Output (height, width) of preprocess_rgb for an input of that size.
std::pair<int, int> preprocess_output_size(int height, int width, const PreprocessOptions& o);
// The size the image is resized to before any crop (height, width).
std::pair<int, int> preprocess_resize_size(int height, int width, const PreprocessOptions& o);

// Preprocesses an interleaved RGB8 image (rows `row_stride` bytes apart) into a float32 CPU tensor
// [3, H, W]. Throws InputError on invalid input.
at::Tensor preprocess_rgb(const uint8_t* rgb, int width, int height, int64_t row_stride,
                          const PreprocessOptions& o);

}  // namespace omni
