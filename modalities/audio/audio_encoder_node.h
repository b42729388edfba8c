// AudioEncoder graph node: log-mel Tensor [n_mels, T] (100 frames/s) -> TokenChunks of 25
// tokens/s, one per window of `window_s` seconds, with media timestamps carried through.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/contract.h"
#include "core/node.h"
#include "core/registry.h"
#include "modalities/audio/audio_encoder.h"
#include "modalities/common/device_stager.h"
#include "modalities/common/encoder_setup.h"

namespace omni {

class AudioEncoderNode : public Node {
 public:
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

  // Tokens this node emits for a mel tensor of `mel_frames` frames (all its windows).
  int64_t tokens_for_frames(int64_t mel_frames) const {
    return audio_tokens_for_frames(mel_frames, window_frames_);
  }
  // Tokens for n samples at 16 kHz (through the Whisper front end's frame count).
  int64_t audio_tokens(int64_t num_samples_16k) const {
    return omni::audio_tokens(num_samples_16k, window_frames_);
  }
  AudioEncoder& model() { return enc_; }

 private:
  AudioEncoder enc_{nullptr};
  DeviceSpec spec_;
  std::unique_ptr<DeviceStager> stager_;  // CUDA: pinned buffers + side-stream copies
  int64_t window_frames_ = kDefaultAudioWindowFrames;
  int64_t batch_ = 4;
  double frames_per_second_ = kMelFramesPerSecond;
  std::string stream_;
};

// Registers AudioEncoder (the node type name) in `r`.
void register_audio_encoder_nodes(Registry& r);

}  // namespace omni
