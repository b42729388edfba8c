#include "modalities/audio/audio_tokens.h"

#include <string>

#include "core/error.h"

namespace omni {

int64_t audio_mel_frames(int64_t num_samples_16k) {
  return num_samples_16k > 0 ? num_samples_16k / kMelHop : 0;
}

int64_t audio_window_tokens(int64_t mel_frames) {
  if (mel_frames <= 0) return 0;
  const int64_t conv = (mel_frames + 1) / 2;
  return (conv + 1) / 2;
}

int64_t audio_tokens_for_frames(int64_t mel_frames, int64_t window_frames) {
  if (window_frames <= 0)
    throw ConfigError("audio encoder: window must be at least one mel frame, got " +
                      std::to_string(window_frames));
  if (mel_frames <= 0) return 0;
  return (mel_frames / window_frames) * audio_window_tokens(window_frames) +
         audio_window_tokens(mel_frames % window_frames);
}

}  // namespace omni
