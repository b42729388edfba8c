// FusionTransformer: the one decoder-only transformer over the unified token sequence (pre-norm
// RMSNorm, SwiGLU, grouped-query attention, multi-axis rotary embedding over (t, h, w) positions,
// causal mask, KV cache for appending chunks). DESIGN.md section 4.
#pragma once

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

namespace omni {

struct FusionTransformerOptions {
  TORCH_ARG(int64_t, vocab) = 272;  // text embedding rows (the LM head is tied to them)
  TORCH_ARG(int64_t, dim) = 256;    // model width; encoder embeddings must have this size
  TORCH_ARG(int64_t, layers) = 4;
  TORCH_ARG(int64_t, heads) = 8;     // query heads
  TORCH_ARG(int64_t, kv_heads) = 2;  // key/value heads (GQA); must divide heads
  TORCH_ARG(int64_t, ffn) = 0;       // SwiGLU hidden size; 0: 8/3 * dim rounded up to 64
  // Rotary frequency pairs given to the t, h and w axes (Qwen2-VL mrope_section); must sum to
  // head_dim / 2. Empty: 1/4, 3/8, 3/8 of them (Qwen2.5's 16, 24, 24 for head_dim 128).
  TORCH_ARG(std::vector<int64_t>, mrope_section) = {};
  TORCH_ARG(double, rope_theta) = 10000.0;
  TORCH_ARG(double, norm_eps) = 1e-6;

 public:  // TORCH_ARG leaves the section private
  int64_t head_dim() const { return dim_ / heads_; }
  int64_t ffn_hidden() const { return ffn_ > 0 ? ffn_ : ((8 * dim_ / 3 + 63) / 64) * 64; }
  std::vector<int64_t> sections() const;  // resolved mrope sections
  void validate() const;                  // throws ConfigError
};

// Keys (already rotated) and values of every layer for the tokens seen so far.
struct KVCache {
  std::vector<at::Tensor> k, v;  // per layer [B, kv_heads, T, head_dim]
  int64_t length() const { return k.empty() || !k[0].defined() ? 0 : k[0].size(2); }
  void clear() {
    k.clear();
    v.clear();
  }
  // Drops everything after the first `n` tokens (to rewind generated tokens).
  void truncate(int64_t n);
};

class RMSNormImpl : public torch::nn::Module {
 public:
  // Normalises in at least fp32. `weight_after_cast` false (the demo model): the weight multiplies
  // in fp32 and the product is cast back to the input dtype; true (transformers' Qwen2/Llama
  // RMSNorm): the normalised values are cast back to the input dtype first, then multiplied by
  // the weight (in the promoted dtype of the two). The same numbers in fp32, not in bf16/fp16.
  RMSNormImpl(int64_t dim, double eps, bool weight_after_cast = false);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;
  double eps;
  bool weight_after_cast;
};
TORCH_MODULE(RMSNorm);

// Multi-axis rotary tables: cos/sin [B, L, head_dim] for positions [3, B, L].
class MultiAxisRotary {
 public:
  MultiAxisRotary(int64_t head_dim, std::vector<int64_t> sections, double theta);
  // With explicit inverse frequencies [head_dim / 2] (fp32 or fp64) instead of theta^(-2i/d)
  // computed in fp64: e.g. transformers' default rope computes them in fp32.
  MultiAxisRotary(int64_t head_dim, std::vector<int64_t> sections, at::Tensor inv_freq);
  std::pair<at::Tensor, at::Tensor> tables(const at::Tensor& positions, at::ScalarType dtype) const;
  // x: [B, H, L, D]; cos/sin: [B, L, D].
  static at::Tensor apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
  // The same rotation in the layout [B, L, heads, D] with fewer ops (inference path): tables made
  // once by head_tables(cos, sin) = (cos [B, L, 1, D], sin with rotate_half's signs folded in).
  static std::pair<at::Tensor, at::Tensor> head_tables(const at::Tensor& cos,
                                                       const at::Tensor& sin);
  static at::Tensor apply_heads(const at::Tensor& x, const at::Tensor& cos_heads,
                                const at::Tensor& sin_signed);
  const std::vector<int64_t>& sections() const { return sections_; }

 private:
  int64_t head_dim_;
  std::vector<int64_t> sections_;
  double theta_;
  at::Tensor inv_freq_;  // undefined: computed from theta_
};

class FusionBlockImpl : public torch::nn::Module {
 public:
  explicit FusionBlockImpl(const FusionTransformerOptions& o);
  // x: [B, L, d]; cos/sin: [B, L, head_dim]. Appends this chunk's K/V to (k_cache, v_cache) when
  // they are given (undefined on the first chunk).
  // Without autograd, `head_tables` (MultiAxisRotary::head_tables(cos, sin)) saves remaking them
  // per layer; made here when null.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     at::Tensor* k_cache, at::Tensor* v_cache, bool explicit_attention,
                     const std::pair<at::Tensor, at::Tensor>* head_tables = nullptr);

  FusionTransformerOptions options;
  RMSNorm attn_norm{nullptr}, mlp_norm{nullptr};
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};

 private:
  // Without autograd (inference), q/k/v and gate/up run as one matmul each over weights
  // concatenated once: fewer ops per decoding step, where per-op dispatch dominates. Rebuilt when
  // a projection's weight is replaced or changed in place (data pointer or version differs).
  struct Fused {
    at::Tensor qkv, gate_up;
    std::array<const void*, 5> ptr{};
    std::array<int64_t, 5> version{};
  };
  const Fused& fused();
  Fused fused_;
  std::mutex fused_mutex_;
};
TORCH_MODULE(FusionBlock);

class FusionTransformerImpl : public torch::nn::Module {
 public:
  explicit FusionTransformerImpl(FusionTransformerOptions o = {});

  // embeds [B, L, d]; positions [3, B, L] or [3, L] int64. With a cache, the tokens are appended
  // after the cached ones (causal over all of them) and the cache grows. Returns the final-norm
  // hidden states [B, L, d].
  at::Tensor forward(const at::Tensor& embeds, const at::Tensor& positions,
                     KVCache* cache = nullptr);
  at::Tensor embed_ids(const at::Tensor& ids);     // [..] int64 -> [.., d]
  at::Tensor lm_logits(const at::Tensor& hidden);  // tied LM head: hidden @ embedding^T
  // Routes attention through the explicit implementation even where SDPA exists (tests).
  void set_explicit_attention(bool on) { explicit_attention_ = on; }

  FusionTransformerOptions options;
  torch::nn::Embedding tok_embeddings{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  RMSNorm norm{nullptr};

 private:
  MultiAxisRotary rotary_;
  bool explicit_attention_ = false;
};
TORCH_MODULE(FusionTransformer);

}  // namespace omni
