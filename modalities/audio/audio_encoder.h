// Whisper-like audio encoder (libtorch): log-mel [n_mels, T] -> conv stem (k3 s1, k3 s2, GELU),
// sinusoidal positions, pre-LN blocks, avg-pool 2, LayerNorm, projection: 25 tokens per second.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

#include "modalities/audio/audio_tokens.h"

namespace omni {

struct AudioEncoderOptions {
  TORCH_ARG(int64_t, n_mels) = 80;
  TORCH_ARG(int64_t, width) = 192;
  TORCH_ARG(int64_t, depth) = 4;
  TORCH_ARG(int64_t, heads) = 3;
  TORCH_ARG(int64_t, mlp_ratio) = 4;
  TORCH_ARG(int64_t, out_dim) = 256;  // fusion width
};

// Parameter names: conv1.*, conv2.* (Conv1d), blocks.<i>.* (EncoderBlock), norm.*, proj.*.
class AudioEncoderImpl : public torch::nn::Module {
 public:
  explicit AudioEncoderImpl(const AudioEncoderOptions& options);
  // mel: [B, n_mels, T] (or [n_mels, T]) in the module's dtype/device. Returns [B, N, out_dim]
  // (or [N, out_dim]) with N = audio_window_tokens(T). One call is one attention window.
  at::Tensor forward(const at::Tensor& mel);
  int64_t tokens_for_frames(int64_t mel_frames) const { return audio_window_tokens(mel_frames); }

  AudioEncoderOptions options;
  torch::nn::Conv1d conv1{nullptr}, conv2{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear proj{nullptr};
};
TORCH_MODULE(AudioEncoder);

// Whisper's sinusoidal table [length, channels]: sin of the first half, cos of the second, with
// timescales from 1 to 10000 (channels must be even and >= 4). Returned as float32. `compute`:
// kDouble (the demo encoder's table, rounded once at the end) or kFloat (float32 throughout, the
// way transformers builds it for Whisper and Qwen2.5-Omni; differs from kDouble by up to ~1e-5 at
// position 100 and ~1e-4 at 1500).
at::Tensor whisper_sinusoids(int64_t length, int64_t channels,
                             at::ScalarType compute = at::kDouble);

}  // namespace omni
