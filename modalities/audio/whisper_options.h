// The Whisper feature extractor's options and frame counts, torch-free: the options read from
// preprocessor_config.json (limits included), the window length, and the frames and Qwen2.5-Omni
// audio tokens of a signal. The features themselves are in whisper_features.h; these are fuzzed
// on their own (fuzz/fuzz_preprocessor.cpp).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>

namespace omni {

enum class WhisperPadding {
  kMaxLength,  // pad to max_length samples (Qwen2.5-Omni's processor forces this)
  kLongest,    // no padding for a single signal (the batch's longest)
  kDoNotPad,
};

// The longest window a config may ask for (chunk_length, or max_length in samples): the padded
// window is allocated whole, an hour at 16 kHz is 230 MB of floats (Whisper uses 30 s,
// Qwen2.5-Omni 300 s).
inline constexpr int kWhisperMaxChunkSeconds = 3600;

struct WhisperFeatureOptions {
  int feature_size = 128;  // mel bins (Qwen2-Audio / Qwen2.5-Omni use 128; Whisper 80)
  int sampling_rate = 16000;
  int hop_length = 160;
  int n_fft = 400;
  int chunk_length = 30;       // seconds: n_samples = chunk_length * sampling_rate
  int64_t max_length = 0;      // samples to pad / truncate to; 0 = n_samples
  float padding_value = 0.0f;  // the padded samples' value
  WhisperPadding padding = WhisperPadding::kMaxLength;
  bool truncation = true;  // cut signals longer than max_length (transformers' default)

  int64_t n_samples() const { return static_cast<int64_t>(chunk_length) * sampling_rate; }
  int64_t target_length() const { return max_length > 0 ? max_length : n_samples(); }
  // Throws ConfigError for values the Whisper front end here cannot honour (it is built for
  // 16 kHz, n_fft 400, hop 160; 80 or 128 mels) and windows over kWhisperMaxChunkSeconds.
  void validate() const;
  // From a preprocessor_config.json object (feature extractor keys: feature_size, sampling_rate,
  // hop_length, n_fft, chunk_length, n_samples, padding_value; dither and do_normalize must be
  // off). Padding stays max_length and truncation on, as Qwen2.5-Omni's processor calls it.
  static WhisperFeatureOptions from_config(const nlohmann::json& cfg);
};

// Length of the padded / truncated signal the STFT sees for n samples.
int64_t whisper_window_length(int64_t n_samples, const WhisperFeatureOptions& o);
// Frames of the padded/truncated window (= columns of input_features) for n samples.
int64_t whisper_feature_frames(int64_t n_samples, const WhisperFeatureOptions& o);
// feature_attention_mask.sum() for n samples: ceil(min(n, window) / hop).
int64_t whisper_valid_frames(int64_t n_samples, const WhisperFeatureOptions& o);
// Qwen2.5-Omni's audio tokens for that many valid frames (the processor's
// _get_feat_extract_output_lengths: (L - 1) // 2 + 1, then (L - 2) // 2 + 1, floor division).
int64_t qwen_audio_tokens(int64_t valid_frames);

}  // namespace omni
