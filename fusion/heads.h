// Output heads of the fusion transformer: text decoding through the tied LM head (greedy, top-k,
// top-p; seeded; stop tokens; max-new-tokens), a pooled embedding head and a classification head.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "fusion/fused_sequence.h"
#include "fusion/transformer.h"

namespace omni {

struct DecodeOptions {
  int64_t max_new_tokens = 32;
  bool greedy = true;  // argmax; otherwise sample with temperature / top_k / top_p
  double temperature = 1.0;
  int64_t top_k = 0;                 // 0: no top-k filter
  double top_p = 1.0;                // 1: no nucleus filter
  uint64_t seed = 0;                 // sampling is deterministic for a seed
  std::vector<int64_t> stop_tokens;  // generation ends after emitting one (it is not returned)
};

// The sampling filters on one row of logits [V] (any device), as transformers' warpers apply them
// (temperature, then top-k, then top-p): float32 CPU logits / temperature with filtered-out
// tokens at -inf. Ignores opts.greedy.
at::Tensor filter_logits(const at::Tensor& logits, const DecodeOptions& opts);

// Picks the next token from one row of logits [V] (any device). `gen` must be a CPU generator.
int64_t pick_token(const at::Tensor& logits, const DecodeOptions& opts, at::Generator& gen);

// Embeddings [1, L, d] of a fused sequence: text/boundary ids through the model's embedding
// table, encoder embeddings as they are (their width must equal the model's).
at::Tensor embed_sequence(FusionTransformerImpl& model, const FusedSequence& seq);

struct GenerateResult {
  std::vector<int64_t> tokens;  // generated ids, without the stop token
  bool stopped = false;         // ended on a stop token (false: hit max_new_tokens)
};

// Runs the sequence through the model (appending to `cache` when given, e.g. a streaming graph's
// earlier segments) and decodes text after it. Generated tokens take the next text positions
// (largest id + 1, +2, ... on all axes). The cache is rewound to the prompt before returning.
GenerateResult generate(FusionTransformerImpl& model, const at::Tensor& embeds,
                        const at::Tensor& positions, const DecodeOptions& opts,
                        KVCache* cache = nullptr);

// Mean of the hidden states over the tokens (optionally only where `mask` [B, L] is true),
// then an optional linear projection (out_dim 0: none).
class PooledHeadImpl : public torch::nn::Module {
 public:
  PooledHeadImpl(int64_t dim, int64_t out_dim = 0);
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& mask = {});
  torch::nn::Linear proj{nullptr};
};
TORCH_MODULE(PooledHead);

// Class logits from the pooled hidden state.
class ClassificationHeadImpl : public torch::nn::Module {
 public:
  ClassificationHeadImpl(int64_t dim, int64_t classes);
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& mask = {});
  PooledHead pool{nullptr};
  torch::nn::Linear classifier{nullptr};
};
TORCH_MODULE(ClassificationHead);

}  // namespace omni
