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

// The model parameters every Qwen node declares (declared once here, read through these).
constexpr Param<std::string> kModel{"model", "",
                                    "Hugging Face Qwen2.5-Omni directory (empty: the one the input "
                                    "packets name, i.e. the upstream node's)"};
constexpr Param<std::string> kModelDir{
    "model", "", "Hugging Face Qwen2.5-Omni directory (config.json, weights, tokenizer)"};
constexpr Param<std::string> kDevice{"device", "cpu", "cpu, cuda or cuda:N"};
constexpr Param<std::string> kDtype{"dtype", "fp32", "fp32 or bf16 (CPU); fp16 on CUDA"};

// The Thinker parts a node runs, opened from its `model` parameter in open(), or, when that is
// empty, from the directory the upstream node's packets carry (so one --set names the model).
class ThinkerPart {
 public:
  void configure(const Context& ctx, bool vision, bool audio, bool text, bool with_device) {
    o_.vision = vision;
    o_.audio = audio;
    o_.text = text;
    if (with_device) {
      o_.device = ctx.param(kDevice);
      o_.dtype = ctx.param(kDtype);
    }
    const std::string& model = ctx.param(kModel);
    fixed_ = !model.empty();
    if (fixed_) thinker_ = Thinker::open(model, o_);
  }
  // The node's own model when its parameter names one, else the packet's (`dir`).
  const Thinker& get(const std::string& dir) {
    if (thinker_ && (fixed_ || dir == thinker_->directory())) return *thinker_;
    if (dir.empty()) throw ConfigError("no model: set param 'model' (a Hugging Face directory)");
    thinker_ = Thinker::open(dir, o_);
    return *thinker_;
  }

 private:
  bool fixed_ = false;
  qwen::ThinkerOptions o_;
  std::unique_ptr<Thinker> thinker_;
};

Contract& model_params(Contract& c, bool device) {
  c.param(kModel);
  if (device) c.param(kDevice).param(kDtype);
  return c;
}

// ---- QwenOmniProcessor ----

#ifdef OMNI_WITH_MEDIA

class QwenOmniProcessor : public Node {
 public:
  static constexpr OptionalInput<Frame> kVideo{
      "video", "every decoded frame of the file (MediaSource fps: 0)"};
  static constexpr OptionalInput<AudioChunk> kAudio{"audio", "the file's sound, 16 kHz mono"};
  static constexpr Output<QwenMedia> kMedia{"media", "the processed media item (at timestamp 0)"};
  static constexpr Param<double> kFps{"fps", 2.0, "video frames sampled per second"};
  static constexpr Param<std::string> kAudioInVideo{
      "audio_in_video", "auto",
      "use a video's sound track (interleaved with it): on, off, auto (on when it has one)"};
  static constexpr Param<std::string> kSource{"source", "",
                                              "name of the media in messages (e.g. the file)"};
  static Contract contract() {
    Contract c;
    c.doc(
         "Collects one media file's decoded frames and 16 kHz mono audio (MediaSource with fps 0) "
         "and runs Qwen2.5-Omni's processors on it as qwen-omni-utils reads files: one frame "
         "without sound is an image, more frames a video (fetch_video's frame choice, the video "
         "processor), sound only an audio clip (Whisper features). Emits one QwenMedia at the "
         "end. Holds the clip's frames until then.")
        .input(kVideo)
        .input(kAudio)
        .output(kMedia)
        .param(kFps)
        .param(kAudioInVideo)
        .param(kSource)
        .param(kModelDir)
        .policy(InputPolicy::kImmediate);
    return c;
  }
  void open(Context& ctx) override {
    dir_ = ctx.param(kModelDir);
    if (dir_.empty()) throw ConfigError("param 'model' (a Hugging Face directory) is empty");
    pc_ = qwen::ProcessorConfig::from_directory(dir_);
    mo_.audio_in_video = qwen::parse_on_off(ctx.param(kAudioInVideo), "audio_in_video");
    mo_.fps = ctx.param(kFps);
    if (!(mo_.fps > 0)) throw ConfigError("param 'fps' must be positive");
    source_ = ctx.param(kSource);
  }
  Flow process(Context& ctx) override {
    if (const auto v = ctx.input(kVideo); !v.empty()) frames_.push_back(v.get());
    if (const auto a = ctx.input(kAudio); !a.empty()) {
      const AudioChunk& c = a.get();
      if (c.sample_rate != pc_.audio.sampling_rate || c.channels != 1)
        throw ConfigError("audio must be " + std::to_string(pc_.audio.sampling_rate) +
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
    ctx.emit(kMedia, std::move(m), Timestamp(0));
  }

 private:
  std::string source_, dir_;
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
  static constexpr Input<QwenMedia> kIn{"media", "processed media"};
  static constexpr Output<QwenMedia> kOut{"media", "the same media with the tower's embeddings"};
  static Contract contract() {
    Contract c;
    c.doc(kVision ? "Qwen2.5-Omni's vision tower (Qwen2.5-VL ViT + merger): fills a QwenMedia's "
                    "image or video embeddings."
                  : "Qwen2.5-Omni's audio tower (Whisper-style encoder, pooling, projection): "
                    "fills a QwenMedia's audio embeddings.")
        .input(kIn)
        .output(kOut);
    return model_params(c, true);
  }
  void open(Context& ctx) override { part_.configure(ctx, kVision, !kVision, false, true); }
  Flow process(Context& ctx) override {
    const auto pk = ctx.input(kIn);
    if (pk.empty()) return Flow::kContinue;
    QwenMedia m = pk.get();
    const Thinker& t = part_.get(m.model_dir);
    try {
      if (kVision)
        t.encode_vision(m);
      else
        t.encode_audio(m);
    } catch (const c10::Error& e) {
      throw Error(std::string("libtorch error: ") + e.what_without_backtrace());
    }
    ctx.emit(kOut, std::move(m), pk.timestamp());
    return Flow::kContinue;
  }

 private:
  ThinkerPart part_;
};

// ---- QwenOmniSequencer ----

class QwenOmniSequencer : public Node {
 public:
  static constexpr OptionalInput<QwenMedia> kMedia{
      "media", "encoded media (unconnected: a text-only question)"};
  static constexpr Input<std::string> kQuestion{"question", "the question (UTF-8)"};
  static constexpr Output<qwen::ThinkerPrompt> kPrompt{
      "prompt", "prompt ids, position ids, the towers' outputs"};
  static constexpr Param<std::string> kSystem{"system", "",
                                              "system prompt (empty: the chat template's own)"};
  static Contract contract() {
    Contract c;
    c.doc(
         "One user turn (the media item, then the question) through the chat template and the "
         "tokenizer, the placeholders expanded to the towers' token counts (audio-in-video "
         "interleaved in seconds_per_chunk chunks) and get_rope_index's 3-D positions.")
        .input(kMedia)
        .input(kQuestion)
        .output(kPrompt)
        .param(kSystem);
    return model_params(c, false);
  }
  void open(Context& ctx) override {
    part_.configure(ctx, false, false, false, false);
    if (const std::string& s = ctx.param(kSystem); !s.empty()) system_ = s;
  }
  Flow process(Context& ctx) override {
    const auto q = ctx.input(kQuestion);
    if (q.empty()) return Flow::kContinue;
    const auto mp = ctx.input(kMedia);
    const QwenMedia none;
    const QwenMedia& m = mp.empty() ? none : mp.get();
    qwen::ThinkerPrompt p = part_.get(m.model_dir).layout(m, q.get(), system_);
    ctx.count("prompt_tokens", static_cast<int64_t>(p.ids.size()));
    ctx.emit(kPrompt, std::move(p), q.timestamp());
    return Flow::kContinue;
  }

 private:
  ThinkerPart part_;
  std::optional<std::string> system_;
};

// ---- QwenOmniGenerate ----

class QwenOmniGenerate : public Node {
 public:
  static constexpr Input<qwen::ThinkerPrompt> kPrompt{"prompt", "from QwenOmniSequencer"};
  static constexpr Output<std::string> kText{"text", "the answer (special tokens skipped)"};
  static constexpr Output<std::vector<int64_t>> kIds{"ids",
                                                     "generated ids (the stop token included)"};
  static constexpr Param<int64_t> kMaxNewTokens{"max_new_tokens", 128, "most tokens to generate"};
  static constexpr Param<double> kTemperature{"temperature", 0.0,
                                              "sampling temperature (0: greedy)"};
  static constexpr Param<int64_t> kTopK{"top_k", 0,
                                        "sampling keeps the k most likely tokens (0: all)"};
  static constexpr Param<double> kTopP{"top_p", 1.0, "sampling keeps this probability mass"};
  static constexpr Param<int64_t> kSeed{"seed", 0, "sampling seed"};
  static Contract contract() {
    Contract c;
    c.doc(
         "Qwen2.5-Omni's language model on a prompt: embeds it with the towers' outputs scattered "
         "in, then generates (greedy, or sampling when temperature > 0) until an eos id of "
         "generation_config.json or max_new_tokens.")
        .input(kPrompt)
        .output(kText)
        .output(kIds)
        .param(kMaxNewTokens)
        .param(kTemperature)
        .param(kTopK)
        .param(kTopP)
        .param(kSeed);
    return model_params(c, true);
  }
  void open(Context& ctx) override {
    part_.configure(ctx, false, false, true, true);
    o_.max_new_tokens = ctx.param(kMaxNewTokens);
    const double t = ctx.param(kTemperature);
    o_.do_sample = t > 0;
    o_.temperature = t > 0 ? t : 1.0;
    o_.top_k = ctx.param(kTopK);
    o_.top_p = ctx.param(kTopP);
    o_.seed = static_cast<uint64_t>(ctx.param(kSeed));
    if (o_.max_new_tokens < 0 || o_.top_k < 0 || !(o_.top_p > 0 && o_.top_p <= 1) || t < 0)
      throw ConfigError("need max_new_tokens >= 0, top_k >= 0, 0 < top_p <= 1, temperature >= 0");
  }
  Flow process(Context& ctx) override {
    const auto pk = ctx.input(kPrompt);
    if (pk.empty()) return Flow::kContinue;
    qwen::ThinkerPrompt p = pk.get();
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
    ctx.emit(kText, a.text, pk.timestamp());
    ctx.emit(kIds, a.ids, pk.timestamp());
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
