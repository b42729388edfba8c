// The antialiased bicubic resize of torchvision's tensor path (torchvision.transforms.functional
// .resize(tensor, ..., BICUBIC, antialias=True), which qwen-omni-utils applies to video frames and
// transformers' torchvision-backed Qwen2-VL processors to images): ATen's separable
// _upsample_bicubic2d_aa kernel in float32 (with the fused multiply-adds of its x86 builds), then
// (for 8-bit input) clamp to [0, 255] and round half to even. Plain C++: no torch, no OpenCV.
#pragma once

#include <cstdint>
#include <vector>

namespace omni {

// Resizes `planes` float planes of width x height (plane after plane, rows `width` apart) to
// out_w x out_h the way ATen's float32 CPU kernel does: a=-0.5 cubic taps, support widened by the
// downscale factor, weights normalised in float32; the horizontal pass first (skipped when the
// width does not change), then the vertical one (skipped likewise). Throws InputError on bad sizes.
std::vector<float> resize_bicubic_torch_aa(const float* src, int planes, int width, int height,
                                           int out_w, int out_h);

// The same on an interleaved 8-bit image (`channels` 1..4, rows `row_stride` bytes apart),
// torchvision's uint8 tensor path: float resize, clamp to [0, 255], round half to even. Returns a
// tightly packed out_h x out_w x channels buffer. Equal sizes return the input unchanged, as
// torchvision does.
std::vector<uint8_t> resize_bicubic_torch_aa(const uint8_t* src, int width, int height,
                                             int64_t row_stride, int channels, int out_w,
                                             int out_h);

// torchvision's resize of uint8 image tensors (torchvision.transforms.v2.functional.resize, which
// transformers' torchvision-backed image processors call): ATen's integer kernel for uint8 input.
// Weights in double, quantised to int16 with the largest precision that keeps the biggest weight
// below 2^15; horizontal pass first into an 8-bit intermediate (rounded, clamped), then the
// vertical pass; a pass is skipped when its side does not change. Same layout as above.
std::vector<uint8_t> resize_bicubic_torch_u8(const uint8_t* src, int width, int height,
                                             int64_t row_stride, int channels, int out_w,
                                             int out_h);

}  // namespace omni
