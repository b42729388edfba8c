// The resize rules shared by the processors, torch-free: Qwen2-VL's smart_resize and the cap on
// what any resize may produce (fuzzed through fuzz/fuzz_preprocessor.cpp).
#pragma once

#include <cstdint>
#include <utility>

namespace omni {

// The most pixels a resize may produce (as many as the image readers decode, kMaxImagePixels):
// pixel bounds from a config file, or a sliver of an image scaled up to a side, end with an
// InputError before the picture is allocated.
inline constexpr int64_t kMaxResizedPixels = int64_t{1} << 26;
// Throws InputError naming `who` when a height x width result is over kMaxResizedPixels.
void check_resized_pixels(const char* who, int64_t height, int64_t width);

// The rounding and pixel-bound rule of Qwen2-VL's smart_resize without its input checks (callers
// check sizes as their reference does): sides multiples of `factor`, h*w within the bounds.
std::pair<int, int> smart_resize_sides(int height, int width, int factor, int64_t min_pixels,
                                       int64_t max_pixels);
// Qwen2-VL's smart_resize: returns (height, width). Rounds half to even like Python's round().
// Throws InputError for sides below `factor` or an aspect ratio above 200.
std::pair<int, int> smart_resize(int height, int width, int factor, int64_t min_pixels,
                                 int64_t max_pixels);

}  // namespace omni
