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

namespace {

// The decoding loop of generate() and generate_batch(): `hidden` [B, d] after each row's last
// prompt token, `next_pos` each row's next position; `step(ids [B, 1], positions [3, B, 1])`
// runs one token per row and returns the new hidden states [B, d]. Rows that have stopped are
// still fed (their tokens ignored) until every row has stopped or max_new_tokens is reached.
template <class Step>
std::vector<GenerateResult> decode_rows(FusionTransformerImpl& model, at::Tensor hidden,
                                        std::vector<int64_t> next_pos, const DecodeOptions& opts,
                                        Step&& step) {
  const auto B = static_cast<int64_t>(next_pos.size());
  std::vector<GenerateResult> out(size_t(B), GenerateResult{});
  std::vector<at::Generator> gens;
  for (int64_t i = 0; i < B; ++i) gens.push_back(at::detail::createCPUGenerator(opts.seed));
  std::vector<bool> done(size_t(B), false);
  const auto dev = model.tok_embeddings->weight.device();
  for (int64_t n = 0; n < opts.max_new_tokens; ++n) {
    const at::Tensor logits = model.lm_logits(hidden);  // [B, V]
    if (n == 0)
      for (int64_t i = 0; i < B; ++i)
        out[size_t(i)].prompt_logits = logits[i].detach().to(at::kCPU, at::kFloat);
    std::vector<int64_t> tok(static_cast<size_t>(B));
    for (int64_t i = 0; i < B; ++i) tok[size_t(i)] = pick_token(logits[i], opts, gens[size_t(i)]);
    bool all_done = true;
    for (int64_t i = 0; i < B; ++i) {
      GenerateResult& r = out[size_t(i)];
      if (done[size_t(i)]) continue;
      if (std::find(opts.stop_tokens.begin(), opts.stop_tokens.end(), tok[size_t(i)]) !=
          opts.stop_tokens.end()) {
        r.stopped = true;
        done[size_t(i)] = true;
        continue;
      }
      r.tokens.push_back(tok[size_t(i)]);
      all_done = false;
    }
    if (all_done || n + 1 == opts.max_new_tokens) break;
    const at::Tensor ids = at::tensor(tok, at::kLong).to(dev).view({B, 1});
    at::Tensor p = at::tensor(next_pos, at::kLong).to(dev).view({1, B, 1}).expand({3, B, 1});
    for (auto& np : next_pos) ++np;
    hidden = step(ids, p);
  }
  return out;
}

}  // namespace

GenerateResult generate(FusionTransformerImpl& model, const at::Tensor& embeds,
                        const at::Tensor& positions, const DecodeOptions& opts, KVCache* cache) {
  at::NoGradGuard no_grad;
  KVCache local;
  KVCache& kv = cache ? *cache : local;
  if (embeds.size(1) == 0) throw InputError("generate: empty input sequence");
  const at::Tensor hidden = model.forward(embeds, positions, &kv);
  const int64_t prompt_len = kv.length();
  std::vector<GenerateResult> r = decode_rows(
      model, hidden.select(1, hidden.size(1) - 1), {positions.max().item<int64_t>() + 1}, opts,
      [&](const at::Tensor& ids, const at::Tensor& p) {
        // One query at the end of the cache sees every key: the plain (causal) forward.
        return model.forward(model.embed_ids(ids), p.select(1, 0), &kv).select(1, 0);
      });
  kv.truncate(prompt_len);
  return std::move(r[0]);
}

std::vector<GenerateResult> generate_batch(FusionTransformerImpl& model,
                                           const std::vector<at::Tensor>& embeds,
                                           const std::vector<at::Tensor>& positions,
                                           const DecodeOptions& opts, const KVCache* prefix) {
  at::NoGradGuard no_grad;
  const auto B = static_cast<int64_t>(embeds.size());
  if (B == 0) return {};
  if (positions.size() != embeds.size())
    throw InputError("generate_batch: " + std::to_string(embeds.size()) + " prompts but " +
                     std::to_string(positions.size()) + " position tensors");
  const auto& w = model.tok_embeddings->weight;
  const int64_t dim = model.options.dim();
  KVCache kv;
  if (prefix) kv = *prefix;  // the tensors are shared; appending makes new ones
  if (kv.length() > 0 && kv.k[0].size(0) != 1)
    throw InputError("generate_batch: the prefix cache must have one row");
  const int64_t P = kv.length();
  int64_t n_max = 0;
  for (int64_t i = 0; i < B; ++i) {
    const at::Tensor& e = embeds[size_t(i)];
    const at::Tensor& p = positions[size_t(i)];
    if (e.dim() != 3 || e.size(0) != 1 || e.size(1) == 0 || e.size(2) != dim)
      throw InputError("generate_batch: prompt " + std::to_string(i) + " must be [1, L > 0, " +
                       std::to_string(dim) + "], got " + c10::str(e.sizes()));
    if (p.dim() != 2 || p.size(0) != 3 || p.size(1) != e.size(1))
      throw InputError("generate_batch: positions of prompt " + std::to_string(i) +
                       " must be [3, " + std::to_string(e.size(1)) + "], got " +
                       c10::str(p.sizes()));
    n_max = std::max(n_max, e.size(1));
  }
  // Right-padded prompts; `valid` marks the keys a row may see (the prefix, its own tokens).
  at::Tensor x = at::zeros({B, n_max, dim}, w.options());
  at::Tensor pos = at::zeros({3, B, n_max}, at::kLong);
  at::Tensor valid = at::zeros({B, P + n_max}, at::kBool);
  valid.slice(1, 0, P).fill_(true);
  std::vector<int64_t> next(static_cast<size_t>(B)), last(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i) {
    const int64_t n = embeds[size_t(i)].size(1);
    x[i].slice(0, 0, n).copy_(embeds[size_t(i)][0]);
    pos.select(1, i).slice(1, 0, n).copy_(positions[size_t(i)]);
    valid[i].slice(0, P, P + n).fill_(true);
    next[size_t(i)] = positions[size_t(i)].max().item<int64_t>() + 1;
    last[size_t(i)] = n - 1;
  }
  // Query j of a row sees the prefix and its row's tokens up to j; a padding query sees at least
  // itself, so no softmax row is empty (its output is never used).
  const at::Tensor causal =
      at::cat({at::ones({n_max, P}, at::kBool), at::ones({n_max, n_max}, at::kBool).tril()}, 1);
  at::Tensor attend = causal.unsqueeze(0) & valid.unsqueeze(1);
  attend.slice(2, P).logical_or_(at::eye(n_max).to(at::kBool).unsqueeze(0));
  const at::Tensor hidden = model.forward_masked(x, pos, kv, attend);
  const at::Tensor rows = at::tensor(last, at::kLong).to(hidden.device());
  const at::Tensor h_last =
      hidden.gather(1, rows.view({B, 1, 1}).expand({B, 1, dim})).squeeze(1);  // [B, d]
  const at::Tensor one = at::ones({B, 1}, at::kBool);
  return decode_rows(model, h_last, next, opts, [&](const at::Tensor& ids, const at::Tensor& p) {
    valid = at::cat({valid, one}, 1);
    return model.forward_masked(model.embed_ids(ids), p, kv, valid.unsqueeze(1)).select(1, 0);
  });
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
