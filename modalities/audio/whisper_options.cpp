#include "modalities/audio/whisper_options.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>

#include "core/error.h"
#include "modalities/audio/log_mel.h"
#include "modalities/common/preprocessor_config.h"

namespace omni {
namespace {

int64_t floordiv(int64_t a, int64_t b) {  // Python's //
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

}  // namespace

int64_t whisper_window_length(int64_t n, const WhisperFeatureOptions& o) {
  const int64_t target = o.target_length();
  int64_t len = o.truncation ? std::min(n, target) : n;
  if (o.padding == WhisperPadding::kMaxLength) len = std::max(len, target);
  return len;
}

void WhisperFeatureOptions::validate() const {
  if (sampling_rate != kWhisperSampleRate || n_fft != kWhisperNFft || hop_length != kWhisperHop) {
    throw ConfigError(
        "whisper features: only sampling_rate 16000, n_fft 400 and hop_length 160 "
        "are supported (got " +
        std::to_string(sampling_rate) + ", " + std::to_string(n_fft) + ", " +
        std::to_string(hop_length) + ")");
  }
  if (feature_size <= 0 || feature_size > 512) {
    throw ConfigError("whisper features: feature_size must be in 1..512, got " +
                      std::to_string(feature_size));
  }
  if (chunk_length <= 0 || max_length < 0) {
    throw ConfigError("whisper features: chunk_length must be positive and max_length >= 0");
  }
  // The window is allocated whole (padded to it): a file's chunk_length is held to an hour.
  if (chunk_length > kWhisperMaxChunkSeconds ||
      max_length > int64_t{kWhisperMaxChunkSeconds} * kWhisperSampleRate) {
    throw ConfigError("whisper features: chunk_length " + std::to_string(chunk_length) +
                      " s / max_length " + std::to_string(max_length) + " samples exceed the " +
                      std::to_string(kWhisperMaxChunkSeconds) + " s this reader allows");
  }
  if (padding == WhisperPadding::kMaxLength && target_length() <= kWhisperNFft / 2) {
    throw ConfigError("whisper features: a padded window of " + std::to_string(target_length()) +
                      " samples is too short");
  }
}

WhisperFeatureOptions WhisperFeatureOptions::from_config(const nlohmann::json& cfg) {
  WhisperFeatureOptions o;
  config_int(cfg, "feature_size", o.feature_size);
  config_int(cfg, "sampling_rate", o.sampling_rate);
  config_int(cfg, "hop_length", o.hop_length);
  config_int(cfg, "n_fft", o.n_fft);
  config_int(cfg, "chunk_length", o.chunk_length);
  // The extractor recomputes n_samples = chunk_length * sampling_rate in __init__; a stored
  // n_samples that disagrees is ignored there, and here.
  double pad = 0;
  if (config_number(cfg, "padding_value", pad)) o.padding_value = static_cast<float>(pad);
  double dither = 0;
  if (config_number(cfg, "dither", dither) && dither != 0.0) {
    throw ConfigError("whisper features: dither " + std::to_string(dither) +
                      " is not supported (it adds random noise; transformers' default is 0)");
  }
  bool norm = false;
  if (config_bool(cfg, "do_normalize", norm) && norm) {
    throw ConfigError("whisper features: do_normalize true is not supported");
  }
  o.validate();
  return o;
}

int64_t whisper_feature_frames(int64_t n_samples, const WhisperFeatureOptions& o) {
  // Centred STFT: 1 + L / hop frames, the last one dropped.
  return whisper_window_length(std::max<int64_t>(n_samples, 0), o) / o.hop_length;
}

int64_t whisper_valid_frames(int64_t n_samples, const WhisperFeatureOptions& o) {
  // The sample-level mask (1 for the real samples) read every hop samples, minus the last entry
  // when the window is not a multiple of hop.
  const int64_t len = whisper_window_length(std::max<int64_t>(n_samples, 0), o);
  const int64_t real = std::min(std::max<int64_t>(n_samples, 0), len);
  const int64_t entries = whisper_feature_frames(n_samples, o);
  return std::min((real + o.hop_length - 1) / o.hop_length, entries);
}

int64_t qwen_audio_tokens(int64_t valid_frames) {
  const int64_t l = floordiv(valid_frames - 1, 2) + 1;
  return floordiv(l - 2, 2) + 1;
}

}  // namespace omni
