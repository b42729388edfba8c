#include "models/qwen2_5_omni/generation.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "fusion/heads.h"  // pick_token, filter_logits: the sampling shared with the demo model

namespace omni::qwen {

namespace {

DecodeOptions decode_options(const GenerationOptions& o) {
  DecodeOptions d;
  d.max_new_tokens = o.max_new_tokens;
  d.greedy = !o.do_sample;
  d.temperature = o.temperature;
  d.top_k = o.top_k;
  d.top_p = o.top_p;
  d.seed = o.seed;
  return d;
}

}  // namespace

void GenerationOptions::validate() const {
  auto bad = [](const std::string& m) { throw ConfigError("generation: " + m); };
  if (max_new_tokens < 0) bad("max_new_tokens must be >= 0");
  if (do_sample) {
    if (!(temperature > 0)) bad("temperature must be > 0 when sampling");
    if (top_k < 0) bad("top_k must be >= 0 (0: no top-k filter)");
    if (!(top_p > 0 && top_p <= 1)) bad("top_p must be in (0, 1]");
  }
}

GenerationOptions GenerationOptions::from_generation_config(const nlohmann::json& gc,
                                                            int64_t max_new_tokens) {
  GenerationOptions o;
  o.top_k = 50;  // transformers' GenerationConfig default
  o.max_new_tokens = max_new_tokens;
  if (!gc.is_object()) return o;
  auto number = [&](const char* key, double& out) {
    if (auto it = gc.find(key); it != gc.end() && !it->is_null()) {
      if (!it->is_number())
        throw ConfigError(std::string("generation_config.json: ") + key + " must be a number");
      out = it->get<double>();
    }
  };
  auto integer = [&](const char* key, int64_t& out) {
    if (auto it = gc.find(key); it != gc.end() && !it->is_null()) {
      if (!it->is_number_integer())
        throw ConfigError(std::string("generation_config.json: ") + key + " must be an integer");
      out = it->get<int64_t>();
    }
  };
  if (auto it = gc.find("do_sample"); it != gc.end() && it->is_boolean()) o.do_sample = *it;
  number("temperature", o.temperature);
  integer("top_k", o.top_k);
  number("top_p", o.top_p);
  integer("max_new_tokens", o.max_new_tokens);
  if (auto it = gc.find("eos_token_id"); it != gc.end() && !it->is_null()) {
    if (it->is_number_integer()) {
      o.eos_token_ids = {it->get<int64_t>()};
    } else if (it->is_array()) {
      for (const auto& x : *it) {
        if (!x.is_number_integer())
          throw ConfigError("generation_config.json: eos_token_id list holds " + x.dump());
        o.eos_token_ids.push_back(x.get<int64_t>());
      }
    } else {
      throw ConfigError("generation_config.json: eos_token_id must be an integer or a list");
    }
  }
  return o;
}

at::Tensor filter_logits(const at::Tensor& logits, const GenerationOptions& opts) {
  GenerationOptions o = opts;
  o.do_sample = true;
  o.validate();
  return omni::filter_logits(logits, decode_options(o));
}

GenerationResult generate(TextModelImpl& model, const at::Tensor& prompt_embeds,
                          const at::Tensor& prompt_position_ids, const GenerationOptions& opts,
                          const TokenCallback& on_token, KVCache* cache) {
  opts.validate();
  if (!prompt_embeds.defined() || prompt_embeds.dim() != 3 || prompt_embeds.size(0) != 1)
    throw InputError("generate: prompt embeddings must be [1, L, hidden] (one sequence), got " +
                     (prompt_embeds.defined() ? c10::str(prompt_embeds.sizes()) : "none"));
  if (prompt_embeds.size(1) == 0) throw InputError("generate: empty prompt");
  for (int64_t id : opts.eos_token_ids)
    if (id < 0 || id >= model.options().vocab_size)
      throw ConfigError("generate: eos id " + std::to_string(id) + " outside the vocabulary [0, " +
                        std::to_string(model.options().vocab_size) + ")");
  at::NoGradGuard no_grad;
  KVCache local;
  KVCache& kv = cache ? *cache : local;
  GenerationResult r;
  // Prefill; only the last position's logits are needed.
  at::Tensor hidden = model.hidden_states(prompt_embeds, prompt_position_ids, &kv);
  at::Tensor last = hidden.select(1, hidden.size(1) - 1);  // [1, hidden]
  // transformers: rope_deltas = max(prompt positions) + 1 - prompt length; while decoding, the
  // token at cache position c takes position c + rope_deltas on all three axes.
  r.rope_delta = prompt_position_ids.max().item<int64_t>() + 1 - kv.length();
  const DecodeOptions dec = decode_options(opts);
  at::Generator gen = at::detail::createCPUGenerator(opts.seed);
  const auto ids_opts = at::TensorOptions(at::kLong).device(model.device());
  std::vector<at::Tensor> step_logits;
  for (int64_t i = 0; i < opts.max_new_tokens; ++i) {
    const at::Tensor logits = model.logits(last, at::kFloat)[0];  // [vocab]
    if (opts.output_logits) step_logits.push_back(logits.to(at::kCPU));
    const int64_t tok = pick_token(logits, dec, gen);
    r.ids.push_back(tok);
    if (on_token) on_token(tok);
    if (std::find(opts.eos_token_ids.begin(), opts.eos_token_ids.end(), tok) !=
        opts.eos_token_ids.end()) {
      r.stopped_at_eos = true;
      break;
    }
    if (i + 1 == opts.max_new_tokens) break;
    const at::Tensor e = model.embed(at::full({1, 1}, tok, ids_opts));
    const at::Tensor p = at::full({3, 1, 1}, kv.length() + r.rope_delta, ids_opts);
    last = model.hidden_states(e, p, &kv).select(1, 0);
  }
  if (opts.output_logits)
    r.logits = step_logits.empty() ? at::empty({0, model.options().vocab_size})
                                   : at::stack(step_logits, 0);
  return r;
}

}  // namespace omni::qwen
