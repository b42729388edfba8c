// PIL-exact antialiased bicubic resampling of 8-bit images (the resize every Hugging Face image
// processor does through Pillow). Plain C++: no OpenCV, no torch.
#pragma once

#include <cstdint>
#include <vector>

namespace omni {

// Resizes an interleaved 8-bit image (`channels` 1..4, rows `row_stride` bytes apart) to
// out_w x out_h the way Pillow's Image.resize(..., BICUBIC) does in its 8-bit path: separable
// convolution with the a=-0.5 cubic kernel, support widened by the downscale factor
// (antialiasing), coefficients normalised to sum 1 and quantised to 22-bit fixed point, horizontal
// pass first into an 8-bit intermediate (rounded and clamped), then the vertical pass.
// Returns a tightly packed out_h x out_w x channels buffer. Throws InputError on bad sizes.
std::vector<uint8_t> resize_bicubic_pil(const uint8_t* src, int width, int height,
                                        int64_t row_stride, int channels, int out_w, int out_h);

}  // namespace omni
