#include "models/qwen2_5_omni/sequence.h"

#include <ATen/ATen.h>

#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "modalities/text/hf_tokenizer.h"
#include "modalities/text/jinja/chat_template.h"

namespace omni::qwen {

namespace {

// An integer config value; absent keeps `fallback`.
int64_t int_key(const nlohmann::json& cfg, std::initializer_list<const char*> keys,
                int64_t fallback) {
  for (const char* k : keys) {
    auto it = cfg.find(k);
    if (it == cfg.end() || it->is_null()) continue;
    if (!it->is_number_integer())
      throw ConfigError(std::string("Qwen2.5-Omni config: '") + k + "' must be an integer, got " +
                        it->dump());
    return it->get<int64_t>();
  }
  return fallback;
}

double number_key(const nlohmann::json& cfg, const char* key, double fallback) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return fallback;
  if (!it->is_number())
    throw ConfigError(std::string("Qwen2.5-Omni config: '") + key + "' must be a number, got " +
                      it->dump());
  return it->get<double>();
}

std::string grid_str(const std::array<int64_t, 3>& g) {
  return "(" + std::to_string(g[0]) + ", " + std::to_string(g[1]) + ", " + std::to_string(g[2]) +
         ")";
}

}  // namespace

QwenTokenIds QwenTokenIds::from_config(const nlohmann::json& tc) {
  if (!tc.is_object()) throw ConfigError("Qwen2.5-Omni config: thinker_config is not an object");
  QwenTokenIds t;
  t.image = int_key(tc, {"image_token_index", "image_token_id"}, t.image);
  t.video = int_key(tc, {"video_token_index", "video_token_id"}, t.video);
  t.audio = int_key(tc, {"audio_token_index", "audio_token_id"}, t.audio);
  t.vision_bos = int_key(tc, {"vision_start_token_id"}, t.vision_bos);
  t.vision_eos = int_key(tc, {"vision_end_token_id"}, t.vision_eos);
  t.audio_bos = int_key(tc, {"audio_start_token_id"}, t.audio_bos);
  t.audio_eos = int_key(tc, {"audio_end_token_id"}, t.audio_eos);
  t.validate();
  return t;
}

void QwenTokenIds::validate() const {
  const std::vector<int64_t> all{image, video, audio, vision_bos, vision_eos, audio_bos, audio_eos};
  for (int64_t v : all)
    if (v < 0) throw ConfigError("Qwen2.5-Omni token ids must be >= 0, got " + std::to_string(v));
  if (std::set<int64_t>(all.begin(), all.end()).size() != all.size())
    throw ConfigError(
        "Qwen2.5-Omni token ids must be distinct (image, video, audio, vision start/end, audio "
        "start/end)");
}

LayoutOptions LayoutOptions::from_config(const nlohmann::json& config) {
  const nlohmann::json& tc =
      config.contains("thinker_config") ? config.at("thinker_config") : config;
  LayoutOptions o;
  o.tokens = QwenTokenIds::from_config(tc);
  o.position_id_per_seconds = number_key(tc, "position_id_per_seconds", o.position_id_per_seconds);
  o.seconds_per_chunk = number_key(tc, "seconds_per_chunk", o.seconds_per_chunk);
  auto vc = tc.find("vision_config");
  if (vc != tc.end() && vc->is_object())
    o.spatial_merge_size = int_key(*vc, {"spatial_merge_size"}, o.spatial_merge_size);
  o.validate();
  return o;
}

void LayoutOptions::validate() const {
  tokens.validate();
  if (!(position_id_per_seconds > 0) || !(seconds_per_chunk > 0))
    throw ConfigError(
        "Qwen2.5-Omni layout: position_id_per_seconds and seconds_per_chunk must be > 0");
  if (position_id_per_seconds * seconds_per_chunk < 1)
    throw ConfigError(
        "Qwen2.5-Omni layout: position_id_per_seconds x seconds_per_chunk must be >= 1");
  if (spatial_merge_size < 1)
    throw ConfigError("Qwen2.5-Omni layout: spatial_merge_size must be >= 1");
}

MediaLayout MediaLayout::image(std::array<int64_t, 3> grid_thw) {
  MediaLayout m;
  m.kind = Kind::kImage;
  m.grid_thw = grid_thw;
  return m;
}

MediaLayout MediaLayout::video(std::array<int64_t, 3> grid_thw, double second_per_grid) {
  MediaLayout m;
  m.kind = Kind::kVideo;
  m.grid_thw = grid_thw;
  m.second_per_grid = second_per_grid;
  return m;
}

MediaLayout MediaLayout::video_with_audio(std::array<int64_t, 3> grid_thw, double second_per_grid,
                                          int64_t audio_tokens) {
  MediaLayout m = video(grid_thw, second_per_grid);
  m.audio_tokens = audio_tokens;
  m.audio_in_video = true;
  return m;
}

MediaLayout MediaLayout::audio(int64_t audio_tokens) {
  MediaLayout m;
  m.kind = Kind::kAudio;
  m.audio_tokens = audio_tokens;
  return m;
}

const char* MediaLayout::name() const {
  switch (kind) {
    case Kind::kImage:
      return "image";
    case Kind::kVideo:
      return "video";
    case Kind::kAudio:
      return "audio";
  }
  return "?";
}

namespace {

// Builds the fusion sequencer's items for a prompt; owns the chunks they point at.
class ItemBuilder {
 public:
  explicit ItemBuilder(const LayoutOptions& o) : o_(o) {}

  void text(const std::vector<int64_t>& ids) {
    if (ids.empty()) return;
    TokenChunk& c = keep();
    c.modality = Modality::kText;
    c.ids = at::tensor(ids, at::kLong);
    c.grid_w = static_cast<int64_t>(ids.size());
    items_.push_back({SequenceItem::Kind::kText, {&c}, {}});
  }

  void media(const MediaLayout& m, size_t index) {
    using K = SequenceItem::Kind;
    const std::string what = "media item " + std::to_string(index) + " (" + m.name() + ")";
    if (m.kind == MediaLayout::Kind::kAudio) {
      items_.push_back({K::kAudio, {&audio_chunk(m.audio_tokens, what)}, {}});
      return;
    }
    const auto& g = m.grid_thw;
    const int64_t ms = o_.spatial_merge_size;
    if (g[0] < 1 || g[1] < 1 || g[2] < 1 || g[1] % ms != 0 || g[2] % ms != 0)
      throw InputError("Qwen2.5-Omni layout: " + what + " has patch grid " + grid_str(g) +
                       "; t, h, w must be >= 1 and h, w multiples of the merge size " +
                       std::to_string(ms));
    TokenChunk& c = keep();
    const bool image = m.kind == MediaLayout::Kind::kImage;
    c.modality = image ? Modality::kImage : Modality::kVideo;
    c.grid_t = g[0];
    c.grid_h = g[1] / ms;
    c.grid_w = g[2] / ms;
    c.ids = at::full({c.grid_t * c.grid_h * c.grid_w}, image ? o_.tokens.image : o_.tokens.video,
                     at::kLong);
    if (image) {
      items_.push_back({K::kImage, {&c}, {}});
      return;
    }
    if (!(m.second_per_grid > 0) || !std::isfinite(m.second_per_grid))
      throw InputError("Qwen2.5-Omni layout: " + what + " needs second_per_grid > 0, got " +
                       std::to_string(m.second_per_grid));
    c.seconds_per_grid = m.second_per_grid;
    if (m.audio_in_video)
      items_.push_back({K::kVideoWithAudio, {&c}, {&audio_chunk(m.audio_tokens, what)}});
    else
      items_.push_back({K::kVideo, {&c}, {}});
  }

  const std::vector<SequenceItem>& items() const { return items_; }

 private:
  TokenChunk& keep() { return chunks_.emplace_back(); }

  TokenChunk& audio_chunk(int64_t n, const std::string& what) {
    if (n < 1)
      throw InputError("Qwen2.5-Omni layout: " + what + " needs audio_tokens >= 1, got " +
                       std::to_string(n));
    TokenChunk& c = keep();
    c.modality = Modality::kAudio;
    c.ids = at::full({n}, o_.tokens.audio, at::kLong);
    c.grid_w = n;
    return c;
  }

  const LayoutOptions& o_;
  std::deque<TokenChunk> chunks_;  // stable addresses
  std::vector<SequenceItem> items_;
};

}  // namespace

Sequence build_sequence(const std::vector<int64_t>& prompt_ids,
                        const std::vector<MediaLayout>& media, const LayoutOptions& options) {
  options.validate();
  const QwenTokenIds& t = options.tokens;
  ItemBuilder b(options);
  std::vector<int64_t> text;
  size_t next_media = 0;
  const size_t n = prompt_ids.size();
  auto token_name = [&](int64_t id) -> std::string {
    if (id == t.image) return "<|IMAGE|>";
    if (id == t.video) return "<|VIDEO|>";
    return "<|AUDIO|>";
  };
  for (size_t i = 0; i < n; ++i) {
    const int64_t id = prompt_ids[i];
    if (id != t.image && id != t.video && id != t.audio) {
      text.push_back(id);
      continue;
    }
    const bool audio = id == t.audio;
    const int64_t bos = audio ? t.audio_bos : t.vision_bos;
    const int64_t eos = audio ? t.audio_eos : t.vision_eos;
    const std::string where = "placeholder " + token_name(id) + " at token " + std::to_string(i);
    if (text.empty() || text.back() != bos)
      throw InputError("Qwen2.5-Omni layout: " + where + " is not preceded by its start token (" +
                       (audio ? "<|audio_bos|>" : "<|vision_bos|>") +
                       "); is the prompt already expanded?");
    if (i + 1 >= n || prompt_ids[i + 1] != eos)
      throw InputError("Qwen2.5-Omni layout: " + where + " is not followed by its end token (" +
                       (audio ? "<|audio_eos|>" : "<|vision_eos|>") + ")");
    if (next_media >= media.size())
      throw InputError("Qwen2.5-Omni layout: the prompt has more media placeholders than the " +
                       std::to_string(media.size()) + " media item(s) given (" + where + ")");
    const MediaLayout& m = media[next_media];
    const MediaLayout::Kind want = id == t.image   ? MediaLayout::Kind::kImage
                                   : id == t.video ? MediaLayout::Kind::kVideo
                                                   : MediaLayout::Kind::kAudio;
    if (m.kind != want)
      throw InputError("Qwen2.5-Omni layout: " + where + " needs a " + MediaLayout{want}.name() +
                       " but media item " + std::to_string(next_media) + " is " + m.name());
    text.pop_back();  // the start token is the sequencer's boundary
    b.text(text);
    text.clear();
    b.media(m, next_media++);
    ++i;  // the end token too
  }
  b.text(text);
  if (next_media != media.size())
    throw InputError("Qwen2.5-Omni layout: " + std::to_string(media.size()) +
                     " media item(s) given but the prompt has " + std::to_string(next_media) +
                     " placeholder(s)");

  SequencerOptions so;
  so.special.image_start = so.special.video_start = t.vision_bos;
  so.special.image_end = so.special.video_end = t.vision_eos;
  so.special.audio_start = t.audio_bos;
  so.special.audio_end = t.audio_eos;
  so.position_ids_per_second = options.position_id_per_seconds;
  so.seconds_per_chunk = options.seconds_per_chunk;
  so.first_position = 0;

  Sequence s;
  s.fused = build_fused_sequence(b.items(), so);
  const at::Tensor ids = s.fused.text_ids.contiguous();
  s.input_ids.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  for (int64_t v : s.input_ids)
    if (v < 0) throw std::logic_error("Qwen2.5-Omni layout: a token without an id");
  s.position_ids = s.fused.positions;
  s.rope_delta = s.fused.next_position() - s.fused.length();
  return s;
}

// ---- the prompt ----

nlohmann::ordered_json prompt_messages(const PromptRequest& r) {
  using oj = nlohmann::ordered_json;
  oj messages = oj::array();
  if (r.system)
    messages.push_back(
        {{"role", "system"}, {"content", oj::array({{{"type", "text"}, {"text", *r.system}}})}});
  oj content = oj::array();
  switch (r.media) {
    case PromptMedia::kNone:
      break;
    case PromptMedia::kImage:
      content.push_back({{"type", "image"}});
      break;
    case PromptMedia::kAudio:
      content.push_back({{"type", "audio"}});
      break;
    case PromptMedia::kVideo:
      content.push_back({{"type", "video"}});
      break;
  }
  content.push_back({{"type", "text"}, {"text", r.question}});
  messages.push_back({{"role", "user"}, {"content", content}});
  return messages;
}

PromptRenderer PromptRenderer::from_directory(const std::string& dir) {
  PromptRenderer p;
  p.template_ = jinja::find_chat_template(dir, jinja::TemplateOwner::kProcessor).text;
  const std::filesystem::path cfg_path = std::filesystem::path(dir) / "tokenizer_config.json";
  if (std::filesystem::exists(cfg_path)) {
    std::ifstream f(cfg_path);
    nlohmann::ordered_json cfg;
    try {
      cfg = nlohmann::ordered_json::parse(f);
    } catch (const nlohmann::json::exception& e) {
      throw InputError(cfg_path.string() + ": malformed JSON (" + e.what() + ")");
    }
    p.special_tokens_ = jinja::special_tokens_from_config(cfg);
  }
  p.tokenizer_ = HfTokenizer::from_directory(dir);
  return p;
}

Prompt PromptRenderer::render(const nlohmann::ordered_json& messages) const {
  jinja::ChatTemplateOptions opt;
  opt.add_generation_prompt = true;
  opt.processor = true;
  opt.special_tokens = special_tokens_;
  Prompt p;
  p.text = jinja::apply_chat_template(template_, messages, opt);
  p.ids = tokenizer_->encode(p.text);
  return p;
}

Prompt PromptRenderer::render(const PromptRequest& request) const {
  return render(prompt_messages(request));
}

}  // namespace omni::qwen
