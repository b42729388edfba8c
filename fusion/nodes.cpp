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
  FusionTransformerOptions d;
  return c.param("vocab", d.vocab(), "text vocabulary (byte tokenizer: 272)")
      .param("dim", d.dim(), "model width (encoders' out_dim must match)")
      .param("layers", d.layers(), "transformer blocks")
      .param("heads", d.heads(), "query heads")
      .param("kv_heads", d.kv_heads(), "key/value heads (grouped-query attention)")
      .param("ffn", int64_t{0}, "SwiGLU hidden size (0: 8/3 x dim rounded up to 64)")
      .param("mrope_section", "", "rotary pairs for t,h,w, e.g. \"4,6,6\" (empty: 1/4,3/8,3/8)")
      .param("rope_theta", 10000.0, "rotary base")
      .param("weights", "", "safetensors file (empty: random init with `seed`)")
      .param("prefix", "", "key prefix of the transformer's tensors in the weights file")
      .param("seed", int64_t{0}, "seed of the random init when no weights are given")
      .param("device", "cpu", "cpu, cuda or cuda:N")
      .param("dtype", "float32", "float32; bfloat16 / float16 on CUDA");
}

FusionTransformer make_fusion_model(const Params& p, const std::string& where) {
  FusionTransformerOptions o;
  o.vocab(p.get_int("vocab"))
      .dim(p.get_int("dim"))
      .layers(p.get_int("layers"))
      .heads(p.get_int("heads"))
      .kv_heads(p.get_int("kv_heads"))
      .ffn(p.get_int("ffn"))
      .rope_theta(p.get_double("rope_theta"))
      .mrope_section(parse_id_list(p.get_string("mrope_section"), where + " mrope_section"));
  const DeviceSpec spec = parse_device(p.get_string("device"), p.get_string("dtype"), where);
  FusionTransformer m{nullptr};
  try {
    with_seed(p.get_int("seed"), [&] { m = FusionTransformer(o); });
  } catch (const ConfigError& e) {
    throw ConfigError(where + ": " + e.what());
  }
  // Same loading, placement and error context as the encoder nodes.
  load_and_place(*m, p.get_string("weights"), p.get_string("prefix"), spec, where);
  return m;
}

// ---- Generate ----

Contract Generate::contract() {
  Contract c;
  c.doc(
       "Runs a FusedSequence through the fusion transformer and decodes an answer with the "
       "tied LM head (greedy, or sampling with temperature / top-k / top-p, seeded).")
      .input<FusedSequence>("sequence", "the unified token sequence")
      .output<std::string>("text", "decoded text (byte tokenizer; special tokens skipped)")
      .output<std::vector<int64_t>>("ids", "generated token ids (without the stop token)")
      .param("max_new_tokens", int64_t{32}, "upper bound on generated tokens")
      .param("decoding", "greedy", "greedy or sample")
      .param("temperature", 1.0, "sampling temperature")
      .param("top_k", int64_t{0}, "keep the k most likely tokens when sampling (0: all)")
      .param("top_p", 1.0, "nucleus: keep the smallest set reaching this probability")
      .param("decode_seed", int64_t{0}, "sampling seed (same seed, same answer)")
      .param("stop_tokens", "258", "comma-separated ids that end generation (<|eos|> = 258)")
      .param("stream", false,
             "keep the KV cache across segments (a streaming sequencer's later segments are "
             "appended instead of starting over)");
  add_fusion_model_params(c);
  return c;
}

void Generate::open(Context& ctx) {
  const Params& p = ctx.params();
  const std::string where = ctx.node_name() + " (Generate)";
  model_ = make_fusion_model(p, where);
  decode_.max_new_tokens = p.get_int("max_new_tokens");
  const std::string mode = p.get_string("decoding");
  if (mode != "greedy" && mode != "sample")
    throw ConfigError(where + ": decoding must be greedy or sample, got '" + mode + "'");
  decode_.greedy = mode == "greedy";
  decode_.temperature = p.get_double("temperature");
  decode_.top_k = p.get_int("top_k");
  decode_.top_p = p.get_double("top_p");
  decode_.seed = static_cast<uint64_t>(p.get_int("decode_seed"));
  decode_.stop_tokens = parse_id_list(p.get_string("stop_tokens"), where + " stop_tokens");
  if (decode_.max_new_tokens < 0 || decode_.top_k < 0 || decode_.top_p <= 0 || decode_.top_p > 1 ||
      (!decode_.greedy && decode_.temperature <= 0))
    throw ConfigError(where +
                      ": need max_new_tokens >= 0, top_k >= 0, 0 < top_p <= 1 and "
                      "temperature > 0");
  stream_ = p.get_bool("stream");
}

Flow Generate::process(Context& ctx) {
  const Packet& pk = ctx.input(0);
  if (pk.empty()) return Flow::kContinue;
  const FusedSequence& seq = pk.get<FusedSequence>();
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
  ctx.emit<std::string>("text", decode_byte_ids(r.tokens), pk.timestamp());
  ctx.emit<std::vector<int64_t>>("ids", r.tokens, pk.timestamp());
  return Flow::kContinue;
}

// ---- FusionEncode ----

Contract FusionEncode::contract() {
  Contract c;
  c.doc(
       "Runs a FusedSequence through the fusion transformer and emits the mean of the final "
       "hidden states (a pooled embedding [dim]).")
      .input<FusedSequence>("sequence", "the unified token sequence")
      .output<at::Tensor>("embedding", "pooled embedding [dim] (float32, CPU)");
  add_fusion_model_params(c);
  return c;
}

void FusionEncode::open(Context& ctx) {
  model_ = make_fusion_model(ctx.params(), ctx.node_name() + " (FusionEncode)");
  pool_ = PooledHead(model_->options.dim());
}

Flow FusionEncode::process(Context& ctx) {
  const Packet& pk = ctx.input(0);
  if (pk.empty()) return Flow::kContinue;
  const FusedSequence& seq = pk.get<FusedSequence>();
  at::NoGradGuard no_grad;
  at::Tensor out;
  try {
    const at::Tensor h = model_->forward(embed_sequence(*model_, seq), seq.positions);
    out = pool_(h)[0].to(at::kCPU, at::kFloat);
  } catch (const c10::Error& e) {
    throw Error("libtorch error: " + std::string(e.what_without_backtrace()));
  }
  ctx.emit<at::Tensor>("embedding", out, pk.timestamp());
  return Flow::kContinue;
}

// ---- registration ----

void register_fusion_nodes(Registry& r) {
  r.add<UnifiedSequencer>("UnifiedSequencer");
  r.add<Generate>("Generate");
  r.add<FusionEncode>("FusionEncode");
}

}  // namespace omni
