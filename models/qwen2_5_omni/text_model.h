// The Qwen2.5-Omni thinker's language model: the Qwen2 decoder as transformers computes it
// (Qwen2_5OmniThinkerTextModel + the thinker's lm_head). Token embedding; per layer an RMSNorm,
// grouped-query attention with q/k/v biases (none on o_proj) and multimodal rotary positions
// (mrope: the rotary frequency pairs split into `mrope_section` groups that rotate by the
// temporal, height and width position), an RMSNorm and a SwiGLU MLP without biases; a final
// RMSNorm; an untied lm_head unless tie_word_embeddings says so. RMSNorm in transformers' cast
// order (normalise in fp32, cast back, then multiply the weight). KV cache for decoding, causal
// over the cache for multi-token steps. Parameter names are transformers' names under
// thinker.model. (and thinker.lm_head.), so `Checkpoint::load_into(model, {"text."})` loads it.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "fusion/transformer.h"  // KVCache, RMSNorm, MultiAxisRotary
#include "modalities/common/deferred_init.h"

namespace omni::qwen {

using omni::KVCache;  // per layer k/v [B, num_key_value_heads, T, head_dim], keys rotated

struct TextModelOptions {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // 0: hidden_size / num_attention_heads
  double rms_norm_eps = 1e-6;
  double rope_theta = 1000000.0;
  std::vector<int64_t> mrope_section = {16, 24, 24};  // sums to head_dim / 2
  bool tie_word_embeddings = false;
  // Where the parameters live: each part is converted right after it is built, so a big model
  // never exists whole in fp32 on the CPU (not read from the config).
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;

  int64_t resolved_head_dim() const {
    return head_dim > 0 ? head_dim : hidden_size / num_attention_heads;
  }
  void validate() const;  // throws ConfigError
  // From a text config as transformers writes it: `rope_parameters` {rope_theta, mrope_section,
  // rope_type} (transformers 5) or `rope_theta` + `rope_scaling` {mrope_section, type/rope_type}
  // (older configs). Rope types other than default/mrope, sliding-window attention and
  // activations other than silu are refused with a ConfigError.
  static TextModelOptions from_config(const nlohmann::json& text_config);
};

class TextAttentionImpl : public torch::nn::Module {
 public:
  explicit TextAttentionImpl(const TextModelOptions& o);
  // x [B, L, hidden]; rot = MultiAxisRotary::head_tables(cos, sin) for these L tokens. With a
  // cache slot (k, v undefined on the first call) the new keys/values are appended to it and the
  // queries attend causally over all of them.
  at::Tensor forward(const at::Tensor& x, const std::pair<at::Tensor, at::Tensor>& rot,
                     at::Tensor* k_cache, at::Tensor* v_cache);
  omni::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  int64_t heads_, kv_heads_, head_dim_;
};
TORCH_MODULE(TextAttention);

class TextMLPImpl : public torch::nn::Module {
 public:
  TextMLPImpl(int64_t hidden, int64_t intermediate);
  at::Tensor forward(const at::Tensor& x);  // down(silu(gate(x)) * up(x)), no biases
  omni::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(TextMLP);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  explicit DecoderLayerImpl(const TextModelOptions& o);
  at::Tensor forward(const at::Tensor& x, const std::pair<at::Tensor, at::Tensor>& rot,
                     at::Tensor* k_cache, at::Tensor* v_cache);
  TextAttention self_attn{nullptr};
  TextMLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(DecoderLayer);

class TextModelImpl : public torch::nn::Module {
 public:
  explicit TextModelImpl(TextModelOptions o);

  // ids [B, L] (any integer dtype) -> embeddings [B, L, hidden] in the model's dtype and device.
  // Ids outside [0, vocab_size) are an InputError.
  at::Tensor embed(const at::Tensor& ids);
  // embeds [B, L, hidden]; position_ids [3, B, L] (or [3, L], shared by the batch) int64: the
  // temporal, height and width position of every token. With a cache, the tokens follow the
  // cached ones (each attends to the whole cache and causally within the step) and are appended
  // to it. Returns the final-norm hidden states [B, L, hidden] in the model's dtype.
  at::Tensor hidden_states(const at::Tensor& embeds, const at::Tensor& position_ids,
                           KVCache* cache = nullptr);
  // lm_head (or the tied embedding) on hidden states [.., hidden] -> [.., vocab] in `dtype`
  // (nullopt: the model's dtype).
  at::Tensor logits(const at::Tensor& hidden, std::optional<at::ScalarType> dtype = at::kFloat);
  // hidden_states + logits: [B, L, vocab] float32 unless `dtype` says otherwise.
  at::Tensor forward(const at::Tensor& embeds, const at::Tensor& position_ids,
                     KVCache* cache = nullptr, std::optional<at::ScalarType> dtype = at::kFloat);

  const TextModelOptions& options() const { return options_; }
  at::ScalarType dtype() const { return embed_tokens->weight.scalar_type(); }
  at::Device device() const { return embed_tokens->weight.device(); }

  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  omni::nn::Linear lm_head{nullptr};  // null when tie_word_embeddings

 private:
  TextModelOptions options_;
  MultiAxisRotary rotary_;
};
TORCH_MODULE(TextModel);

// Inverse rotary frequencies as transformers' default rope computes them (in float32):
// 1 / theta^(arange(0, head_dim, 2) / head_dim).
at::Tensor default_rope_inv_freq(int64_t head_dim, double theta);

}  // namespace omni::qwen
