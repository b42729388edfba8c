#include "models/qwen2_5_omni/thinker.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/utils.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "modalities/common/checkpoint.h"
#include "modalities/common/deferred_init.h"
#include "modalities/common/torch_compat.h"
#include "modalities/text/hf_tokenizer.h"
#include "models/qwen2_5_omni/audio_tower.h"
#include "models/qwen2_5_omni/generation.h"
#include "models/qwen2_5_omni/sequence.h"
#include "models/qwen2_5_omni/text_model.h"
#include "models/qwen2_5_omni/vision_tower.h"

namespace omni::qwen {

namespace fs = std::filesystem;

namespace {

const char* const kFamilies[] = {"qwen2_5_omni", "qwen2_5_omni_thinker"};

bool supported_family(const std::string& name) {
  return std::find(std::begin(kFamilies), std::end(kFamilies), name) != std::end(kFamilies);
}

// U+FFFD: what decoding an incomplete UTF-8 sequence gives.
constexpr char kReplacement[] = "\xEF\xBF\xBD";

}  // namespace

std::string supported_architectures() {
  std::string s;
  for (const auto& f : model_families()) {
    if (!supported_family(f.name)) continue;
    for (const auto& a : f.architectures) s += (s.empty() ? "" : ", ") + a;
    for (const auto& t : f.model_types)
      s += (s.empty() ? "" : ", ") + std::string("model_type ") + t;
  }
  return s;
}

bool is_hub_model_dir(const std::string& dir) {
  const fs::path p = fs::path(dir) / "config.json";
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return false;
  std::ifstream f(p);
  const auto j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  return j.is_object() && (j.contains("architectures") || j.contains("model_type"));
}

// ---- TextStreamer ----

std::string TextStreamer::push(int64_t id) {
  ids_.push_back(id);
  const std::string text = tok_->decode(ids_, /*skip_special_tokens=*/true);
  size_t end = text.size();
  // A byte token that ends mid-character decodes to U+FFFD until the rest arrives: hold it back.
  while (end >= printed_ + 3 && text.compare(end - 3, 3, kReplacement) == 0) end -= 3;
  if (end <= printed_) return {};
  std::string out = text.substr(printed_, end - printed_);
  printed_ = end;
  return out;
}

std::string TextStreamer::finish() {
  const std::string text = tok_->decode(ids_, /*skip_special_tokens=*/true);
  if (text.size() <= printed_) return {};
  std::string out = text.substr(printed_);
  printed_ = text.size();
  return out;
}

// ---- Thinker ----

struct Thinker::Impl {
  std::string dir;
  ThinkerOptions options;
  at::Device device{at::kCPU};
  at::ScalarType dtype = at::kFloat;
  std::shared_ptr<Checkpoint> ckpt;
  LoadReport loaded;
  std::optional<PromptRenderer> renderer;  // chat template + tokenizer
  std::shared_ptr<const HfTokenizer> tok;
  ProcessorConfig processor;
  VisionTower vision{nullptr};
  AudioTower audio{nullptr};
  TextModel text{nullptr};
  LayoutOptions seq;
  std::vector<int64_t> eos;
  std::string architecture;
};

Thinker::Thinker() : impl_(std::make_unique<Impl>()) {}
Thinker::~Thinker() = default;

namespace {

// fp32 everywhere; bf16 also on the CPU (transformers runs it there); fp16 needs CUDA.
at::ScalarType thinker_dtype(const std::string& text, const at::Device& device) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "fp32" || t == "float32" || t == "float") return at::kFloat;
  if (t == "bf16" || t == "bfloat16") return at::kBFloat16;
  if (t == "fp16" || t == "float16" || t == "half") {
    if (!device.is_cuda())
      throw ConfigError("dtype fp16 needs a CUDA device (on the CPU use fp32 or bf16)");
    return at::kHalf;
  }
  throw ConfigError("unknown dtype '" + text + "' (expected fp32, bf16 or fp16)");
}

// A tower's config sizes decide what its modules allocate before any weight is read (the
// convolutions and norms even initialise theirs), so each size is first held against the shape of
// a tensor the checkpoint has, whose header was checked against its shard's bytes: a config that
// claims a bigger model than its weights gets a clear error, never an allocation of what it
// claims. The last layer's tensors stand for the layer count. load_module checks every shape later.
using ShapeClaims = std::vector<std::pair<std::string, std::vector<int64_t>>>;

void check_sizes_against_weights(const Checkpoint& ck, const std::string& tower,
                                 const ShapeClaims& claims) {
  for (const auto& [name, shape] : claims) {
    if (!ck.contains(name))
      throw InputError(ck.dir() + ": the " + tower + " config's sizes need a tensor " + name +
                       " of shape " + c10::str(at::IntArrayRef(shape)) +
                       ", which the checkpoint does not have");
    const TensorInfo info = ck.info(name);
    if (info.shape != shape)
      throw InputError(ck.dir() + ": the " + tower + " config's sizes need " + info.hub_name +
                       " to be " + c10::str(at::IntArrayRef(shape)) + ", the checkpoint's is " +
                       c10::str(at::IntArrayRef(info.shape)) +
                       " (config.json does not match the weights)");
  }
}

ShapeClaims text_claims(const TextModelOptions& o) {
  ShapeClaims c{{"text.embed_tokens.weight", {o.vocab_size, o.hidden_size}}};
  if (o.num_hidden_layers > 0) {
    const std::string l = "text.layers." + std::to_string(o.num_hidden_layers - 1) + ".";
    const int64_t hd = o.resolved_head_dim();
    c.push_back({l + "self_attn.q_proj.weight", {o.num_attention_heads * hd, o.hidden_size}});
    c.push_back({l + "self_attn.k_proj.weight", {o.num_key_value_heads * hd, o.hidden_size}});
    c.push_back({l + "mlp.gate_proj.weight", {o.intermediate_size, o.hidden_size}});
  }
  return c;
}

ShapeClaims vision_claims(const VisionTowerOptions& o) {
  ShapeClaims c{
      {"vision.patch_embed.proj.weight",
       {o.hidden_size, o.in_channels, o.temporal_patch_size, o.patch_size, o.patch_size}},
      {"vision.merger.mlp.2.weight", {o.out_hidden_size, o.hidden_size * o.merge_unit()}}};
  if (o.depth > 0)
    c.push_back({"vision.blocks." + std::to_string(o.depth - 1) + ".mlp.gate_proj.weight",
                 {o.intermediate_size, o.hidden_size}});
  return c;
}

ShapeClaims audio_claims(const AudioTowerOptions& o) {
  ShapeClaims c{{"audio.conv1.weight", {o.d_model(), o.num_mel_bins(), 3}},
                {"audio.proj.weight", {o.output_dim(), o.d_model()}}};
  if (o.encoder_layers() > 0)
    c.push_back({"audio.layers." + std::to_string(o.encoder_layers() - 1) + ".fc1.weight",
                 {o.encoder_ffn_dim(), o.d_model()}});
  return c;
}

template <class M>
void load_module(M& m, const Checkpoint& ck, const std::string& prefix, const at::Device& device,
                 at::ScalarType dtype, bool map_weights, LoadReport& total) {
  m->to(device, dtype);
  LoadOptions lo{prefix};
  lo.map_weights = map_weights;
  const LoadReport r = ck.load_into(*m, lo);
  total.tensors += r.tensors;
  total.bytes += r.bytes;
  total.mapped_tensors += r.mapped_tensors;
  total.mapped_bytes += r.mapped_bytes;
  total.skipped_unused = r.skipped_unused;
  m->eval();
}

}  // namespace

std::unique_ptr<Thinker> Thinker::open(const std::string& dir, const ThinkerOptions& o) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw InputError("model directory '" + dir + "' does not exist");
  if (!fs::is_regular_file(fs::path(dir) / "config.json", ec))
    throw InputError(dir + ": no config.json (expected a Hugging Face model directory)");
  // Refuse other models before reading any weights, naming what is supported.
  {
    std::ifstream f(fs::path(dir) / "config.json");
    const auto cfg = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
    if (!cfg.is_object()) throw InputError(dir + "/config.json: not a JSON object");
    std::vector<std::string> names;
    if (auto a = cfg.find("architectures"); a != cfg.end() && a->is_array())
      for (const auto& x : *a)
        if (x.is_string()) names.push_back(x.get<std::string>());
    const auto mt_it = cfg.find("model_type");
    const std::string mt =
        mt_it != cfg.end() && mt_it->is_string() ? mt_it->get<std::string>() : std::string();
    bool known = false;
    for (const auto& fam : model_families()) {
      if (!supported_family(fam.name)) continue;
      for (const auto& n : names)
        known = known || std::find(fam.architectures.begin(), fam.architectures.end(), n) !=
                             fam.architectures.end();
      known = known || std::find(fam.model_types.begin(), fam.model_types.end(), mt) !=
                           fam.model_types.end();
    }
    if (!known)
      throw InputError(
          dir + ": unsupported model '" + (names.empty() ? mt : names.front()) +
          "' (config.json architectures / model_type); supported: " + supported_architectures());
  }
  std::unique_ptr<Thinker> t(new Thinker());
  Impl& m = *t->impl_;
  m.dir = dir;
  m.options = o;
  m.device = parse_device(o.device, "device");
  m.dtype = thinker_dtype(o.dtype, m.device);
  m.ckpt = Checkpoint::open(dir);
  const Checkpoint& ck = *m.ckpt;
  m.architecture = ck.architecture();
  if (!supported_family(ck.family().name))
    throw InputError(
        dir + ": unsupported model '" + m.architecture +
        "' (config.json architectures / model_type); supported: " + supported_architectures());
  for (const char* tower : {"text", "vision", "audio"})
    if (!ck.tower_config(tower))
      throw InputError(dir + "/config.json: no " + std::string(tower) +
                       " config (a Qwen2.5-Omni thinker has text, vision and audio towers)");

  m.renderer = PromptRenderer::from_directory(dir);
  m.tok = m.renderer->shared_tokenizer();
  m.processor = ProcessorConfig::from_directory(dir);
  try {
    m.seq = LayoutOptions::from_config(ck.config());
  } catch (const ConfigError& e) {
    throw InputError(dir + "/config.json: " + e.what());
  }
  m.eos = ck.eos_token_ids();

  if (o.single_thread_blas && m.device.is_cpu() && m.dtype == at::kBFloat16) set_blas_threads(1);
  at::NoGradGuard no_grad;
  // Every parameter of the towers comes from the checkpoint (load_module checks that before it
  // loads any), so the big ones are allocated uninitialized in the target dtype and device, not
  // randomly initialized in fp32 first; on the CPU, weights of the checkpoint's dtype then use
  // the mapped bytes in place (LoadOptions::map_weights): one copy of the weights, not two.
  DeferredInitGuard deferred(at::TensorOptions().dtype(m.dtype).device(m.device));
  try {
    if (o.vision) {
      const auto vo = VisionTowerOptions::from_config(*ck.tower_config("vision"));
      check_sizes_against_weights(ck, "vision", vision_claims(vo));
      m.vision = VisionTower(vo);
      load_module(m.vision, ck, "vision.", m.device, m.dtype, o.map_weights, m.loaded);
    }
    if (o.audio) {
      const auto ao = AudioTowerOptions::from_config(*ck.tower_config("audio"));
      check_sizes_against_weights(ck, "audio", audio_claims(ao));
      m.audio = AudioTower(ao);
      load_module(m.audio, ck, "audio.", m.device, m.dtype, o.map_weights, m.loaded);
    }
    if (o.text) {
      // Built part by part in the target dtype and device (never the whole model in fp32).
      TextModelOptions to = TextModelOptions::from_config(*ck.tower_config("text"));
      check_sizes_against_weights(ck, "text", text_claims(to));
      to.dtype = m.dtype;
      to.device = m.device;
      m.text = TextModel(to);
      load_module(m.text, ck, "text.", m.device, m.dtype, o.map_weights, m.loaded);
    }
  } catch (const c10::Error& e) {
    throw InputError(dir + ": building the model failed: " + e.what_without_backtrace());
  }
  return t;
}

const Checkpoint& Thinker::checkpoint() const { return *impl_->ckpt; }
const LoadReport& Thinker::load_report() const { return impl_->loaded; }
const HfTokenizer& Thinker::tokenizer() const { return *impl_->tok; }
const ProcessorConfig& Thinker::processor() const { return impl_->processor; }
std::vector<int64_t> Thinker::eos_token_ids() const { return impl_->eos; }
const std::string& Thinker::architecture() const { return impl_->architecture; }
const std::string& Thinker::directory() const { return impl_->dir; }

namespace {

PromptRequest request_of(MediaKind kind, const std::string& question,
                         const std::optional<std::string>& system) {
  PromptRequest r;
  r.system = system;
  r.question = question;
  switch (kind) {
    case MediaKind::kImage:
      r.media = PromptMedia::kImage;
      break;
    case MediaKind::kAudio:
      r.media = PromptMedia::kAudio;
      break;
    case MediaKind::kVideo:
      r.media = PromptMedia::kVideo;
      break;
    case MediaKind::kNone:
      r.media = PromptMedia::kNone;
      break;
  }
  return r;
}

}  // namespace

std::string Thinker::render(MediaKind kind, const std::string& question,
                            const std::optional<std::string>& system) const {
  return impl_->renderer->render(request_of(kind, question, system)).text;
}

void Thinker::encode_vision(QwenMedia& media) const {
  Impl& m = *impl_;
  if (!(media.image && !media.image_embeds.defined()) &&
      !(media.video && !media.video_embeds.defined()))
    return;
  if (!m.vision) throw ConfigError("this Thinker was opened without its vision tower");
  at::NoGradGuard no_grad;
  auto run = [&](const QwenVisualInputs& v) {
    const at::Tensor grid =
        at::tensor(std::vector<int64_t>(v.grid_thw.begin(), v.grid_thw.end()), at::kLong)
            .view({1, 3});
    return m.vision->forward(v.pixel_values.to(m.device, m.dtype), grid);
  };
  if (media.image && !media.image_embeds.defined()) media.image_embeds = run(*media.image);
  if (media.video && !media.video_embeds.defined()) media.video_embeds = run(*media.video);
}

void Thinker::encode_audio(QwenMedia& media) const {
  Impl& m = *impl_;
  at::NoGradGuard no_grad;
  if (media.audio && !media.audio_embeds.defined()) {
    if (!m.audio) throw ConfigError("this Thinker was opened without its audio tower");
    const at::Tensor f =
        media.audio->input_features.slice(1, 0, media.audio->valid_frames).to(m.device, m.dtype);
    media.audio_embeds = m.audio->forward(f);
  }
}

void Thinker::encode(QwenMedia& media) const {
  try {
    encode_vision(media);
    encode_audio(media);
  } catch (const c10::Error& e) {
    throw Error(std::string("libtorch error in the towers: ") + e.what_without_backtrace());
  }
}

ThinkerPrompt Thinker::prepare(const std::string& media_path, const std::string& question,
                               const PromptOptions& o) const {
  QwenMedia media;
  if (!media_path.empty()) media = read_media(media_path, impl_->processor, o.media);
  media.model_dir = impl_->dir;
  return prepare(std::move(media), question, o.system);
}

ThinkerPrompt Thinker::prepare(QwenMedia media, const std::string& question,
                               const std::optional<std::string>& system) const {
  encode(media);
  ThinkerPrompt p = layout(media, question, system);
  embed(p);
  return p;
}

ThinkerPrompt Thinker::layout(const QwenMedia& media, const std::string& question,
                              const std::optional<std::string>& system) const {
  Impl& m = *impl_;
  ThinkerPrompt p;
  p.kind = media.kind;
  p.audio_in_video = media.audio_in_video;
  p.model_dir = m.dir;
  const Prompt rendered = m.renderer->render(request_of(media.kind, question, system));
  p.text = rendered.text;
  std::vector<MediaLayout> layouts;
  if (media.image) layouts.push_back(MediaLayout::image(media.image->grid_thw));
  if (media.video)
    layouts.push_back(
        media.audio_in_video
            ? MediaLayout::video_with_audio(media.video->grid_thw, media.video->second_per_grid,
                                            media.audio_tokens())
            : MediaLayout::video(media.video->grid_thw, media.video->second_per_grid));
  else if (media.audio)
    layouts.push_back(MediaLayout::audio(media.audio_tokens()));
  // The processor's expansion of the placeholders and get_rope_index (sequence.h).
  const Sequence s = build_sequence(rendered.ids, layouts, m.seq);
  p.ids = s.input_ids;
  p.position_ids = s.position_ids.view({3, 1, -1});
  p.rope_delta = s.rope_delta;
  int64_t media_tokens = 0;
  for (const auto& [what, token] : {std::pair<const char*, int64_t>{"image", m.seq.tokens.image},
                                    {"video", m.seq.tokens.video},
                                    {"audio", m.seq.tokens.audio}}) {
    p.tokens[what] = std::count(p.ids.begin(), p.ids.end(), token);
    media_tokens += p.tokens[what];
  }
  p.tokens["text"] = static_cast<int64_t>(p.ids.size()) - media_tokens;
  p.image_embeds = media.image_embeds;
  p.video_embeds = media.video_embeds;
  p.audio_embeds = media.audio_embeds;
  return p;
}

void Thinker::embed(ThinkerPrompt& p) const {
  Impl& m = *impl_;
  if (!m.text) throw ConfigError("embed: this Thinker was opened without its text model");
  const int64_t L = static_cast<int64_t>(p.ids.size());
  at::NoGradGuard no_grad;
  const at::Tensor ids = at::tensor(p.ids, at::kLong).view({1, L}).to(m.device);
  at::Tensor embeds = m.text->embed(ids);  // [1, L, H]
  // transformers' masked_scatter: the n-th placeholder of a kind takes the n-th tower row.
  auto scatter = [&](int64_t token, const at::Tensor& rows, const char* what) {
    const at::Tensor mask = ids[0].eq(token);
    const int64_t n = mask.sum().item<int64_t>();
    if (n == 0 && !rows.defined()) return;
    if (!rows.defined() || rows.size(0) != n)
      throw InputError(std::string("the prompt has ") + std::to_string(n) + " " + what +
                       " placeholders but the tower gave " +
                       std::to_string(rows.defined() ? rows.size(0) : 0) + " rows");
    const at::Tensor idx = mask.nonzero().view({-1});
    embeds[0].index_copy_(0, idx, rows.to(embeds.device(), embeds.scalar_type()));
  };
  scatter(m.seq.tokens.image, p.image_embeds, "image");
  scatter(m.seq.tokens.video, p.video_embeds, "video");
  scatter(m.seq.tokens.audio, p.audio_embeds, "audio");
  p.embeds = embeds;
  p.image_embeds = p.video_embeds = p.audio_embeds = at::Tensor();
}

at::Tensor Thinker::prompt_logits(const ThinkerPrompt& p) const {
  if (!impl_->text) throw ConfigError("this Thinker was opened without its text model");
  at::NoGradGuard no_grad;
  try {
    const at::Tensor logits =
        impl_->text->forward(p.embeds, p.position_ids.to(impl_->device), nullptr);
    return logits[0].to(at::kCPU, at::kFloat).contiguous();
  } catch (const c10::Error& e) {
    throw Error(std::string("libtorch error in the language model: ") + e.what_without_backtrace());
  }
}

Answer Thinker::generate(const ThinkerPrompt& p, const SampleOptions& o,
                         const TextCallback& on_token) const {
  Impl& m = *impl_;
  if (!m.text) throw ConfigError("this Thinker was opened without its text model");
  GenerationOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.do_sample = o.do_sample;
  g.temperature = o.temperature;
  g.top_k = o.top_k;
  g.top_p = o.top_p;
  g.seed = o.seed;
  g.eos_token_ids = o.eos_token_ids.empty() ? m.eos : o.eos_token_ids;
  g.validate();
  TextStreamer streamer(*m.tok);
  Answer a;
  at::NoGradGuard no_grad;
  try {
    const GenerationResult r =
        qwen::generate(*m.text, p.embeds, p.position_ids.to(m.device), g, [&](int64_t id) {
          const std::string piece = streamer.push(id);
          if (on_token) on_token(id, piece);
        });
    a.ids = r.ids;
    a.stopped = r.stopped_at_eos;
  } catch (const c10::Error& e) {
    throw Error(std::string("libtorch error in generation: ") + e.what_without_backtrace());
  }
  const std::string rest = streamer.finish();
  if (!rest.empty() && on_token) on_token(-1, rest);
  a.text = m.tok->decode(a.ids, /*skip_special_tokens=*/true);
  return a;
}

}  // namespace omni::qwen

void omni::PayloadJson<omni::qwen::ThinkerPrompt>::encode(const omni::qwen::ThinkerPrompt& p,
                                                          nlohmann::json& j) {
  j["text"] = p.text;
  j["ids"] = p.ids;
  if (p.position_ids.defined()) {
    const at::Tensor pos = p.position_ids.view({3, -1}).to(at::kCPU, at::kLong).contiguous();
    std::vector<std::vector<int64_t>> rows(3);
    for (int64_t a = 0; a < 3; ++a)
      rows[a].assign(pos[a].data_ptr<int64_t>(), pos[a].data_ptr<int64_t>() + pos.size(1));
    j["position_ids"] = rows;
  }
  j["rope_delta"] = p.rope_delta;
  j["tokens"] = p.tokens;
  j["media"] = omni::qwen::media_kind_name(p.kind);
  j["audio_in_video"] = p.audio_in_video;
}
