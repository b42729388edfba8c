#include "fusion/nodes.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

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

Contract Generate::contract() {
  Contract c;
  c.doc(
       "Runs a FusedSequence through the fusion transformer and decodes an answer with the "
       "tied LM head (greedy, or sampling with temperature / top-k / top-p, seeded).")
      .input(kSequence)
      .output(kText)
      .output(kIds)
      .param(kMaxNewTokens)
      .param(kDecoding)
      .param(kTemperature)
      .param(kTopK)
      .param(kTopP)
      .param(kDecodeSeed)
      .param(kStopTokens)
      .param(kStream);
  add_fusion_model_params(c);
  return c;
}

void Generate::open(Context& ctx) {
  // Errors carry no node prefix: the runtime adds one ("node 'x' (Generate) failed in open()").
  model_ = make_fusion_model(ctx);
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
}

Flow Generate::process(Context& ctx) {
  const auto pk = ctx.input(kSequence);
  if (pk.empty()) return Flow::kContinue;
  const FusedSequence& seq = pk.get();
  at::NoGradGuard no_grad;
  if (!stream_ || seq.segment == 0) cache_.clear();
  GenerateResult r;
  try {
    const at::Tensor embeds = embed_sequence(*model_, seq);
    r = generate(*model_, embeds, seq.positions, decode_, &cache_);
  } catch (
      const c10::Error& e) {  // our own errors keep their kind; the runtime names node and time
    throw Error("libtorch error: " + std::string(e.what_without_backtrace()));
  }
  ctx.count("generated_tokens", static_cast<int64_t>(r.tokens.size()));
  if (!r.stopped) ctx.count("hit_max_new_tokens");
  ctx.emit(kText, decode_byte_ids(r.tokens), pk.timestamp());
  ctx.emit(kIds, r.tokens, pk.timestamp());
  return Flow::kContinue;
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
