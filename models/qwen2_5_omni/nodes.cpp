#include "models/qwen2_5_omni/nodes.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "modalities/common/audio_chunk.h"
#include "models/qwen2_5_omni/ask.h"
#include "models/qwen2_5_omni/thinker.h"
#ifdef OMNI_WITH_MEDIA
#include "modalities/media/frame.h"
#endif

namespace omni {

namespace {

using qwen::QwenMedia;
using qwen::Thinker;

// The Thinker parts a node runs, opened from its `model` parameter in open(), or, when that is
// empty, from the directory the upstream node's packets carry (so one --set names the model).
class ThinkerPart {
 public:
  void configure(const Params& p, std::string where, bool vision, bool audio, bool text,
                 bool with_device) {
    where_ = std::move(where);
    o_.vision = vision;
    o_.audio = audio;
    o_.text = text;
    if (with_device) {
      o_.device = p.get_string("device");
      o_.dtype = p.get_string("dtype");
    }
    fixed_ = !p.get_string("model").empty();
    if (fixed_) open_model(p.get_string("model"));
  }
  // The node's own model when its parameter names one, else the packet's (`dir`).
  const Thinker& get(const std::string& dir) {
    if (thinker_ && (fixed_ || dir == thinker_->directory())) return *thinker_;
    if (dir.empty())
      throw ConfigError(where_ + ": no model: set param 'model' (a Hugging Face directory)");
    open_model(dir);
    return *thinker_;
  }

 private:
  void open_model(const std::string& dir) {
    try {
      thinker_ = Thinker::open(dir, o_);
    } catch (const InputError& e) {
      throw InputError(where_ + ": " + e.what());
    } catch (const ConfigError& e) {
      throw ConfigError(where_ + ": " + e.what());
    }
  }

  std::string where_;
  bool fixed_ = false;
  qwen::ThinkerOptions o_;
  std::unique_ptr<Thinker> thinker_;
};

Contract& model_params(Contract& c, bool device, bool upstream = true) {
  c.param("model", "",
          upstream ? "Hugging Face Qwen2.5-Omni directory (empty: the one the input packets "
                     "name, i.e. the upstream node's)"
                   : "Hugging Face Qwen2.5-Omni directory (config.json, weights, tokenizer)");
  if (device)
    c.param("device", "cpu", "cpu, cuda or cuda:N")
        .param("dtype", "fp32", "fp32 or bf16 (CPU); fp16 on CUDA");
  return c;
}

// ---- QwenOmniProcessor ----

#ifdef OMNI_WITH_MEDIA

class QwenOmniProcessor : public Node {
 public:
  static Contract contract() {
    Contract c;
    c.doc(
         "Collects one media file's decoded frames and 16 kHz mono audio (MediaSource with fps 0) "
         "and runs Qwen2.5-Omni's processors on it as qwen-omni-utils reads files: one frame "
         "without sound is an image, more frames a video (fetch_video's frame choice, the video "
         "processor), sound only an audio clip (Whisper features). Emits one QwenMedia at the "
         "end. Holds the clip's frames until then.")
        .optional_input<Frame>("video", "every decoded frame of the file (MediaSource fps: 0)")
        .optional_input<AudioChunk>("audio", "the file's sound, 16 kHz mono")
        .output<QwenMedia>("media", "the processed media item (at timestamp 0)")
        .param("fps", 2.0, "video frames sampled per second")
        .param(
            "audio_in_video", "auto",
            "use a video's sound track (interleaved with it): on, off, auto (on when it has one)")
        .param("source", "", "name of the media in messages (e.g. the file)")
        .policy(InputPolicy::kImmediate);
    return model_params(c, false, false);
  }
  void open(Context& ctx) override {
    const Params& p = ctx.params();
    where_ = ctx.node_name() + " (QwenOmniProcessor)";
    dir_ = p.get_string("model");
    if (dir_.empty())
      throw ConfigError(where_ + ": param 'model' (a Hugging Face directory) is empty");
    try {
      pc_ = qwen::ProcessorConfig::from_directory(dir_);
      mo_.audio_in_video = qwen::parse_on_off(p.get_string("audio_in_video"), "audio_in_video");
    } catch (const InputError& e) {
      throw InputError(where_ + ": " + e.what());
    } catch (const ConfigError& e) {
      throw ConfigError(where_ + ": " + e.what());
    }
    mo_.fps = p.get_double("fps");
    if (!(mo_.fps > 0)) throw ConfigError(where_ + ": fps must be positive");
    source_ = p.get_string("source");
  }
  Flow process(Context& ctx) override {
    if (const Packet& v = ctx.input(0); !v.empty()) frames_.push_back(v.get<Frame>());
    if (const Packet& a = ctx.input(1); !a.empty()) {
      const AudioChunk& c = a.get<AudioChunk>();
      if (c.sample_rate != pc_.audio.sampling_rate || c.channels != 1)
        throw ConfigError(where_ + ": audio must be " + std::to_string(pc_.audio.sampling_rate) +
                          " Hz mono (MediaSource audio_rate / audio_channels), got " +
                          std::to_string(c.sample_rate) + " Hz x " + std::to_string(c.channels));
      has_audio_ = true;
      pcm_.insert(pcm_.end(), c.samples.begin(), c.samples.end());
    }
    return Flow::kContinue;
  }
  void close(Context& ctx) override {
    std::vector<qwen::DecodedFrame> views;
    views.reserve(frames_.size());
    for (const Frame& f : frames_)
      views.push_back(
          {{f.rgb.ptr<uint8_t>(0), f.rgb.cols, f.rgb.rows, static_cast<int64_t>(f.rgb.step[0])},
           f.pts_us});
    QwenMedia m = qwen::media_from_decoded(views, pcm_, has_audio_, pc_, mo_,
                                           source_.empty() ? ctx.node_name() : source_);
    m.model_dir = dir_;
    ctx.count("frames", static_cast<int64_t>(frames_.size()));
    ctx.count("audio_samples", static_cast<int64_t>(pcm_.size()));
    frames_.clear();
    pcm_.clear();
    ctx.emit<QwenMedia>("media", std::move(m), Timestamp(0));
  }

 private:
  std::string where_, source_, dir_;
  qwen::ProcessorConfig pc_;
  qwen::MediaOptions mo_;
  std::vector<Frame> frames_;
  std::vector<float> pcm_;
  bool has_audio_ = false;
};
#endif

// ---- the towers ----

template <bool kVision>
class QwenTowerNode : public Node {
 public:
  static Contract contract() {
    Contract c;
    c.doc(kVision ? "Qwen2.5-Omni's vision tower (Qwen2.5-VL ViT + merger): fills a QwenMedia's "
                    "image or video embeddings."
                  : "Qwen2.5-Omni's audio tower (Whisper-style encoder, pooling, projection): "
                    "fills a QwenMedia's audio embeddings.")
        .input<QwenMedia>("media", "processed media")
        .output<QwenMedia>("media", "the same media with the tower's embeddings");
    return model_params(c, true);
  }
  void open(Context& ctx) override {
    part_.configure(ctx.params(),
                    ctx.node_name() + (kVision ? " (QwenVisionTower)" : " (QwenAudioTower)"),
                    kVision, !kVision, false, true);
  }
  Flow process(Context& ctx) override {
    const Packet& pk = ctx.input(0);
    if (pk.empty()) return Flow::kContinue;
    QwenMedia m = pk.get<QwenMedia>();
    const Thinker& t = part_.get(m.model_dir);
    try {
      if (kVision)
        t.encode_vision(m);
      else
        t.encode_audio(m);
    } catch (const c10::Error& e) {
      throw Error(std::string("libtorch error: ") + e.what_without_backtrace());
    }
    ctx.emit<QwenMedia>("media", std::move(m), pk.timestamp());
    return Flow::kContinue;
  }

 private:
  ThinkerPart part_;
};

// ---- QwenOmniSequencer ----

class QwenOmniSequencer : public Node {
 public:
  static Contract contract() {
    Contract c;
    c.doc(
         "One user turn (the media item, then the question) through the chat template and the "
         "tokenizer, the placeholders expanded to the towers' token counts (audio-in-video "
         "interleaved in seconds_per_chunk chunks) and get_rope_index's 3-D positions.")
        .optional_input<QwenMedia>("media", "encoded media (unconnected: a text-only question)")
        .input<std::string>("question", "the question (UTF-8)")
        .output<qwen::ThinkerPrompt>("prompt", "prompt ids, position ids, the towers' outputs")
        .param("system", "", "system prompt (empty: the chat template's own)");
    return model_params(c, false);
  }
  void open(Context& ctx) override {
    part_.configure(ctx.params(), ctx.node_name() + " (QwenOmniSequencer)", false, false, false,
                    false);
    const std::string s = ctx.params().get_string("system");
    if (!s.empty()) system_ = s;
  }
  Flow process(Context& ctx) override {
    const Packet& q = ctx.input(1);
    if (q.empty()) return Flow::kContinue;
    const Packet& mp = ctx.input(0);
    const QwenMedia none;
    const QwenMedia& m = mp.empty() ? none : mp.get<QwenMedia>();
    qwen::ThinkerPrompt p = part_.get(m.model_dir).layout(m, q.get<std::string>(), system_);
    ctx.count("prompt_tokens", static_cast<int64_t>(p.ids.size()));
    ctx.emit<qwen::ThinkerPrompt>("prompt", std::move(p), q.timestamp());
    return Flow::kContinue;
  }

 private:
  ThinkerPart part_;
  std::optional<std::string> system_;
};

// ---- QwenOmniGenerate ----

class QwenOmniGenerate : public Node {
 public:
  static Contract contract() {
    Contract c;
    c.doc(
         "Qwen2.5-Omni's language model on a prompt: embeds it with the towers' outputs scattered "
         "in, then generates (greedy, or sampling when temperature > 0) until an eos id of "
         "generation_config.json or max_new_tokens.")
        .input<qwen::ThinkerPrompt>("prompt", "from QwenOmniSequencer")
        .output<std::string>("text", "the answer (special tokens skipped)")
        .output<std::vector<int64_t>>("ids", "generated ids (the stop token included)")
        .param("max_new_tokens", int64_t{128}, "most tokens to generate")
        .param("temperature", 0.0, "sampling temperature (0: greedy)")
        .param("top_k", int64_t{0}, "sampling keeps the k most likely tokens (0: all)")
        .param("top_p", 1.0, "sampling keeps this probability mass")
        .param("seed", int64_t{0}, "sampling seed");
    return model_params(c, true);
  }
  void open(Context& ctx) override {
    const Params& p = ctx.params();
    const std::string where = ctx.node_name() + " (QwenOmniGenerate)";
    part_.configure(p, where, false, false, true, true);
    o_.max_new_tokens = p.get_int("max_new_tokens");
    const double t = p.get_double("temperature");
    o_.do_sample = t > 0;
    o_.temperature = t > 0 ? t : 1.0;
    o_.top_k = p.get_int("top_k");
    o_.top_p = p.get_double("top_p");
    o_.seed = static_cast<uint64_t>(p.get_int("seed"));
    if (o_.max_new_tokens < 0 || o_.top_k < 0 || !(o_.top_p > 0 && o_.top_p <= 1) || t < 0)
      throw ConfigError(where +
                        ": need max_new_tokens >= 0, top_k >= 0, 0 < top_p <= 1, temperature >= 0");
  }
  Flow process(Context& ctx) override {
    const Packet& pk = ctx.input(0);
    if (pk.empty()) return Flow::kContinue;
    qwen::ThinkerPrompt p = pk.get<qwen::ThinkerPrompt>();
    qwen::Answer a;
    const Thinker& t = part_.get(p.model_dir);
    try {
      t.embed(p);
      a = t.generate(p, o_);
    } catch (const c10::Error& e) {
      throw Error(std::string("libtorch error: ") + e.what_without_backtrace());
    }
    ctx.count("generated_tokens", static_cast<int64_t>(a.ids.size()));
    if (!a.stopped) ctx.count("hit_max_new_tokens");
    ctx.emit<std::string>("text", a.text, pk.timestamp());
    ctx.emit<std::vector<int64_t>>("ids", a.ids, pk.timestamp());
    return Flow::kContinue;
  }

 private:
  ThinkerPart part_;
  qwen::SampleOptions o_;
};

}  // namespace

void register_qwen_omni_nodes(Registry& r) {
#ifdef OMNI_WITH_MEDIA
  r.add<QwenOmniProcessor>("QwenOmniProcessor");
#endif
  r.add<QwenTowerNode<true>>("QwenVisionTower");
  r.add<QwenTowerNode<false>>("QwenAudioTower");
  r.add<QwenOmniSequencer>("QwenOmniSequencer");
  r.add<QwenOmniGenerate>("QwenOmniGenerate");
}

}  // namespace omni
