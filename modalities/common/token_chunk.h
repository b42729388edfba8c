// TokenChunk: what every encoder emits and the UnifiedSequencer consumes (DESIGN.md section 4).
// Lives below modalities/ and fusion/ so both can use it without breaking the dependency rule.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "core/type_name.h"

namespace omni {

enum class Modality { kText, kImage, kVideo, kAudio };
const char* modality_name(Modality m);                 // "text", "image", "video", "audio"
Modality modality_from_name(const std::string& name);  // throws ConfigError

struct TokenChunk {
  Modality modality = Modality::kText;
  // [N, d] float embeddings (image/video/audio, or text when already embedded) ...
  at::Tensor embeddings;
  // ... or [N] int64 token ids (text before embedding). Exactly one of the two is defined.
  at::Tensor ids;
  int64_t start_us = 0;  // media time covered by this chunk
  int64_t end_us = 0;
  // Visual token grid (t, h, w) after any patch merge; t*h*w == N. {1, 1, N} for text/audio.
  int64_t grid_t = 1, grid_h = 1, grid_w = 1;
  // Seconds between temporal grid slices of a multi-frame visual chunk (Qwen's second_per_grid,
  // e.g. temporal_patch_size / fps). 0: derived as (end_us - start_us) / grid_t.
  double seconds_per_grid = 0;
  std::string stream;  // source stream id (e.g. "clip0/video"), groups chunks of one item

  int64_t num_tokens() const;
};

}  // namespace omni

OMNI_TYPE_NAME(omni::TokenChunk, "TokenChunk");
OMNI_PAYLOAD_JSON(omni::TokenChunk);  // modality, tokens, dim, ids (up to 4096), times, grid
OMNI_TYPE_NAME(at::Tensor, "Tensor");
OMNI_PAYLOAD_JSON(at::Tensor);  // shape, dtype, device
