#include "fusion/transformer.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "modalities/common/attention.h"
#include "modalities/common/gemv.h"

namespace omni {

std::vector<int64_t> FusionTransformerOptions::sections() const {
  if (!mrope_section_.empty()) return mrope_section_;
  const int64_t half = head_dim() / 2;
  const int64_t t = half / 4, h = (half - t) / 2;
  return {t, h, half - t - h};
}

void FusionTransformerOptions::validate() const {
  auto bad = [](const std::string& m) { throw ConfigError("FusionTransformer: " + m); };
  if (vocab_ < 1 || dim_ < 1 || layers_ < 0 || heads_ < 1 || kv_heads_ < 1)
    bad("vocab, dim, heads and kv_heads must be positive and layers >= 0");
  if (dim_ % heads_ != 0)
    bad("dim " + std::to_string(dim_) + " is not a multiple of heads " + std::to_string(heads_));
  if (head_dim() % 2 != 0) bad("head_dim " + std::to_string(head_dim()) + " must be even");
  if (heads_ % kv_heads_ != 0)
    bad("heads " + std::to_string(heads_) + " is not a multiple of kv_heads " +
        std::to_string(kv_heads_));
  const auto s = sections();
  if (s.size() != 3 || std::accumulate(s.begin(), s.end(), int64_t{0}) != head_dim() / 2 ||
      *std::min_element(s.begin(), s.end()) < 0)
    bad("mrope_section must be three non-negative numbers summing to head_dim/2 = " +
        std::to_string(head_dim() / 2));
}

void KVCache::truncate(int64_t n) {
  for (auto* list : {&k, &v})
    for (auto& t : *list)
      if (t.defined() && t.size(2) > n) t = t.slice(2, 0, n);
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_, bool weight_after_cast_)
    : eps(eps_), weight_after_cast(weight_after_cast_) {
  weight = register_parameter("weight", at::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  // Normalise in at least fp32: half-precision squares overflow / lose the mean.
  const auto compute = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor xf = x.to(compute);
  at::Tensor y = xf * at::rsqrt(xf.pow(2).mean(-1, true) + eps);
  if (weight_after_cast) return weight * y.to(x.scalar_type());
  return (y * weight.to(compute)).to(x.scalar_type());
}

MultiAxisRotary::MultiAxisRotary(int64_t head_dim, std::vector<int64_t> sections, double theta)
    : head_dim_(head_dim), sections_(std::move(sections)), theta_(theta) {}

MultiAxisRotary::MultiAxisRotary(int64_t head_dim, std::vector<int64_t> sections,
                                 at::Tensor inv_freq)
    : head_dim_(head_dim), sections_(std::move(sections)), theta_(0), inv_freq_(inv_freq) {
  if (!inv_freq_.defined() || inv_freq_.dim() != 1 || inv_freq_.size(0) != head_dim / 2)
    throw ConfigError(
        "MultiAxisRotary: inv_freq must be [head_dim / 2 = " + std::to_string(head_dim / 2) + "]");
}

std::pair<at::Tensor, at::Tensor> MultiAxisRotary::tables(const at::Tensor& positions,
                                                          at::ScalarType dtype) const {
  const auto compute = dtype == at::kDouble ? at::kDouble : at::kFloat;
  const auto opts = positions.options().dtype(compute);
  const int64_t half = head_dim_ / 2;
  at::Tensor inv_freq =
      inv_freq_.defined()
          ? inv_freq_.to(positions.device(), compute)
          : at::pow(theta_, -at::arange(0, half, opts.dtype(at::kDouble)) * 2.0 / double(head_dim_))
                .to(compute);
  at::Tensor pos = positions.to(compute);  // [3, B, L]
  // Frequency pair i rotates by the position on the axis its section belongs to.
  std::vector<at::Tensor> parts;
  int64_t begin = 0;
  for (int64_t axis = 0; axis < 3; ++axis) {
    const int64_t n = sections_[axis];
    if (n == 0) continue;
    parts.push_back(pos[axis].unsqueeze(-1) * inv_freq.slice(0, begin, begin + n));
    begin += n;
  }
  at::Tensor freqs = at::cat(parts, -1);  // [B, L, half]
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor MultiAxisRotary::apply(const at::Tensor& x, const at::Tensor& cos,
                                  const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor x1 = x.slice(-1, 0, half), x2 = x.slice(-1, half);
  at::Tensor rotated = at::cat({-x2, x1}, -1);
  return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1);
}

std::pair<at::Tensor, at::Tensor> MultiAxisRotary::head_tables(const at::Tensor& cos,
                                                               const at::Tensor& sin) {
  const int64_t half = sin.size(-1) / 2;
  return {cos.unsqueeze(2),
          at::cat({-sin.narrow(-1, 0, half), sin.narrow(-1, half, half)}, -1).unsqueeze(2)};
}

at::Tensor MultiAxisRotary::apply_heads(const at::Tensor& x, const at::Tensor& cos_heads,
                                        const at::Tensor& sin_signed) {
  // [x1, x2] -> [x2, x1] (a flip of the two halves); the signs of rotate_half are in sin_signed.
  const int64_t D = x.size(-1);
  const at::Tensor swapped =
      x.view({x.size(0), x.size(1), x.size(2), 2, D / 2}).flip({3}).view(x.sizes());
  return x * cos_heads + swapped * sin_signed;
}

FusionBlockImpl::FusionBlockImpl(const FusionTransformerOptions& o) : options(o) {
  using torch::nn::LinearOptions;
  const int64_t d = o.dim(), hd = o.head_dim();
  attn_norm = register_module("attn_norm", RMSNorm(d, o.norm_eps()));
  mlp_norm = register_module("mlp_norm", RMSNorm(d, o.norm_eps()));
  q_proj =
      register_module("q_proj", torch::nn::Linear(LinearOptions(d, o.heads() * hd).bias(false)));
  k_proj =
      register_module("k_proj", torch::nn::Linear(LinearOptions(d, o.kv_heads() * hd).bias(false)));
  v_proj =
      register_module("v_proj", torch::nn::Linear(LinearOptions(d, o.kv_heads() * hd).bias(false)));
  o_proj =
      register_module("o_proj", torch::nn::Linear(LinearOptions(o.heads() * hd, d).bias(false)));
  const int64_t f = o.ffn_hidden();
  gate_proj = register_module("gate_proj", torch::nn::Linear(LinearOptions(d, f).bias(false)));
  up_proj = register_module("up_proj", torch::nn::Linear(LinearOptions(d, f).bias(false)));
  down_proj = register_module("down_proj", torch::nn::Linear(LinearOptions(f, d).bias(false)));
}

const FusionBlockImpl::Fused& FusionBlockImpl::fused() {
  const std::array<const at::Tensor*, 5> w = {&q_proj->weight, &k_proj->weight, &v_proj->weight,
                                              &gate_proj->weight, &up_proj->weight};
  std::lock_guard<std::mutex> lock(fused_mutex_);
  bool stale = !fused_.qkv.defined();
  for (size_t i = 0; i < w.size(); ++i)
    stale = stale || fused_.ptr[i] != w[i]->data_ptr() || fused_.version[i] != w[i]->_version();
  if (stale) {
    fused_.qkv = at::cat({*w[0], *w[1], *w[2]}, 0);
    fused_.gate_up = at::cat({*w[3], *w[4]}, 0);
    for (size_t i = 0; i < w.size(); ++i) {
      fused_.ptr[i] = w[i]->data_ptr();
      fused_.version[i] = int64_t(w[i]->_version());
    }
  }
  return fused_;
}

at::Tensor FusionBlockImpl::forward(const at::Tensor& x, const at::Tensor& cos,
                                    const at::Tensor& sin, at::Tensor* k_cache, at::Tensor* v_cache,
                                    bool explicit_attention,
                                    const std::pair<at::Tensor, at::Tensor>* head_tables,
                                    const at::Tensor& attend) {
  const int64_t B = x.size(0), L = x.size(1), H = options.heads(), KV = options.kv_heads(),
                D = options.head_dim();
  // Fused projections only where no gradient flows (the concatenated weights are not leaves).
  const Fused* fw = at::GradMode::is_enabled() ? nullptr : &fused();
  at::Tensor h = attn_norm(x);
  at::Tensor q, k, v;
  if (fw) {
    // One matmul for q|k|v, and one rotary pass over the q and k heads together.
    const at::Tensor qkv = omni::linear(h, fw->qkv).view({B, L, H + 2 * KV, D});
    at::Tensor ch, sh;
    if (head_tables) {
      ch = head_tables->first;
      sh = head_tables->second;
    } else {
      std::tie(ch, sh) = MultiAxisRotary::head_tables(cos, sin);
    }
    const at::Tensor qk = MultiAxisRotary::apply_heads(qkv.narrow(2, 0, H + KV), ch, sh);
    q = qk.narrow(2, 0, H).transpose(1, 2);
    k = qk.narrow(2, H, KV).transpose(1, 2);
    v = qkv.narrow(2, H + KV, KV).transpose(1, 2);
  } else {
    q = MultiAxisRotary::apply(q_proj(h).view({B, L, H, D}).transpose(1, 2), cos, sin);
    k = MultiAxisRotary::apply(k_proj(h).view({B, L, KV, D}).transpose(1, 2), cos, sin);
    v = v_proj(h).view({B, L, KV, D}).transpose(1, 2);
  }
  if (k_cache && v_cache) {
    if (k_cache->defined()) {
      // A cache shared by every row (batch 1) is expanded to this batch.
      k = at::cat({k_cache->size(0) == B ? *k_cache : k_cache->expand({B, -1, -1, -1}), k}, 2);
      v = at::cat({v_cache->size(0) == B ? *v_cache : v_cache->expand({B, -1, -1, -1}), v}, 2);
    }
    *k_cache = k;
    *v_cache = v;
  }
  // GQA: query head i reads key/value head i / (H / KV). expand + reshape makes the same copy as
  // repeat_interleave with 2 ops instead of ~8 (it builds an index tensor and gathers), which
  // matters when decoding one token at a time.
  if (KV != H) {
    const int64_t T = k.size(2);
    k = k.unsqueeze(2).expand({B, KV, H / KV, T, D}).reshape({B, H, T, D});
    v = v.unsqueeze(2).expand({B, KV, H / KV, T, D}).reshape({B, H, T, D});
  }
  // Causal over the cache and this chunk, or the caller's mask instead.
  const bool causal = !attend.defined();
  at::Tensor a = explicit_attention ? attention_explicit(q, k, v, attend, causal)
                                    : attention(q, k, v, attend, causal);
  at::Tensor out =
      x + omni::linear(a.transpose(1, 2).reshape({B, L, H * D}), o_proj->weight, o_proj->bias);
  at::Tensor m = mlp_norm(out);
  if (fw) {
    const int64_t f = options.ffn_hidden();
    const at::Tensor gu = omni::linear(m, fw->gate_up);
    return out + omni::linear(at::silu(gu.narrow(-1, 0, f)) * gu.narrow(-1, f, f),
                              down_proj->weight, down_proj->bias);
  }
  return out + down_proj(at::silu(gate_proj(m)) * up_proj(m));
}

FusionTransformerImpl::FusionTransformerImpl(FusionTransformerOptions o)
    : options(std::move(o)), rotary_(options.head_dim(), options.sections(), options.rope_theta()) {
  options.validate();
  tok_embeddings = register_module(
      "tok_embeddings",
      torch::nn::Embedding(torch::nn::EmbeddingOptions(options.vocab(), options.dim())));
  // Small init keeps the tied LM head's logits in a sane range for random weights.
  {
    at::NoGradGuard g;
    tok_embeddings->weight.normal_(0.0, 0.02);
  }
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.layers(); ++i) blocks->push_back(FusionBlock(options));
  norm = register_module("norm", RMSNorm(options.dim(), options.norm_eps()));
}

at::Tensor FusionTransformerImpl::embed_ids(const at::Tensor& ids) {
  if (ids.numel() > 0) {
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= options.vocab())
      throw InputError("FusionTransformer: token id " + std::to_string(lo < 0 ? lo : hi) +
                       " outside the vocabulary [0, " + std::to_string(options.vocab()) + ")");
  }
  return tok_embeddings(ids.to(tok_embeddings->weight.device(), at::kLong));
}

at::Tensor FusionTransformerImpl::lm_logits(const at::Tensor& hidden) {
  return omni::linear(hidden, tok_embeddings->weight);
}

at::Tensor FusionTransformerImpl::forward(const at::Tensor& embeds, const at::Tensor& positions,
                                          KVCache* cache) {
  return run_blocks(embeds, positions, cache, {});
}

at::Tensor FusionTransformerImpl::forward_masked(const at::Tensor& embeds,
                                                 const at::Tensor& positions, KVCache& cache,
                                                 const at::Tensor& attend) {
  const int64_t T = cache.length();
  if (embeds.dim() != 3 || !attend.defined() || attend.scalar_type() != at::kBool ||
      attend.dim() != 3 || attend.size(0) != embeds.size(0) || attend.size(1) != embeds.size(1) ||
      attend.size(2) != T + embeds.size(1))
    throw InputError("FusionTransformer: the attention mask must be bool [B, L, T + L] = [" +
                     std::to_string(embeds.dim() == 3 ? embeds.size(0) : -1) + ", " +
                     std::to_string(embeds.dim() == 3 ? embeds.size(1) : -1) + ", " +
                     std::to_string(T) + " + L], got " +
                     (attend.defined() ? c10::str(attend.scalar_type(), " ", attend.sizes())
                                       : std::string("none")));
  if (T > 0 && cache.k[0].size(0) != 1 && cache.k[0].size(0) != embeds.size(0))
    throw InputError("FusionTransformer: the cache holds " + std::to_string(cache.k[0].size(0)) +
                     " rows, the input " + std::to_string(embeds.size(0)) +
                     " (a cache must have 1 row or the input's)");
  return run_blocks(embeds, positions, &cache,
                    attend.to(tok_embeddings->weight.device()).unsqueeze(1));
}

at::Tensor FusionTransformerImpl::run_blocks(const at::Tensor& embeds, const at::Tensor& positions,
                                             KVCache* cache, const at::Tensor& attend) {
  if (embeds.dim() != 3 || embeds.size(2) != options.dim())
    throw InputError("FusionTransformer: embeddings must be [B, L, " +
                     std::to_string(options.dim()) + "], got " + c10::str(embeds.sizes()));
  const int64_t B = embeds.size(0), L = embeds.size(1);
  at::Tensor pos = positions;
  if (pos.dim() == 2 && pos.size(0) == 3 && pos.size(1) == L)
    pos = pos.unsqueeze(1).expand({3, B, L});
  if (pos.dim() != 3 || pos.size(0) != 3 || pos.size(1) != B || pos.size(2) != L)
    throw InputError("FusionTransformer: positions must be [3, L] or [3, B, L] for L = " +
                     std::to_string(L) + ", got " + c10::str(positions.sizes()));
  const auto& w = tok_embeddings->weight;
  at::Tensor x = embeds.to(w.device(), w.scalar_type());
  auto [cos, sin] = rotary_.tables(pos.to(w.device()), w.scalar_type());
  // Without autograd the blocks use the per-head form of the tables (FusionBlockImpl::forward):
  // made once here for every layer.
  std::pair<at::Tensor, at::Tensor> heads;
  if (!at::GradMode::is_enabled()) heads = MultiAxisRotary::head_tables(cos, sin);
  if (cache && cache->k.size() != blocks->size()) {
    cache->k.assign(blocks->size(), at::Tensor());
    cache->v.assign(blocks->size(), at::Tensor());
  }
  for (size_t i = 0; i < blocks->size(); ++i) {
    auto blk = blocks->ptr<FusionBlockImpl>(i);
    x = blk->forward(x, cos, sin, cache ? &cache->k[i] : nullptr, cache ? &cache->v[i] : nullptr,
                     explicit_attention_, heads.first.defined() ? &heads : nullptr, attend);
  }
  return norm(x);
}

}  // namespace omni
