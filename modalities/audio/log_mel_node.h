// LogMel graph node: 16 kHz AudioChunk stream -> Whisper log-mel windows (at::Tensor
// [n_mels, frames]), either independent 30 s padded windows or frames of the whole stream.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "core/node.h"
#include "modalities/audio/log_mel.h"
#include "modalities/common/audio_chunk.h"

namespace omni {

// Modes (param `mode`):
//  - "padded30": the stream is cut into windows of `window_s` seconds; each window (the last one
//    zero-padded) is whisper's pad_or_trim + log_mel_spectrogram of that window alone:
//    [n_mels, window_s * 100] with reflect padding at the window's own edges. This is what a
//    Whisper-style encoder trained on 30 s inputs expects.
//  - "whole": the stream is one signal. STFT frames are computed exactly as on the concatenated
//    signal (frames that straddle chunk boundaries see the real neighbouring samples; reflect
//    padding only at the true start and end; total frames = samples / 160), then grouped into
//    windows of window_s * 100 frames (the last one shorter). `normalize` picks the scope of
//    whisper's max(x, max - 8) step: "window" (each window against its own maximum; windows are
//    emitted as soon as complete) or "stream" (the maximum of the whole stream; windows are held
//    until the input ends, and their concatenation equals log_mel_spectrogram(whole signal)).
// Packet timestamp = media time of the window's first sample (padded30) / first frame centre
// (whole), counted from the first chunk's start_us at 16 kHz. Input must be 16 kHz; channels are
// averaged. Gaps in start_us are counted ("discontinuities") and the samples treated as contiguous.
class LogMelNode : public Node {
 public:
  static constexpr Input<AudioChunk> kAudio{"audio", "16 kHz PCM (channels are averaged)"};
  static constexpr Output<at::Tensor> kMel{
      "mel", "float32 [n_mels, frames] per window; timestamp = window start"};
  static constexpr Param<int64_t> kNMels{"n_mels", 80, "mel bins: 80 or 128"};
  static constexpr Param<std::string> kMode{
      "mode", "padded30",
      "padded30: each window alone, zero-padded to window_s (Whisper's 30 s inputs); "
      "whole: frames of the whole stream, cut into windows"};
  static constexpr Param<double> kWindow{"window_s", 30.0,
                                         "window length in seconds (multiple of 0.01)"};
  static constexpr Param<std::string> kNormalize{
      "normalize", "window", "whole mode: scope of the max-8 dynamic range step: window or stream"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;
  void close(Context& ctx) override;

 private:
  void emit_window(Context& ctx, std::vector<float> data, int64_t frames, int64_t first_sample);
  void drain_whole(Context& ctx, bool at_end);
  Timestamp sample_time(int64_t sample) const;

  int n_mels_ = 80;
  bool padded_ = true;
  bool stream_norm_ = false;
  int64_t window_samples_ = kWhisperChunkSamples;
  int64_t window_frames_ = kWhisperChunkFrames;
  std::unique_ptr<LogMel> mel_;
  std::unique_ptr<LogMelStream> stream_;
  std::vector<float> pending_;  // padded30: samples of the current window
  int64_t pending_start_ = 0;   // sample index of pending_[0]
  int64_t samples_ = 0;         // samples received
  int64_t origin_us_ = 0;
  bool started_ = false;
  // whole + normalize=stream: raw windows held until the end, with their first frame index.
  std::vector<std::pair<std::vector<float>, int64_t>> held_;
};

}  // namespace omni
