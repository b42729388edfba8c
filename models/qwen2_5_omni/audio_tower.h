// The Qwen2.5-Omni audio encoder (transformers' Qwen2_5OmniAudioEncoder, the thinker's
// `audio_tower`): log-mel [128, frames] -> conv1 (k3, GELU) -> conv2 (k3 stride 2, GELU), each
// window of 2 * n_window frames on its own (zero padding at window edges), sinusoidal positions
// restarting in every window, pre-LN encoder layers attending within their window only, average
// pooling of frame pairs (floor: an odd last frame is dropped), ln_post, proj.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>
#include <nlohmann/json_fwd.hpp>

#include <cstdint>

#include "modalities/common/deferred_init.h"

namespace omni::qwen {

// Qwen2_5OmniAudioEncoderConfig's fields (defaults: transformers' = Qwen2.5-Omni-7B's).
struct AudioTowerOptions {
  TORCH_ARG(int64_t, num_mel_bins) = 128;
  TORCH_ARG(int64_t, d_model) = 1280;
  TORCH_ARG(int64_t, encoder_layers) = 32;
  TORCH_ARG(int64_t, encoder_attention_heads) = 20;
  TORCH_ARG(int64_t, encoder_ffn_dim) = 5120;
  TORCH_ARG(int64_t, max_source_positions) = 1500;  // rows of the sinusoidal table
  TORCH_ARG(int64_t, n_window) = 100;               // attention windows of 2 * n_window frames
  TORCH_ARG(int64_t, output_dim) = 3584;

 public:  // (TORCH_ARG leaves the section private)
  // Throws ConfigError for sizes the encoder cannot be built with.
  void validate() const;
  // From thinker_config.audio_config (Checkpoint::tower_config("audio")); absent keys take the
  // defaults above. activation_function must be "gelu" (the only one Qwen2.5-Omni uses).
  static AudioTowerOptions from_config(const nlohmann::json& audio_config);
};

// One encoder layer's attention: q/v/out projections with bias, k without (as transformers).
class AudioAttentionImpl : public torch::nn::Module {
 public:
  AudioAttentionImpl(int64_t d_model, int64_t heads);
  // x [T, d] of consecutive windows: `full` windows of `window` rows each, then a last window of
  // the remaining rows (if any). Attention never crosses a window boundary.
  at::Tensor forward(const at::Tensor& x, int64_t window, int64_t full);

  int64_t heads;
  omni::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(AudioAttention);

// x + attn(self_attn_layer_norm(x)), then x + fc2(gelu(fc1(final_layer_norm(x)))).
class AudioEncoderLayerImpl : public torch::nn::Module {
 public:
  explicit AudioEncoderLayerImpl(const AudioTowerOptions& o);
  at::Tensor forward(const at::Tensor& x, int64_t window, int64_t full);

  AudioAttention self_attn{nullptr};
  torch::nn::LayerNorm self_attn_layer_norm{nullptr}, final_layer_norm{nullptr};
  omni::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(AudioEncoderLayer);

// Parameter names are transformers' under thinker.audio_tower. (our checkpoint prefix "audio."):
// conv1.*, conv2.*, audio_bos_eos_token.weight (loaded, unused by the thinker's forward, as in
// transformers), layers.<i>.{self_attn.{q,k,v,out}_proj, self_attn_layer_norm, fc1, fc2,
// final_layer_norm}.*, ln_post.*, proj.*. The positional table is computed, not a parameter.
class AudioTowerImpl : public torch::nn::Module {
 public:
  explicit AudioTowerImpl(AudioTowerOptions o);
  // One clip's valid log-mel frames [num_mel_bins, frames] (the processor's input_features with
  // feature_attention_mask applied), any floating dtype (converted to the module's dtype and
  // device) -> [audio_token_count(frames), output_dim] in the module's dtype (0 rows for 1 or 2
  // frames, as transformers). Throws InputError for another shape, zero frames or a non-floating
  // tensor.
  at::Tensor forward(const at::Tensor& features);

  const AudioTowerOptions& options() const { return options_; }

  torch::nn::Conv1d conv1{nullptr}, conv2{nullptr};
  torch::nn::Embedding audio_bos_eos_token{nullptr};
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm ln_post{nullptr};
  omni::nn::Linear proj{nullptr};

 private:
  AudioTowerOptions options_;
  at::Tensor positions_;  // float32 [max_source_positions, d_model], as transformers builds it
};
TORCH_MODULE(AudioTower);

// Audio tokens for `frames` valid log-mel frames: transformers' _get_feat_extract_output_lengths
// ((L - 1) // 2 + 1 after conv2, then (L - 2) // 2 + 1 after pooling, floor division). The same
// function as the processor's placeholder count, omni::qwen_audio_tokens (whisper_features.h).
// Throws InputError for a negative count.
int64_t audio_token_count(int64_t frames);

}  // namespace omni::qwen
