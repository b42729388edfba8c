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
#include "modalities/common/token_chunk.h"

namespace omni {

class AudioEncoderNode : public Node, public EncoderParams {
 public:
  AudioEncoderNode() = default;
  // A program that holds the encoder already (e.g. shared by a graph per clip) passes it here:
  // open() then uses it as it is, placed where it lives (the architecture, weights, seed, device
  // and dtype parameters are not used). It must not change while a graph uses it.
  explicit AudioEncoderNode(AudioEncoder shared) : enc_(std::move(shared)), shared_(true) {}
  static constexpr Input<at::Tensor> kMel{
      "mel", "log-mel [n_mels, T] (the LogMel node's output), at its start time"};
  static constexpr Output<TokenChunk> kTokens{
      "tokens", "one TokenChunk per window, at the window's start time"};
  static constexpr Param<int64_t> kNMels{"n_mels", 80, "mel bins"};
  static constexpr Param<int64_t> kWidth{"width", 192, "transformer width"};
  static constexpr Param<int64_t> kDepth{"depth", 4, "transformer blocks"};
  static constexpr Param<int64_t> kHeads{"heads", 3, "attention heads"};
  static constexpr Param<int64_t> kMlpRatio{"mlp_ratio", 4, "MLP hidden width / width"};
  static constexpr Param<int64_t> kOutDim{"out_dim", 256, "output (fusion) width"};
  static constexpr Param<double> kWindow{
      "window_s", 30.0, "attention window in seconds; longer input is cut into windows"};
  static constexpr Param<int64_t> kBatch{"batch", 4, "full windows encoded per forward"};
  static constexpr Param<double> kFramesPerSecond{"frames_per_second", 100.0,
                                                  "mel frame rate (Whisper: 16000 / 160)"};
  static constexpr Param<std::string> kStream{
      "stream", "", "stream id on the TokenChunks (default: <node>/audio)"};
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
  bool shared_ = false;
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
