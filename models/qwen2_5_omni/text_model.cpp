#include "models/qwen2_5_omni/text_model.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>

#include "core/error.h"
#include "modalities/common/attention.h"
#include "modalities/common/checkpoint_config.h"
#include "modalities/common/gemv.h"

namespace omni::qwen {

namespace {

[[noreturn]] void bad_config(const std::string& m) {
  throw ConfigError("Qwen2.5-Omni text config: " + m);
}

int64_t get_int(const nlohmann::json& c, const char* key, std::optional<int64_t> fallback = {}) {
  auto it = c.find(key);
  if (it == c.end() || it->is_null()) {
    if (fallback) return *fallback;
    bad_config(std::string("'") + key + "' is missing");
  }
  if (!it->is_number_integer())
    bad_config(std::string("'") + key + "' must be an integer, found " + it->dump());
  return it->get<int64_t>();
}

double get_double(const nlohmann::json& c, const char* key, double fallback) {
  auto it = c.find(key);
  if (it == c.end() || it->is_null()) return fallback;
  if (!it->is_number())
    bad_config(std::string("'") + key + "' must be a number, found " + it->dump());
  return it->get<double>();
}

// Reads mrope_section / rope type from one rope object (rope_parameters or rope_scaling).
void read_rope_object(const nlohmann::json& r, const char* where, TextModelOptions& o) {
  if (!r.is_object()) bad_config(std::string("'") + where + "' must be an object");
  for (const char* key : {"rope_type", "type"}) {
    auto it = r.find(key);
    if (it == r.end() || it->is_null()) continue;
    const std::string t = it->is_string() ? it->get<std::string>() : it->dump();
    if (t != "default" && t != "mrope")
      bad_config(std::string(where) + "." + key + " '" + t +
                 "' is not supported (only default multimodal rope)");
  }
  if (auto it = r.find("mrope_section"); it != r.end() && !it->is_null()) {
    if (!it->is_array()) bad_config(std::string(where) + ".mrope_section must be a list");
    o.mrope_section.clear();
    for (const auto& x : *it) {
      if (!x.is_number_integer())
        bad_config(std::string(where) + ".mrope_section holds a non-integer: " + x.dump());
      o.mrope_section.push_back(x.get<int64_t>());
    }
  }
  if (auto it = r.find("rope_theta"); it != r.end() && !it->is_null()) {
    if (!it->is_number()) bad_config(std::string(where) + ".rope_theta must be a number");
    o.rope_theta = it->get<double>();
  }
}

}  // namespace

void TextModelOptions::validate() const {
  if (vocab_size < 1 || hidden_size < 1 || intermediate_size < 1 || num_hidden_layers < 0 ||
      num_attention_heads < 1 || num_key_value_heads < 1 || head_dim < 0)
    bad_config(
        "vocab_size, hidden_size, intermediate_size, num_attention_heads and "
        "num_key_value_heads must be positive, num_hidden_layers >= 0");
  for (auto [name, v] : {std::pair<const char*, int64_t>{"vocab_size", vocab_size},
                         {"hidden_size", hidden_size},
                         {"intermediate_size", intermediate_size},
                         {"num_hidden_layers", num_hidden_layers},
                         {"num_attention_heads", num_attention_heads},
                         {"num_key_value_heads", num_key_value_heads},
                         {"head_dim", head_dim}})
    if (v > kMaxConfigDimension)
      bad_config(std::string(name) + " " + std::to_string(v) + " is over the " +
                 std::to_string(kMaxConfigDimension) + " a config may give a size");
  if (head_dim == 0 && hidden_size % num_attention_heads != 0)
    bad_config("hidden_size " + std::to_string(hidden_size) + " is not a multiple of " +
               "num_attention_heads " + std::to_string(num_attention_heads));
  const int64_t hd = resolved_head_dim();
  if (hd % 2 != 0) bad_config("head_dim " + std::to_string(hd) + " must be even");
  if (num_attention_heads % num_key_value_heads != 0)
    bad_config("num_attention_heads " + std::to_string(num_attention_heads) +
               " is not a multiple of num_key_value_heads " + std::to_string(num_key_value_heads));
  if (mrope_section.size() != 3 ||
      std::accumulate(mrope_section.begin(), mrope_section.end(), int64_t{0}) != hd / 2 ||
      *std::min_element(mrope_section.begin(), mrope_section.end()) < 0)
    bad_config("mrope_section must be three non-negative numbers summing to head_dim / 2 = " +
               std::to_string(hd / 2));
  if (!(rope_theta > 0)) bad_config("rope_theta must be positive");
  if (!(rms_norm_eps >= 0)) bad_config("rms_norm_eps must be >= 0");
  if (!at::isFloatingType(dtype)) bad_config("the model dtype must be floating point");
}

TextModelOptions TextModelOptions::from_config(const nlohmann::json& c) {
  if (!c.is_object()) bad_config("expected a JSON object");
  TextModelOptions o;
  o.vocab_size = get_int(c, "vocab_size");
  o.hidden_size = get_int(c, "hidden_size");
  o.intermediate_size = get_int(c, "intermediate_size");
  o.num_hidden_layers = get_int(c, "num_hidden_layers");
  o.num_attention_heads = get_int(c, "num_attention_heads");
  o.num_key_value_heads = get_int(c, "num_key_value_heads", o.num_attention_heads);
  o.head_dim = get_int(c, "head_dim", 0);
  o.rms_norm_eps = get_double(c, "rms_norm_eps", 1e-6);
  // transformers 5: rope_parameters holds theta and sections; older: rope_theta + rope_scaling.
  o.rope_theta = get_double(c, "rope_theta", o.rope_theta);
  if (auto it = c.find("rope_scaling"); it != c.end() && !it->is_null())
    read_rope_object(*it, "rope_scaling", o);
  if (auto it = c.find("rope_parameters"); it != c.end() && !it->is_null())
    read_rope_object(*it, "rope_parameters", o);
  if (auto it = c.find("tie_word_embeddings"); it != c.end() && !it->is_null()) {
    if (!it->is_boolean()) bad_config("tie_word_embeddings must be true or false");
    o.tie_word_embeddings = it->get<bool>();
  }
  if (auto it = c.find("hidden_act"); it != c.end() && !it->is_null())
    if (!it->is_string() || it->get<std::string>() != "silu")
      bad_config("hidden_act " + it->dump() + " is not supported (only silu)");
  if (auto it = c.find("use_sliding_window"); it != c.end() && it->is_boolean() && it->get<bool>())
    bad_config("sliding-window attention (use_sliding_window) is not supported");
  if (auto it = c.find("layer_types"); it != c.end() && it->is_array())
    for (const auto& t : *it)
      if (!t.is_string() || t.get<std::string>() != "full_attention")
        bad_config("layer type " + t.dump() + " is not supported (only full_attention)");
  o.validate();
  return o;
}

at::Tensor default_rope_inv_freq(int64_t head_dim, double theta) {
  // transformers: 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim)), in fp32.
  const at::Tensor e = at::arange(0, head_dim, 2, at::TensorOptions(at::kFloat)) / head_dim;
  return at::reciprocal(at::pow(theta, e));
}

TextAttentionImpl::TextAttentionImpl(const TextModelOptions& o)
    : heads_(o.num_attention_heads),
      kv_heads_(o.num_key_value_heads),
      head_dim_(o.resolved_head_dim()) {
  using torch::nn::LinearOptions;
  const int64_t d = o.hidden_size;
  q_proj = register_module("q_proj", omni::nn::Linear(LinearOptions(d, heads_ * head_dim_)));
  k_proj = register_module("k_proj", omni::nn::Linear(LinearOptions(d, kv_heads_ * head_dim_)));
  v_proj = register_module("v_proj", omni::nn::Linear(LinearOptions(d, kv_heads_ * head_dim_)));
  o_proj =
      register_module("o_proj", omni::nn::Linear(LinearOptions(heads_ * head_dim_, d).bias(false)));
}

at::Tensor TextAttentionImpl::forward(const at::Tensor& x,
                                      const std::pair<at::Tensor, at::Tensor>& rot,
                                      at::Tensor* k_cache, at::Tensor* v_cache) {
  const int64_t B = x.size(0), L = x.size(1), H = heads_, KV = kv_heads_, D = head_dim_;
  // Rotary in the [B, L, heads, D] layout (the same products and sums as transformers'
  // q * cos + rotate_half(q) * sin, in the model's dtype).
  at::Tensor q = MultiAxisRotary::apply_heads(q_proj(x).view({B, L, H, D}), rot.first, rot.second)
                     .transpose(1, 2);
  at::Tensor k = MultiAxisRotary::apply_heads(k_proj(x).view({B, L, KV, D}), rot.first, rot.second)
                     .transpose(1, 2);
  at::Tensor v = v_proj(x).view({B, L, KV, D}).transpose(1, 2);
  if (k_cache && v_cache) {
    if (k_cache->defined()) {
      k = at::cat({*k_cache, k}, 2);
      v = at::cat({*v_cache, v}, 2);
    }
    *k_cache = k;
    *v_cache = v;
  }
  if (L == 1) {
    // One decoding step: the H / KV query heads that share a key/value head attend to it
    // together, without a copy of the whole cache per query head (at a 920-token context that
    // copy and its fp32 conversion moved ~1 GB per token) and without libtorch's batched
    // products, whose OpenBLAS threads fought its OpenMP threads for the cores.
    if (auto a = decode_attention(q.reshape({B, KV, H / KV, D}), k, v))
      return o_proj(a->reshape({B, 1, H * D}));
  }
  if (KV != H) {  // GQA: query head i reads key/value head i / (H / KV)
    const int64_t T = k.size(2);
    k = k.unsqueeze(2).expand({B, KV, H / KV, T, D}).reshape({B, H, T, D});
    v = v.unsqueeze(2).expand({B, KV, H / KV, T, D}).reshape({B, H, T, D});
  }
  // Causal, aligned to the end of the keys: a step on top of a cache sees the whole cache.
  const at::Tensor a = attention(q, k, v, {}, /*causal=*/true);
  return o_proj(a.transpose(1, 2).reshape({B, L, H * D}));
}

TextMLPImpl::TextMLPImpl(int64_t hidden, int64_t intermediate) {
  using torch::nn::LinearOptions;
  gate_proj = register_module("gate_proj",
                              omni::nn::Linear(LinearOptions(hidden, intermediate).bias(false)));
  up_proj =
      register_module("up_proj", omni::nn::Linear(LinearOptions(hidden, intermediate).bias(false)));
  down_proj = register_module("down_proj",
                              omni::nn::Linear(LinearOptions(intermediate, hidden).bias(false)));
}

at::Tensor TextMLPImpl::forward(const at::Tensor& x) {
  return down_proj(at::silu(gate_proj(x)) * up_proj(x));
}

DecoderLayerImpl::DecoderLayerImpl(const TextModelOptions& o) {
  self_attn = register_module("self_attn", TextAttention(o));
  mlp = register_module("mlp", TextMLP(o.hidden_size, o.intermediate_size));
  input_layernorm = register_module(
      "input_layernorm", RMSNorm(o.hidden_size, o.rms_norm_eps, /*weight_after_cast=*/true));
  post_attention_layernorm =
      register_module("post_attention_layernorm",
                      RMSNorm(o.hidden_size, o.rms_norm_eps, /*weight_after_cast=*/true));
}

at::Tensor DecoderLayerImpl::forward(const at::Tensor& x,
                                     const std::pair<at::Tensor, at::Tensor>& rot,
                                     at::Tensor* k_cache, at::Tensor* v_cache) {
  const at::Tensor h = x + self_attn(input_layernorm(x), rot, k_cache, v_cache);
  return h + mlp(post_attention_layernorm(h));
}

TextModelImpl::TextModelImpl(TextModelOptions o)
    : options_((o.validate(), std::move(o))),
      rotary_(options_.resolved_head_dim(), options_.mrope_section,
              default_rope_inv_freq(options_.resolved_head_dim(), options_.rope_theta)) {
  const auto& c = options_;
  auto place = [&](torch::nn::Module& m) { m.to(c.device, c.dtype); };
  embed_tokens = register_module(
      "embed_tokens", torch::nn::Embedding(embedding_options(c.vocab_size, c.hidden_size)));
  place(*embed_tokens);
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    DecoderLayer layer(c);
    place(*layer);
    layers->push_back(layer);
  }
  norm =
      register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps, /*weight_after_cast=*/true));
  place(*norm);
  if (!c.tie_word_embeddings) {
    lm_head = register_module(
        "lm_head",
        omni::nn::Linear(torch::nn::LinearOptions(c.hidden_size, c.vocab_size).bias(false)));
    place(*lm_head);
  }
}

at::Tensor TextModelImpl::embed(const at::Tensor& ids) {
  if (!ids.defined() || at::isFloatingType(ids.scalar_type()) || ids.scalar_type() == at::kBool)
    throw InputError("Qwen text model: token ids must be an integer tensor");
  if (ids.numel() > 0) {
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= options_.vocab_size)
      throw InputError("Qwen text model: token id " + std::to_string(lo < 0 ? lo : hi) +
                       " outside the vocabulary [0, " + std::to_string(options_.vocab_size) + ")");
  }
  return embed_tokens(ids.to(device(), at::kLong));
}

at::Tensor TextModelImpl::hidden_states(const at::Tensor& embeds, const at::Tensor& position_ids,
                                        KVCache* cache) {
  const int64_t Hd = options_.hidden_size;
  if (!embeds.defined() || embeds.dim() != 3 || embeds.size(2) != Hd)
    throw InputError("Qwen text model: embeddings must be [B, L, " + std::to_string(Hd) +
                     "], got " + (embeds.defined() ? c10::str(embeds.sizes()) : "none"));
  if (!at::isFloatingType(embeds.scalar_type()))
    throw InputError("Qwen text model: embeddings must be floating point");
  const int64_t B = embeds.size(0), L = embeds.size(1);
  if (L == 0) throw InputError("Qwen text model: empty input (L = 0)");
  if (!position_ids.defined() || at::isFloatingType(position_ids.scalar_type()))
    throw InputError("Qwen text model: position_ids must be an integer tensor [3, B, L]");
  at::Tensor pos = position_ids;
  if (pos.dim() == 2 && pos.size(0) == 3 && pos.size(1) == L)
    pos = pos.unsqueeze(1).expand({3, B, L});
  if (pos.dim() != 3 || pos.size(0) != 3 || pos.size(1) != B || pos.size(2) != L)
    throw InputError(
        "Qwen text model: position_ids must be [3, B, L] (or [3, L]) for B = " + std::to_string(B) +
        ", L = " + std::to_string(L) + ", got " + c10::str(position_ids.sizes()));
  const size_t n_layers = layers->size();
  if (cache) {
    if (cache->k.size() != n_layers || cache->v.size() != n_layers) {
      if (cache->length() != 0)
        throw InputError("Qwen text model: the KV cache holds " + std::to_string(cache->k.size()) +
                         " layers, the model has " + std::to_string(n_layers));
      cache->k.assign(n_layers, at::Tensor());
      cache->v.assign(n_layers, at::Tensor());
    }
    if (cache->length() > 0 && cache->k[0].size(0) != B)
      throw InputError("Qwen text model: the KV cache has batch " +
                       std::to_string(cache->k[0].size(0)) + ", the input " + std::to_string(B));
  }
  at::Tensor x = embeds.to(device(), dtype());
  // cos/sin computed in fp32 and cast to the model's dtype, as transformers does.
  auto [cos, sin] = rotary_.tables(pos.to(device(), at::kLong), dtype());
  const auto rot = MultiAxisRotary::head_tables(cos, sin);
  for (size_t i = 0; i < n_layers; ++i)
    x = layers->ptr<DecoderLayerImpl>(i)->forward(x, rot, cache ? &cache->k[i] : nullptr,
                                                  cache ? &cache->v[i] : nullptr);
  return norm(x);
}

at::Tensor TextModelImpl::logits(const at::Tensor& hidden, std::optional<at::ScalarType> dtype) {
  at::Tensor out = lm_head ? lm_head(hidden) : omni::linear(hidden, embed_tokens->weight);
  return dtype ? out.to(*dtype) : out;
}

at::Tensor TextModelImpl::forward(const at::Tensor& embeds, const at::Tensor& position_ids,
                                  KVCache* cache, std::optional<at::ScalarType> dtype) {
  return logits(hidden_states(embeds, position_ids, cache), dtype);
}

}  // namespace omni::qwen
