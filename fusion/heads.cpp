#include "fusion/heads.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/modules/linear.h>

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace omni {

at::Tensor filter_logits(const at::Tensor& logits_in, const DecodeOptions& opts) {
  at::Tensor logits = logits_in.detach().reshape({-1}).to(at::kCPU, at::kFloat);
  if (opts.temperature <= 0) throw ConfigError("decoding: temperature must be > 0 when sampling");
  logits = logits / opts.temperature;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (opts.top_k > 0 && opts.top_k < logits.size(0)) {
    // Keep the k largest; ties at the threshold are all kept.
    const float kth = std::get<0>(logits.topk(opts.top_k)).min().item<float>();
    logits = logits.masked_fill(logits < kth, neg_inf);
  }
  if (opts.top_p < 1.0) {
    auto [sorted, order] = logits.sort(/*dim=*/0, /*descending=*/true);
    at::Tensor probs = at::softmax(sorted, 0);
    // Drop a token once the tokens ranked above it already reach top_p (the first always stays).
    at::Tensor drop = (probs.cumsum(0) - probs) >= opts.top_p;
    sorted = sorted.masked_fill(drop, neg_inf);
    logits = at::full_like(logits, neg_inf).scatter(0, order, sorted);
  }
  return logits;
}

int64_t pick_token(const at::Tensor& logits_in, const DecodeOptions& opts, at::Generator& gen) {
  if (opts.greedy)
    return logits_in.detach().reshape({-1}).to(at::kCPU, at::kFloat).argmax().item<int64_t>();
  at::Tensor probs = at::softmax(filter_logits(logits_in, opts), 0);
  return at::multinomial(probs, 1, /*replacement=*/false, gen).item<int64_t>();
}

at::Tensor embed_sequence(FusionTransformerImpl& model, const FusedSequence& seq) {
  const auto& w = model.tok_embeddings->weight;
  std::vector<at::Tensor> parts;
  for (const FusedPiece& p : seq.pieces) {
    if (p.ids.defined()) {
      parts.push_back(model.embed_ids(p.ids));
    } else if (p.embeddings.defined()) {
      if (p.embeddings.dim() != 2 || p.embeddings.size(1) != model.options.dim())
        throw InputError("fusion: " + std::string(modality_name(p.modality)) +
                         " embeddings at token " + std::to_string(p.offset) + " have shape " +
                         c10::str(p.embeddings.sizes()) + "; the model expects [n, " +
                         std::to_string(model.options.dim()) +
                         "] (set the encoder's out_dim to the fusion width)");
      parts.push_back(p.embeddings.to(w.device(), w.scalar_type()));
    }
  }
  if (parts.empty()) return at::empty({1, 0, model.options.dim()}, w.options());
  return at::cat(parts, 0).unsqueeze(0);
}

GenerateResult generate(FusionTransformerImpl& model, const at::Tensor& embeds,
                        const at::Tensor& positions, const DecodeOptions& opts, KVCache* cache) {
  at::NoGradGuard no_grad;
  KVCache local;
  KVCache& kv = cache ? *cache : local;
  GenerateResult r;
  if (embeds.size(1) == 0) throw InputError("generate: empty input sequence");
  at::Tensor hidden = model.forward(embeds, positions, &kv);
  const int64_t prompt_len = kv.length();
  int64_t next_pos = positions.max().item<int64_t>() + 1;
  at::Generator gen = at::detail::createCPUGenerator(opts.seed);
  at::Tensor last = hidden.select(1, hidden.size(1) - 1);  // [B, d]
  const auto dev = model.tok_embeddings->weight.device();
  for (int64_t i = 0; i < opts.max_new_tokens; ++i) {
    const int64_t tok = pick_token(model.lm_logits(last)[0], opts, gen);
    if (std::find(opts.stop_tokens.begin(), opts.stop_tokens.end(), tok) !=
        opts.stop_tokens.end()) {
      r.stopped = true;
      break;
    }
    r.tokens.push_back(tok);
    if (i + 1 == opts.max_new_tokens) break;
    at::Tensor e = model.embed_ids(at::full({1, 1}, tok, at::TensorOptions(at::kLong).device(dev)));
    at::Tensor p = at::full({3, 1}, next_pos++, at::TensorOptions(at::kLong).device(dev));
    last = model.forward(e, p, &kv).select(1, 0);
  }
  kv.truncate(prompt_len);
  return r;
}

PooledHeadImpl::PooledHeadImpl(int64_t dim, int64_t out_dim) {
  if (out_dim > 0) proj = register_module("proj", torch::nn::Linear(dim, out_dim));
}

at::Tensor PooledHeadImpl::forward(const at::Tensor& hidden, const at::Tensor& mask) {
  at::Tensor pooled;
  if (mask.defined()) {
    at::Tensor m = mask.to(hidden.device(), hidden.scalar_type()).unsqueeze(-1);
    pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1);
  } else {
    pooled = hidden.mean(1);
  }
  return proj ? proj(pooled) : pooled;
}

ClassificationHeadImpl::ClassificationHeadImpl(int64_t dim, int64_t classes) {
  pool = register_module("pool", PooledHead(dim, 0));
  classifier = register_module("classifier", torch::nn::Linear(dim, classes));
}

at::Tensor ClassificationHeadImpl::forward(const at::Tensor& hidden, const at::Tensor& mask) {
  return classifier(pool(hidden, mask));
}

}  // namespace omni
