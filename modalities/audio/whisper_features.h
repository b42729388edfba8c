// transformers' WhisperFeatureExtractor as Qwen2-Audio / Qwen2.5-Omni processors call it: pad (or
// truncate) the 16 kHz signal to a fixed window (30 s chunk_length by default), the Whisper
// log-mel of the whole window, and the frame-level attention mask (`feature_attention_mask`),
// with transformers' frame counts: valid frames = ceil(n / hop), not LogMel's floor(n / hop).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "modalities/audio/whisper_options.h"

namespace omni {

struct WhisperFeatures {
  at::Tensor input_features;          // float32 [feature_size, frames]
  at::Tensor feature_attention_mask;  // int64 [frames]: 1 for frames of the real signal
  int64_t frames = 0;                 // columns of input_features
  int64_t valid_frames = 0;           // feature_attention_mask.sum()
};

// The features of one mono signal at sampling_rate. Throws InputError for an empty signal (or, with
// no padding, one too short for the STFT) and ConfigError for options it cannot honour.
WhisperFeatures whisper_features(const float* samples, int64_t n, const WhisperFeatureOptions& o);

}  // namespace omni
