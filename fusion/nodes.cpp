#include "fusion/nodes.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "fusion/fusion_nodes.h"
#include "fusion/sequencer.h"
#include "modalities/common/encoder_setup.h"

namespace omni {

std::vector<int64_t> parse_id_list(const std::string& text, const std::string& what) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto b = item.find_first_not_of(" \t");
    if (b == std::string::npos) continue;
    item = item.substr(b, item.find_last_not_of(" \t") - b + 1);
    try {
      size_t used = 0;
      out.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw ConfigError(what + ": '" + item + "' is not an integer (expected e.g. \"1,2,3\")");
    }
  }
  return out;
}

std::string decode_byte_ids(const std::vector<int64_t>& ids) {
  std::string s;
  for (int64_t id : ids)
    if (id >= 0 && id < 256) s.push_back(static_cast<char>(id));
  return s;
}

Contract& add_fusion_model_params(Contract& c) {
  using P = FusionModelParams;
  return c.param(P::kVocab)
      .param(P::kDim)
      .param(P::kLayers)
      .param(P::kHeads)
      .param(P::kKvHeads)
      .param(P::kFfn)
      .param(P::kMropeSection)
      .param(P::kRopeTheta)
      .param(P::kWeights)
      .param(P::kPrefix)
      .param(P::kSeed)
      .param(P::kDevice)
      .param(P::kDtype);
}

FusionTransformer make_fusion_model(const Context& ctx) {
  using P = FusionModelParams;
  FusionTransformerOptions o;
  o.vocab(ctx.param(P::kVocab))
      .dim(ctx.param(P::kDim))
      .layers(ctx.param(P::kLayers))
      .heads(ctx.param(P::kHeads))
      .kv_heads(ctx.param(P::kKvHeads))
      .ffn(ctx.param(P::kFfn))
      .rope_theta(ctx.param(P::kRopeTheta))
      .mrope_section(parse_id_list(ctx.param(P::kMropeSection), "param 'mrope_section'"));
  const DeviceSpec spec = parse_device(ctx.param(P::kDevice), ctx.param(P::kDtype), /*where=*/{});
  FusionTransformer m{nullptr};
  with_seed(ctx.param(P::kSeed), [&] { m = FusionTransformer(o); });
  // Same loading and placement as the encoder nodes; the runtime's prefix names the node.
  load_and_place(*m, ctx.param(P::kWeights), ctx.param(P::kPrefix), spec);
  return m;
}

// ---- Generate ----

namespace {

// Tokens at the start of two prompts with the same embeddings and positions (what their KV caches
// share).
int64_t common_prefix(const at::Tensor& e1, const at::Tensor& p1, const at::Tensor& e2,
                      const at::Tensor& p2) {
  if (!e1.defined() || !e2.defined()) return 0;
  const int64_t n = std::min(e1.size(1), e2.size(1));
  if (n == 0) return 0;
  const at::Tensor same =
      p1.slice(1, 0, n)
          .eq(p2.slice(1, 0, n))
          .all(0)
          .logical_and(e1[0].slice(0, 0, n).eq(e2[0].slice(0, 0, n)).all(1).cpu());
  const at::Tensor differ = same.logical_not().nonzero();
  return differ.size(0) == 0 ? n : differ[0][0].item<int64_t>();
}

}  // namespace

Contract Generate::contract() {
  Contract c;
  c.doc(
       "Runs a FusedSequence through the fusion transformer and decodes an answer with the "
       "tied LM head (greedy, or sampling with temperature / top-k / top-p, seeded).")
      .input(kSequence)
      .input(kPrefill)
      .output(kText)
      .output(kIds)
      .output(kLogits)
      .param(kMaxNewTokens)
      .param(kDecoding)
      .param(kTemperature)
      .param(kTopK)
      .param(kTopP)
      .param(kDecodeSeed)
      .param(kStopTokens)
      .param(kStream)
      .param(kSharePrefix)
      .param(kBatchQuestions);
  add_fusion_model_params(c);
  return c;
}

void Generate::open(Context& ctx) {
  // Errors carry no node prefix: the runtime adds one ("node 'x' (Generate) failed in open()").
  if (!shared_) model_ = make_fusion_model(ctx);
  decode_.max_new_tokens = ctx.param(kMaxNewTokens);
  const std::string& mode = ctx.param(kDecoding);
  if (mode != "greedy" && mode != "sample")
    throw ConfigError("decoding must be greedy or sample, got '" + mode + "'");
  decode_.greedy = mode == "greedy";
  decode_.temperature = ctx.param(kTemperature);
  decode_.top_k = ctx.param(kTopK);
  decode_.top_p = ctx.param(kTopP);
  decode_.seed = static_cast<uint64_t>(ctx.param(kDecodeSeed));
  decode_.stop_tokens = parse_id_list(ctx.param(kStopTokens), "param 'stop_tokens'");
  if (decode_.max_new_tokens < 0 || decode_.top_k < 0 || decode_.top_p <= 0 || decode_.top_p > 1 ||
      (!decode_.greedy && decode_.temperature <= 0))
    throw ConfigError("need max_new_tokens >= 0, top_k >= 0, 0 < top_p <= 1 and temperature > 0");
  stream_ = ctx.param(kStream);
  share_prefix_ = ctx.param(kSharePrefix);
  batch_ = ctx.param(kBatchQuestions);
  if (stream_ && (share_prefix_ || batch_))
    throw ConfigError(
        "stream (one growing prompt over segments) cannot be combined with share_prefix or "
        "batch_questions (several prompts)");
  if (!share_prefix_ && !ctx.input_stream(kPrefill).empty())
    throw ConfigError("input 'prefill' is connected but share_prefix is off (set share_prefix)");
}

int64_t Generate::cached_prefix(const at::Tensor& embeds, const at::Tensor& positions) const {
  return common_prefix(cached_embeds_, cached_positions_, embeds, positions);
}

int64_t Generate::reuse(Context& ctx, const at::Tensor& embeds, const at::Tensor& positions,
                        int64_t most) {
  const int64_t keep = std::min(cached_prefix(embeds, positions), most);
  if (keep < cache_.length()) {
    cache_.truncate(keep);
    cached_embeds_ = cached_embeds_.slice(1, 0, keep);
    cached_positions_ = cached_positions_.slice(1, 0, keep);
  }
  if (prefilled_ > keep) ctx.count("prefill_mismatch");  // prefilled tokens computed in vain
  prefilled_ = 0;
  ctx.count("reused_tokens", keep);
  return keep;
}

void Generate::extend_cache(const at::Tensor& embeds, const at::Tensor& positions, int64_t from,
                            int64_t to) {
  if (to > from) model_->forward(embeds.slice(1, from, to), positions.slice(1, from, to), &cache_);
  cached_embeds_ = embeds.slice(1, 0, to);
  cached_positions_ = positions.slice(1, 0, to);
}

Flow Generate::process(Context& ctx) {
  at::NoGradGuard no_grad;
  try {  // our own errors keep their kind; the runtime names node and time
    if (const auto pre = ctx.input(kPrefill); !pre.empty() && share_prefix_) {
      const FusedSequence& s = pre.get();
      const at::Tensor embeds = embed_sequence(*model_, s);
      const int64_t had = prefilled_;
      const int64_t keep = std::min(cached_prefix(embeds, s.positions), s.length());
      if (keep < cache_.length()) cache_.truncate(keep);
      if (had > keep) ctx.count("prefill_mismatch");
      extend_cache(embeds, s.positions, keep, s.length());
      prefilled_ = s.length();
      ctx.count("prefilled_tokens", s.length() - keep);
    }
    if (const auto pk = ctx.input(kSequence); !pk.empty()) {
      if (batch_)
        held_.push_back({pk.get(), pk.timestamp()});
      else
        answer(ctx, pk.get(), pk.timestamp());
    }
  } catch (const c10::Error& e) {
    throw Error("libtorch error: " + std::string(e.what_without_backtrace()));
  }
  return Flow::kContinue;
}

void Generate::close(Context& ctx) {
  at::NoGradGuard no_grad;
  try {
    answer_batch(ctx);
  } catch (const c10::Error& e) {
    throw Error("libtorch error: " + std::string(e.what_without_backtrace()));
  }
}

void Generate::answer(Context& ctx, const FusedSequence& seq, Timestamp ts) {
  const at::Tensor embeds = embed_sequence(*model_, seq);
  GenerateResult r;
  if (share_prefix_ && embeds.size(1) > 0) {
    // The cache keeps this prompt afterwards (generate rewinds it to the prompt).
    const int64_t keep = reuse(ctx, embeds, seq.positions, embeds.size(1) - 1);
    r = generate(*model_, embeds.slice(1, keep), seq.positions.slice(1, keep), decode_, &cache_);
    cached_embeds_ = embeds;
    cached_positions_ = seq.positions;
  } else {
    if (!stream_ || seq.segment == 0) cache_.clear();
    r = generate(*model_, embeds, seq.positions, decode_, &cache_);
  }
  emit_result(ctx, r, ts);
}

void Generate::answer_batch(Context& ctx) {
  if (held_.empty()) return;
  std::vector<Held> held = std::move(held_);
  held_.clear();
  if (held.size() == 1) {
    answer(ctx, held[0].seq, held[0].ts);
    return;
  }
  std::vector<at::Tensor> embeds, positions;
  for (const Held& h : held) {
    embeds.push_back(embed_sequence(*model_, h.seq));
    positions.push_back(h.seq.positions);
  }
  std::vector<GenerateResult> results;
  if (share_prefix_) {
    // The start every prompt shares (each keeps at least one token of its own) runs once.
    int64_t p = embeds[0].size(1) - 1;
    for (size_t k = 1; k < held.size(); ++k)
      p = std::min({p, embeds[k].size(1) - 1,
                    common_prefix(embeds[0], positions[0], embeds[k], positions[k])});
    p = std::max<int64_t>(p, 0);
    const int64_t keep = reuse(ctx, embeds[0], positions[0], p);
    extend_cache(embeds[0], positions[0], keep, p);
    std::vector<at::Tensor> rest_embeds, rest_positions;
    for (size_t k = 0; k < held.size(); ++k) {
      rest_embeds.push_back(embeds[k].slice(1, p));
      rest_positions.push_back(positions[k].slice(1, p));
    }
    results = generate_batch(*model_, rest_embeds, rest_positions, decode_, &cache_);
  } else {
    results = generate_batch(*model_, embeds, positions, decode_);
  }
  ctx.count("batches");
  for (size_t k = 0; k < held.size(); ++k) emit_result(ctx, results[k], held[k].ts);
}

void Generate::emit_result(Context& ctx, const GenerateResult& r, Timestamp ts) {
  ctx.count("generated_tokens", static_cast<int64_t>(r.tokens.size()));
  if (!r.stopped) ctx.count("hit_max_new_tokens");
  ctx.emit(kText, decode_byte_ids(r.tokens), ts);
  ctx.emit(kIds, r.tokens, ts);
  if (r.prompt_logits.defined()) ctx.emit(kLogits, r.prompt_logits, ts);
}

// ---- FusionEncode ----

Contract FusionEncode::contract() {
  Contract c;
  c.doc(
       "Runs a FusedSequence through the fusion transformer and emits the mean of the final "
       "hidden states (a pooled embedding [dim]).")
      .input(kSequence)
      .output(kEmbedding);
  add_fusion_model_params(c);
  return c;
}

void FusionEncode::open(Context& ctx) {
  model_ = make_fusion_model(ctx);
  pool_ = PooledHead(model_->options.dim());
}

Flow FusionEncode::process(Context& ctx) {
  const auto pk = ctx.input(kSequence);
  if (pk.empty()) return Flow::kContinue;
  const FusedSequence& seq = pk.get();
  at::NoGradGuard no_grad;
  at::Tensor out;
  try {
    const at::Tensor h = model_->forward(embed_sequence(*model_, seq), seq.positions);
    out = pool_(h)[0].to(at::kCPU, at::kFloat);
  } catch (const c10::Error& e) {
    throw Error("libtorch error: " + std::string(e.what_without_backtrace()));
  }
  ctx.emit(kEmbedding, out, pk.timestamp());
  return Flow::kContinue;
}

// ---- registration ----

void register_fusion_nodes(Registry& r) {
  r.add<UnifiedSequencer>("UnifiedSequencer");
  r.add<Generate>("Generate");
  r.add<FusionEncode>("FusionEncode");
}

}  // namespace omni
