#include "models/shapes_voices/pipeline.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <filesystem>
#include <mutex>

#include "core/error.h"
#include "core/graph.h"
#include "fusion/fused_sequence.h"
#include "fusion/fusion_nodes.h"
#include "modalities/audio/audio_encoder_node.h"
#include "modalities/common/safetensors.h"
#include "modalities/image/image_nodes.h"
#include "modalities/media/probe.h"
#include "models/shapes_voices/task.h"
#include "nodes/all_nodes.h"

namespace fs = std::filesystem;

namespace omni::demo {

const Registry& demo_registry() {
  static const Registry registry = [] {
    Registry r;
    register_all_nodes(r);
    return r;
  }();
  return registry;
}

namespace {

std::map<std::string, ParamValue> source_params(const std::string& path, const DemoConfig& c,
                                                bool audio) {
  return {{"path", path},
          {"fps", c.fps},
          {"audio", audio},
          {"audio_rate", int64_t{16000}},
          {"audio_channels", int64_t{1}}};
}

std::map<std::string, ParamValue> preprocess_params(const DemoConfig& c) {
  return {{"mode", c.preprocess_mode}, {"size", c.image_size}};
}

// The whole clip's log-mel in one window (normalised over the window, as Whisper does per input).
std::map<std::string, ParamValue> log_mel_params(const DemoConfig& c) {
  return {{"n_mels", c.n_mels},
          {"mode", std::string("whole")},
          {"window_s", 30.0},
          {"normalize", std::string("window")}};
}

// Adds node `name` of catalogue type `type`. With a loaded model (the per-clip graphs of a batch
// share one) the node is built on its part (`part(model)`: one copy of the weights for every
// graph); otherwise the registry builds it from `params`, loading the weights file itself.
template <class NodeT, class Part>
void add_model_node(GraphBuilder& b, const std::string& name, const std::string& type,
                    const std::shared_ptr<ShapesVoices>& model, Part part,
                    std::map<std::string, ParamValue> params) {
  if (!model) {
    b.add(name, type, std::move(params));
    return;
  }
  b.add_instance(
      name, type, NodeT::contract(),
      [model, part] { return std::make_unique<NodeT>(part(*model)); }, std::move(params));
}

}  // namespace

bool has_audio_stream(const std::string& path) {
  const auto probe = probe_media(path);
  for (const auto& s : probe.value("streams", nlohmann::json::array()))
    if (s.value("type", "") == "audio") return true;
  return false;
}

std::map<std::string, ParamValue> vision_encoder_params(const DemoConfig& c,
                                                        const std::string& weights, int64_t batch,
                                                        const std::string& device) {
  return {{"image_size", c.image_size},
          {"patch_size", c.patch_size},
          {"width", c.vit_width},
          {"depth", c.vit_depth},
          {"heads", c.vit_heads},
          {"merge", c.merge},
          {"out_dim", c.dim},
          {"weights", weights},
          {"prefix", std::string(kVisionPrefix)},
          {"modality", std::string("video")},
          {"batch", batch},
          {"stream", std::string("clip/video")},
          {"device", device}};
}

std::map<std::string, ParamValue> audio_encoder_params(const DemoConfig& c,
                                                       const std::string& weights,
                                                       const std::string& device) {
  return {{"n_mels", c.n_mels},
          {"width", c.audio_width},
          {"depth", c.audio_depth},
          {"heads", c.audio_heads},
          {"out_dim", c.dim},
          {"weights", weights},
          {"prefix", std::string(kAudioPrefix)},
          {"stream", std::string("clip/audio")},
          {"device", device}};
}

void add_answer_nodes(GraphBuilder& b, const DemoConfig& c, const std::string& weights,
                      const AskGraphOptions& o) {
  if (o.questions.empty()) throw ConfigError("ask graph: no questions");
  StringList questions;
  for (int q : o.questions) {
    if (q < 0 || q >= kNumQuestions)
      throw ConfigError("ask graph: question index " + std::to_string(q) + " out of range");
    questions.push_back(kQuestionText[size_t(q)]);
  }
  std::map<std::string, ParamValue> generate = {{"dim", c.dim},
                                                {"layers", c.layers},
                                                {"heads", c.heads},
                                                {"kv_heads", c.kv_heads},
                                                {"ffn", c.ffn},
                                                {"weights", weights},
                                                {"prefix", std::string(kFusionPrefix)},
                                                {"max_new_tokens", c.max_answer_tokens},
                                                {"device", o.device},
                                                {"share_prefix", o.share_prefix || o.prefill},
                                                {"batch_questions", o.batch_questions}};
  b.add("question", "TextSource", {{"texts", questions}})
      .add("tokenize", "TextEncoder",
           {{"tokenizer", std::string("byte")}, {"stream", std::string("question")}})
      .add("seq", "UnifiedSequencer", {{"prompt_per_text", true}, {"emit_partial", o.prefill}});
  add_model_node<Generate>(
      b, "generate", "Generate", o.model, [](ShapesVoices& m) { return m->fusion; }, generate);
  b.connect("question.text", "tokenize.text")
      .connect("tokenize.tokens", "seq.text")
      .connect("seq.sequence", "generate.sequence")
      .output("generate.text")
      .output("generate.logits")
      .output("seq.sequence");
  if (o.prefill) b.connect("seq.partial", "generate.prefill");
}

GraphBuilder ask_graph(const std::string& clip, const DemoConfig& c, const std::string& weights,
                       const AskGraphOptions& o) {
  auto src = source_params(clip, c, o.audio);
  src["audio_chunk_ms"] = o.audio_chunk_ms;
  src["threads"] = o.decode_threads;
  src["speed"] = o.speed;
  // 0: every frame of the clip in one forward (the encoder flushes its batch at the end).
  const int64_t vision_batch = o.vision_batch > 0 ? o.vision_batch : int64_t{1} << 40;
  const auto vision = vision_encoder_params(c, weights, vision_batch, o.device);
  GraphBuilder b("ask");
  add_answer_nodes(b, c, weights, o);
  b.add("src", "MediaSource", std::move(src)).add("pre", "ImagePreprocess", preprocess_params(c));
  add_model_node<ImageEncoder>(
      b, "vision", "ImageEncoder", o.model, [](ShapesVoices& m) { return m->vision; }, vision);
  b.connect("src.video", "pre.in")
      .connect("pre.out", "vision.image")
      .connect("vision.tokens", "seq.video")
      .output("src.video");
  if (o.audio) {
    auto mel = log_mel_params(c);
    mel["window_s"] = o.audio_window_s;
    auto audio = audio_encoder_params(c, weights, o.device);
    audio["window_s"] = o.audio_window_s;
    b.add("mel", "LogMel", std::move(mel));
    add_model_node<AudioEncoderNode>(
        b, "audio", "AudioEncoder", o.model, [](ShapesVoices& m) { return m->audio; }, audio);
    b.connect("src.audio", "mel.audio")
        .connect("mel.mel", "audio.mel")
        .connect("audio.tokens", "seq.audio")
        .output("src.audio");
  }
  return b;
}

ClipTensors extract_clip(const std::string& path, const DemoConfig& config) {
  const bool audio = has_audio_stream(path);
  GraphBuilder b("extract");
  b.add("src", "MediaSource", source_params(path, config, audio))
      .add("pre", "ImagePreprocess", preprocess_params(config))
      .connect("src.video", "pre.in")
      .output("pre.out");
  if (audio)
    b.add("mel", "LogMel", log_mel_params(config))
        .connect("src.audio", "mel.audio")
        .output("mel.mel");
  auto graph = b.build(demo_registry());
  ClipTensors t;
  std::mutex mu;
  graph->observe("pre.out", [&](const Packet& p) {
    std::lock_guard lock(mu);
    t.frames.push_back(p.get<at::Tensor>());
    t.frame_us.push_back(p.timestamp().us());
  });
  if (audio)
    graph->observe("mel.mel", [&](const Packet& p) {
      std::lock_guard lock(mu);
      t.mels.push_back(p.get<at::Tensor>());
      t.mel_us.push_back(p.timestamp().us());
    });
  RunOptions ro;
  ro.workers = 2;
  graph->run(ro);
  return t;
}

std::string default_model_dir() {
  if (fs::exists("models/shapes_voices/config.json")) return "models/shapes_voices";
  return std::string(OMNI_DEMO_SOURCE_DIR) + "/models/shapes_voices";
}

Asker::Asker(const std::string& model_dir, const std::string& device) : device_(device) {
  const fs::path dir(model_dir);
  config_ = DemoConfig::load((dir / "config.json").string());
  weights_ = (dir / "model.safetensors").string();
  // Validate the weights file up front so a damaged one is reported before any media work.
  if (!fs::exists(weights_)) throw InputError("model weights '" + weights_ + "' do not exist");
  SafeTensorsFile::open(weights_);
}

AskResult Asker::ask(const std::string& clip, const std::string& question) const {
  const auto t0 = std::chrono::steady_clock::now();
  const int q = question_index(question);
  if (q < 0) throw InputError("unknown question \"" + question + "\"");
  AskResult r;
  r.has_audio = has_audio_stream(clip);
  if (kQuestionNeedsAudio[size_t(q)] && !r.has_audio)
    throw InputError("'" + clip + "' has no audio track, so \"" + kQuestionText[size_t(q)] +
                     "\" cannot be answered (the question needs the spoken word)");
  AskGraphOptions o;
  o.questions = {q};
  o.audio = r.has_audio;
  o.device = device_;
  auto graph = ask_graph(clip, config_, weights_, o).build(demo_registry());
  std::mutex mu;
  int answers = 0;
  graph->observe("generate.text", [&](const Packet& p) {
    std::lock_guard lock(mu);
    r.answer = p.get<std::string>();
    ++answers;
  });
  graph->observe("seq.sequence", [&](const Packet& p) {
    std::lock_guard lock(mu);
    r.sequence = p.get<FusedSequence>();
    for (const auto& [k, v] : r.sequence.tokens) r.tokens[k] += v;
  });
  RunOptions ro;
  ro.workers = 2;
  graph->run(ro);
  if (answers != 1)
    throw RunError("ask graph on '" + clip + "' produced " + std::to_string(answers) +
                   " answers (expected exactly one)");
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace omni::demo
