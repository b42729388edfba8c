// Token count of the ViT image encoder for an input size. Torch-free so the sequencer can use the
// very function the encoder uses (placeholder counts can never disagree with the encoder).
#pragma once

#include <cstdint>

namespace omni {

struct VisualGrid {
  int64_t h = 0, w = 0;  // tokens per column / row after any 2x2 merge
  int64_t tokens() const { return h * w; }
};

// Grid a ViT with square patches of `patch` pixels (then a 2x2 merge when `merge`) gives for a
// height x width input. Throws InputError unless both sides are positive multiples of the patch
// (of 2 * patch with the merge): the encoder never drops edge pixels silently.
VisualGrid image_token_grid(int64_t height, int64_t width, int64_t patch, bool merge);
inline int64_t image_tokens(int64_t height, int64_t width, int64_t patch, bool merge) {
  return image_token_grid(height, width, patch, merge).tokens();
}

}  // namespace omni
