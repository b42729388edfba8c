// Token counts of the audio encoder (25 tokens per second of 16 kHz audio). Torch-free so the
// sequencer uses the same functions as the encoder.
#pragma once

#include <cstdint>

namespace omni {

inline constexpr int64_t kAudioSampleRate = 16000;
inline constexpr int64_t kMelHop = 160;              // samples per log-mel frame
inline constexpr int64_t kMelFramesPerSecond = 100;  // kAudioSampleRate / kMelHop
inline constexpr int64_t kDefaultAudioWindowFrames = 30 * kMelFramesPerSecond;

// Log-mel frames the Whisper front end gives for n samples at 16 kHz (centred STFT with the last
// frame dropped): floor(n / 160).
int64_t audio_mel_frames(int64_t num_samples_16k);
// Tokens for one window of T mel frames: stride-2 conv -> ceil(T/2), avg-pool 2 with a partial
// last pair kept -> ceil(ceil(T/2) / 2). 100 frames (1 s) -> 25 tokens.
int64_t audio_window_tokens(int64_t mel_frames);
// Tokens for T frames cut into windows of `window_frames` (the last one may be shorter).
int64_t audio_tokens_for_frames(int64_t mel_frames,
                                int64_t window_frames = kDefaultAudioWindowFrames);
// Tokens for n samples at 16 kHz.
inline int64_t audio_tokens(int64_t num_samples_16k,
                            int64_t window_frames = kDefaultAudioWindowFrames) {
  return audio_tokens_for_frames(audio_mel_frames(num_samples_16k), window_frames);
}

}  // namespace omni
