// Text generation with the Qwen2.5-Omni thinker's language model: greedy or sampled (temperature,
// top-k, top-p as transformers' warpers apply them, seeded with a local generator), stopping at
// any eos id or after max_new_tokens, one callback per generated token (streaming). Positions of
// new tokens follow transformers' decoding: position = cache position + rope_delta on all three
// axes, rope_delta = max(prompt positions) + 1 - prompt length.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <vector>

#include "models/qwen2_5_omni/text_model.h"

namespace omni::qwen {

struct GenerationOptions {
  int64_t max_new_tokens = 32;
  bool do_sample = false;  // false: greedy (argmax; temperature / top_k / top_p are ignored)
  double temperature = 1.0;
  int64_t top_k = 0;   // 0: no top-k filter
  double top_p = 1.0;  // 1: no nucleus filter
  uint64_t seed = 0;   // sampling draws from a generator seeded with this (never a global one)
  std::vector<int64_t> eos_token_ids;  // generation ends after emitting one of them
  bool output_logits = false;          // keep every step's logits in GenerationResult::logits

  void validate() const;  // throws ConfigError
  // The sampling fields of a generation_config.json (do_sample, temperature, top_k, top_p,
  // max_new_tokens, eos_token_id), with transformers' defaults where a field is absent (top_k 50,
  // top_p 1, temperature 1, do_sample false); max_new_tokens stays `max_new_tokens` when absent.
  static GenerationOptions from_generation_config(const nlohmann::json& generation_config,
                                                  int64_t max_new_tokens = 32);
};

struct GenerationResult {
  // Generated ids as transformers' generate returns them after the prompt: the eos id that ended
  // generation is the last one.
  std::vector<int64_t> ids;
  bool stopped_at_eos = false;
  int64_t rope_delta = 0;  // the delta added to the cache position of every new token
  at::Tensor logits;       // [ids.size(), vocab] float32 when output_logits (logits of each step)
};

// Called once per generated token, in order (the final eos id included), as soon as it is picked.
using TokenCallback = std::function<void(int64_t token)>;

// prompt_embeds [1, L, hidden] (text embeddings with the encoders' outputs in place);
// prompt_position_ids [3, 1, L] (or [3, L]) int64, e.g. get_rope_index's. With `cache` the prompt
// is appended to what it already holds (positions as given) and the cache keeps every token fed to
// the model (the prompt and the generated ids but the last); without one a local cache is used.
GenerationResult generate(TextModelImpl& model, const at::Tensor& prompt_embeds,
                          const at::Tensor& prompt_position_ids, const GenerationOptions& opts,
                          const TokenCallback& on_token = {}, KVCache* cache = nullptr);

// The sampling filters of `opts` on one row of logits [V]: float32 CPU logits / temperature with
// the tokens that top-k and top-p remove at -inf (transformers' TemperatureLogitsWarper,
// TopKLogitsWarper, TopPLogitsWarper in that order).
at::Tensor filter_logits(const at::Tensor& logits, const GenerationOptions& opts);

}  // namespace omni::qwen
