#include "models/shapes_voices/batch.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "core/contract.h"
#include "core/error.h"
#include "core/manifest.h"
#include "fusion/fusion_nodes.h"
#include "fusion/heads.h"
#include "modalities/audio/log_mel.h"
#include "modalities/common/safetensors.h"
#include "modalities/common/torch_compat.h"
#include "modalities/common/weights.h"
#include "modalities/image/frame_tensor.h"
#include "modalities/image/preprocess.h"
#include "modalities/media/media_reader.h"
#include "models/shapes_voices/pipeline.h"
#include "models/shapes_voices/task.h"

namespace fs = std::filesystem;

namespace omni::demo {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Question index for a manifest's "question" value: the exact text or its key ("shape", ...).
int manifest_question(const std::string& q) {
  const int i = question_index(q);
  if (i >= 0) return i;
  for (int k = 0; k < kNumQuestions; ++k)
    if (q == kQuestionKey[size_t(k)]) return k;
  return -1;
}

}  // namespace

ClipJob clip_job_from_line(int64_t line, const std::string& text, const std::string& path) {
  ClipJob job;
  job.line = line;
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    job.file = j.at("file").get<std::string>();
    const fs::path dir = fs::path(path).parent_path();
    job.path = fs::path(job.file).is_absolute() ? job.file : (dir / job.file).string();
    if (j.contains("question")) {
      const std::string q = j.at("question").get<std::string>();
      const int qi = manifest_question(q);
      if (qi < 0) throw InputError("unknown question \"" + q + "\"");
      job.questions = {qi};
    } else {
      for (int k = 0; k < kNumQuestions; ++k) job.questions.push_back(k);
    }
    job.truth = std::move(j);
  } catch (const std::exception& e) {
    job.error = path + ":" + std::to_string(line) + ": unusable manifest line: " + e.what();
    job.questions = {-1};
  }
  return job;
}

std::vector<ClipJob> read_batch_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError("cannot open manifest '" + path + "'");
  std::vector<ClipJob> jobs;
  std::string text;
  int64_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    jobs.push_back(clip_job_from_line(line, text, path));
  }
  return jobs;
}

int64_t count_pairs(const std::vector<ClipJob>& jobs) {
  int64_t n = 0;
  for (const auto& j : jobs) n += static_cast<int64_t>(j.questions.size());
  return n;
}

// ---- stages ----

DecodedClip decode_clip(const std::string& path, const DemoConfig& config) {
  if (!fs::exists(path)) throw InputError("clip '" + path + "' does not exist");
  // The ask graph's MediaSource parameters (pipeline.cpp source_params).
  MediaReaderOptions o;
  o.path = path;
  o.fps = config.fps;
  o.audio_rate = 16000;
  o.audio_channels = 1;
  o.audio_chunk_ms = 1000;
  // One decoder thread: these clips are tiny, and the graph already runs clips in parallel.
  o.threads = 1;
  MediaReader reader(std::move(o));
  DecodedClip d;
  d.has_audio = reader.has_audio();
  MediaReader::Item item;
  bool first_audio = true;
  while (reader.next(item)) {
    if (item.kind == MediaReader::Item::Kind::kVideo) {
      d.frames.push_back(std::move(item.frame));
    } else if (item.kind == MediaReader::Item::Kind::kAudio) {
      if (first_audio) d.audio_start_us = item.audio.start_us;
      first_audio = false;
      d.pcm.insert(d.pcm.end(), item.audio.samples.begin(), item.audio.samples.end());
    }
  }
  return d;
}

ClipInputs preprocess_clip(const DecodedClip& clip, const DemoConfig& config) {
  ClipInputs in;
  in.has_audio = clip.has_audio;
  PreprocessOptions po =
      PreprocessOptions::defaults_for(preprocess_mode_from_name(config.preprocess_mode));
  po.size = static_cast<int>(config.image_size);
  in.frames.reserve(clip.frames.size());
  for (const Frame& f : clip.frames) {
    in.frames.push_back(preprocess_frame(f, po));
    in.frame_us.push_back(f.pts_us);
  }
  // LogMel node, mode "whole", window_s 30, normalize "window": frames of the whole signal cut into
  // 3000-frame windows, each normalised against its own maximum.
  if (!clip.pcm.empty()) {
    LogMelStream stream(static_cast<int>(config.n_mels));
    stream.push(clip.pcm.data(), static_cast<int64_t>(clip.pcm.size()));
    if (stream.finish()) {
      while (stream.frames_ready() > 0) {
        const int64_t first = stream.next_frame_index();
        const int64_t k = std::min<int64_t>(kWhisperChunkFrames, stream.frames_ready());
        std::vector<float> raw = stream.take(k);
        normalize_log_mel(raw.data(), static_cast<int64_t>(raw.size()));
        in.mels.push_back(at::from_blob(raw.data(), {config.n_mels, k}, at::kFloat).clone());
        in.mel_us.push_back(clip.audio_start_us + first * kWhisperHop * 1000000 / 16000);
      }
    }
  }
  return in;
}

ClipTokens encode_clip(ShapesVoicesImpl& model, const ClipInputs& in, int64_t vision_batch) {
  // Inference mode rather than no-grad: no view/version bookkeeping on the many small ops.
  c10::InferenceMode inference;
  ClipTokens t;
  t.has_audio = in.has_audio;
  const size_t n = in.frames.size();
  size_t i = 0;
  while (i < n) {
    // A forward holds frames of one size (like ImageEncoder's batches), at most vision_batch.
    size_t j = i + 1;
    while (j < n && in.frames[j].sizes() == in.frames[i].sizes() &&
           (vision_batch <= 0 || int64_t(j - i) < vision_batch))
      ++j;
    std::vector<at::Tensor> group(in.frames.begin() + long(i), in.frames.begin() + long(j));
    std::vector<int64_t> us(in.frame_us.begin() + long(i), in.frame_us.begin() + long(j));
    auto chunks = encode_video(model, at::stack(group), us, "clip/video");
    for (auto& c : chunks) {
      c.grid_t = 1;
      t.video.push_back(std::move(c));
    }
    i = j;
  }
  t.audio = encode_audio(model, in.mels, in.mel_us, "clip/audio");
  return t;
}

namespace {

// One answer slot per question, in order; the ones that cannot be asked (unknown, or needing the
// audio a silent clip lacks) carry their error, the others are listed in `asked`.
std::vector<QuestionAnswer> plan_answers(const std::vector<int>& questions, bool has_audio,
                                         std::vector<int>& asked) {
  std::vector<QuestionAnswer> out;
  for (int q : questions) {
    QuestionAnswer a;
    a.question = q;
    if (q < 0 || q >= kNumQuestions)
      a.error = "unknown question";
    else if (kQuestionNeedsAudio[size_t(q)] && !has_audio)
      a.error = std::string("the clip has no audio track, so \"") + kQuestionText[size_t(q)] +
                "\" cannot be answered (the question needs the spoken word)";
    else
      asked.push_back(q);
    out.push_back(std::move(a));
  }
  return out;
}

// Runs a graph with the answering nodes of pipeline.h (add_answer_nodes) on one thread and puts
// Generate's answers and prompt logits, in question order, into the slots without an error.
void run_answering_graph(const GraphBuilder& b, std::vector<QuestionAnswer>& answers) {
  auto graph = b.build(demo_registry());
  std::mutex mu;
  std::vector<std::string> texts;
  std::vector<at::Tensor> logits;
  std::vector<int64_t> lengths;
  graph->observe("generate.text", [&](const Packet& p) {
    std::lock_guard lock(mu);
    texts.push_back(p.get<std::string>());
  });
  graph->observe("generate.logits", [&](const Packet& p) {
    std::lock_guard lock(mu);
    logits.push_back(p.get<at::Tensor>());
  });
  graph->observe("seq.sequence", [&](const Packet& p) {
    std::lock_guard lock(mu);
    lengths.push_back(p.get<FusedSequence>().length());
  });
  RunOptions ro;
  ro.workers = 1;  // callers run several graphs side by side instead
  graph->run(ro);
  size_t k = 0;  // the graph answers the askable questions in order
  for (auto& a : answers) {
    if (!a.error.empty()) continue;
    if (k >= texts.size() || k >= logits.size())
      throw RunError("the ask graph gave " + std::to_string(texts.size()) +
                     " answers for more questions");
    a.answer = texts[k];
    a.prompt_logits = logits[k];
    a.tokens = k < lengths.size() ? lengths[k] : 0;
    ++k;
  }
  if (k != texts.size())
    throw RunError("the ask graph gave " + std::to_string(texts.size()) + " answers for " +
                   std::to_string(k) + " questions");
}

// A clip's encoded tokens into a graph, as the encoder nodes would have emitted them.
class TokenFeed : public Node {
 public:
  static constexpr Output<TokenChunk> kVideo{"video", "video frame tokens"};
  static constexpr Output<TokenChunk> kAudio{"audio", "audio window tokens"};
  static Contract contract() {
    return Contract().doc("a clip's encoded tokens").output(kVideo).output(kAudio);
  }
  explicit TokenFeed(const ClipTokens* tokens) : tokens_(tokens) {}
  Flow process(Context& ctx) override {
    for (const TokenChunk& c : tokens_->video) ctx.emit(kVideo, c, Timestamp(c.start_us));
    for (const TokenChunk& c : tokens_->audio) ctx.emit(kAudio, c, Timestamp(c.start_us));
    return Flow::kDone;
  }

 private:
  const ClipTokens* tokens_;
};

}  // namespace

std::vector<QuestionAnswer> answer_clip(ShapesVoicesImpl& model, const ClipTokens& tokens,
                                        const std::vector<int>& questions, bool share_prefix,
                                        bool batch_questions) {
  AskGraphOptions o;
  std::vector<QuestionAnswer> out = plan_answers(questions, tokens.has_audio, o.questions);
  if (o.questions.empty()) return out;
  // The answering half of the ask graph (UnifiedSequencer -> Generate) on this model.
  o.model = std::make_shared<ShapesVoices>(
      std::dynamic_pointer_cast<ShapesVoicesImpl>(model.shared_from_this()));
  o.share_prefix = share_prefix;
  o.batch_questions = share_prefix && batch_questions;
  GraphBuilder b("answer");
  add_answer_nodes(b, model.config, /*weights=*/"", o);
  b.add_instance("tokens", "TokenFeed", TokenFeed::contract(),
                 [&tokens] { return std::make_unique<TokenFeed>(&tokens); });
  b.connect("tokens.video", "seq.video").connect("tokens.audio", "seq.audio");
  run_answering_graph(b, out);
  return out;
}

ShapesVoices load_demo_model(const std::string& model_dir, DemoConfig* config) {
  const fs::path dir(model_dir);
  const DemoConfig c = DemoConfig::load((dir / "config.json").string());
  const std::string weights = (dir / "model.safetensors").string();
  if (!fs::exists(weights)) throw InputError("model weights '" + weights + "' do not exist");
  ShapesVoices m(c);
  load_weights(*m, *SafeTensorsFile::open(weights));
  m->eval();
  if (config) *config = c;
  return m;
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // kilobytes on Linux
}

namespace {

// Busy and total CPU time of the whole machine so far (first line of /proc/stat), in ticks.
bool cpu_times(uint64_t& busy, uint64_t& total) {
  std::ifstream in("/proc/stat");
  std::string cpu;
  if (!(in >> cpu) || cpu != "cpu") return false;
  std::array<uint64_t, 8> t{};  // user nice system idle iowait irq softirq steal
  for (auto& v : t)
    if (!(in >> v)) return false;
  total = 0;
  for (uint64_t v : t) total += v;
  busy = total - t[3] - t[4];
  return true;
}

}  // namespace

int auto_workers() {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  // What the other processes use right now: the machine's busy time over 200 ms. (The 1-minute
  // load average lags: right after another CPU-bound job ends, e.g. the previous benchmark, it
  // still reports a busy core for tens of seconds.)
  double busy_cores = -1;
  uint64_t b0 = 0, t0 = 0, b1 = 0, t1 = 0;
  if (cpu_times(b0, t0)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (cpu_times(b1, t1) && t1 > t0)
      busy_cores = double(cores) * double(b1 - b0) / double(t1 - t0);
  }
  if (busy_cores < 0) {
    double load[1] = {0};
    busy_cores = getloadavg(load, 1) == 1 ? load[0] : 0.0;
  }
  const int idle = static_cast<int>(std::lround(double(cores) - busy_cores));
  return std::clamp(idle, 1, std::min(cores, 2));
}

// ---- the graph ----

namespace {

// One record per question of the job, each carrying `error`.
std::vector<nlohmann::ordered_json> error_records(const ClipJob& job, const std::string& error) {
  std::vector<nlohmann::ordered_json> out;
  for (int q : job.questions) {
    nlohmann::ordered_json r;
    r["line"] = job.line;
    r["file"] = job.file;
    r["question"] = q >= 0 ? nlohmann::ordered_json(kQuestionText[size_t(q)]) : nullptr;
    r["error"] = error;
    out.push_back(std::move(r));
  }
  return out;
}

// The message a clip's records carry for a failure: the node's own message (a graph's RunError
// keeps the exception the node threw), without the runtime's node prefix.
std::string failure_message(const std::exception& e) {
  if (const auto* run = dynamic_cast<const RunError*>(&e); run && run->cause()) {
    try {
      std::rethrow_exception(run->cause());
    } catch (const std::exception& inner) {
      return inner.what();
    } catch (...) {
    }
  }
  return e.what();
}

// What the demo nodes below pass along: one manifest clip.
struct ClipWork {
  std::shared_ptr<const ClipJob> job;
};

class JobSource : public Node {
 public:
  static constexpr Output<ClipWork> kOut{"out", "a clip job"};
  static Contract contract() {
    return Contract().doc("the manifest's clips, one packet per clip").output(kOut);
  }
  explicit JobSource(const std::vector<ClipJob>* jobs) : jobs_(jobs) {}
  Flow process(Context& ctx) override {
    if (next_ >= jobs_->size() || ctx.stop_requested()) return Flow::kDone;
    ctx.emit(kOut, ClipWork{std::make_shared<const ClipJob>((*jobs_)[next_])},
             Timestamp(int64_t(next_)));
    ++next_;
    return next_ < jobs_->size() ? Flow::kContinue : Flow::kDone;
  }

 private:
  const std::vector<ClipJob>* jobs_;
  size_t next_ = 0;
};

// One manifest line -> its clip job (the same job read_batch_manifest makes of that line).
class JobOfLine : public Node {
 public:
  static constexpr Input<ManifestItem> kIn{"in", "a manifest line"};
  static constexpr Output<ClipWork> kOut{"out", "its clip job"};
  static Contract contract() {
    return Contract()
        .doc("a manifest line as a clip job")
        .input(kIn)
        .output(kOut)
        .policy(InputPolicy::kImmediate);
  }
  explicit JobOfLine(std::string manifest) : manifest_(std::move(manifest)) {}
  Flow process(Context& ctx) override {
    const auto p = ctx.input(kIn);
    if (p.empty()) return Flow::kContinue;
    const ManifestItem& item = p.get();
    ctx.emit(kOut,
             ClipWork{std::make_shared<const ClipJob>(
                 clip_job_from_line(item.line(), item.text, manifest_))},
             p.timestamp());
    return Flow::kContinue;
  }

 private:
  std::string manifest_;
};

// A clip job -> its records: the ask graph (ask_graph: the library's MediaSource, ImagePreprocess,
// ImageEncoder, LogMel, AudioEncoder, UnifiedSequencer and Generate nodes, the same graph a single
// question runs) over the clip with the job's questions, on the loaded model. Glue only: which
// questions can be asked, and records of the answers; a failure of the clip's graph becomes its
// error records, not a failure of this graph.
class AskClip : public Node {
 public:
  struct Setup {
    std::shared_ptr<ShapesVoices> model;
    DemoConfig config;
    std::string weights;
    AskGraphOptions graph;  // everything but the clip's questions and audio
    std::function<void(const ClipJob&, const QuestionAnswer&)> on_answer;
  };
  static constexpr Input<ClipWork> kIn{"in", "a clip job"};
  static constexpr Output<ItemRecords> kOut{"out", "its records, one per question"};
  static Contract contract() {
    // Reentrant: with several workers, several clips' graphs run at once (their records still
    // leave in job order).
    return Contract()
        .doc("answers a clip's questions through the ask graph; failures become error records")
        .input(kIn)
        .output(kOut)
        .policy(InputPolicy::kImmediate)
        .reentrant();
  }
  explicit AskClip(std::shared_ptr<const Setup> setup) : setup_(std::move(setup)) {}
  Flow process(Context& ctx) override {
    const auto p = ctx.input(kIn);
    if (p.empty()) return Flow::kContinue;
    const ClipJob& job = *p.get().job;
    ItemRecords out;
    if (!job.error.empty()) {
      out.records = error_records(job, job.error);
    } else {
      try {
        out.records = answer(job);
      } catch (const std::exception& e) {
        out.records = error_records(job, failure_message(e));
        ctx.count("failed_clips");
      }
    }
    ctx.emit(kOut, std::move(out), p.timestamp());
    return Flow::kContinue;
  }

 private:
  std::vector<nlohmann::ordered_json> answer(const ClipJob& job) const {
    const Setup& s = *setup_;
    if (!fs::exists(job.path)) throw InputError("clip '" + job.path + "' does not exist");
    AskGraphOptions o = s.graph;
    o.audio = has_audio_stream(job.path);
    std::vector<QuestionAnswer> answers = plan_answers(job.questions, o.audio, o.questions);
    if (!o.questions.empty())
      run_answering_graph(ask_graph(job.path, s.config, s.weights, o), answers);
    std::vector<nlohmann::ordered_json> records;
    for (const auto& a : answers) {
      if (s.on_answer) s.on_answer(job, a);
      nlohmann::ordered_json r;
      r["line"] = job.line;
      r["file"] = job.file;
      r["question"] = kQuestionText[size_t(a.question)];
      if (!a.error.empty()) {
        r["error"] = a.error;
      } else {
        r["answer"] = a.answer;
        const char* key = kQuestionKey[size_t(a.question)];
        if (job.truth.is_object() && job.truth.contains(key) && job.truth[key].is_string()) {
          r["expected"] = job.truth[key];
          r["correct"] = a.answer == job.truth[key].get<std::string>();
        }
      }
      records.push_back(std::move(r));
    }
    return records;
  }

  std::shared_ptr<const Setup> setup_;
};

}  // namespace

BatchSummary run_batch(const std::vector<ClipJob>& jobs, const BatchOptions& o) {
  BatchSummary s;
  set_compute_threads(o.torch_threads);
  const auto t_load = Clock::now();
  auto setup = std::make_shared<AskClip::Setup>();
  setup->model = std::make_shared<ShapesVoices>(load_demo_model(o.model_dir, &setup->config));
  s.load_seconds = ms_since(t_load) / 1000.0;
  setup->weights = (fs::path(o.model_dir) / "model.safetensors").string();
  setup->graph.model = setup->model;
  setup->graph.vision_batch = o.vision_batch;
  // One decoder thread: these clips are tiny, and the clip's graph runs its nodes in parallel.
  setup->graph.decode_threads = 1;
  setup->graph.share_prefix = o.share_prefix;
  setup->graph.batch_questions = o.share_prefix && o.batch_questions;
  setup->on_answer = o.on_answer;
  s.workers = o.workers > 0 ? o.workers : auto_workers();

  GraphBuilder b("ask_batch");
  if (o.manifest.empty()) {
    b.add_instance("jobs", "ClipJobs", JobSource::contract(),
                   [&jobs] { return std::make_unique<JobSource>(&jobs); });
  } else {
    // dist::run_manifest: the lines the installed ItemFeed hands out, each clip's records whole.
    b.add<ManifestSource>("lines", {{"path", o.manifest}});
    b.add_instance("jobs", "ClipJobOf", JobOfLine::contract(),
                   [m = o.manifest] { return std::make_unique<JobOfLine>(m); });
    b.connect("lines.out", "jobs.in");
    b.add<RecordWriter>("sink");
  }
  b.add_instance("ask", "AskClip", AskClip::contract(),
                 [setup] { return std::make_unique<AskClip>(setup); });
  b.connect("jobs.out", "ask.in").output("ask.out");
  if (!o.manifest.empty()) b.connect("ask.out", "sink.in");
  auto graph = b.build();
  graph->observe("ask.out", [&](const Packet& p) {
    ++s.clips;
    for (const auto& r : p.get<ItemRecords>().records) {
      ++s.pairs;
      if (r.contains("error")) {
        ++s.errors;
      } else {
        ++s.answered;
        if (r.contains("correct")) {
          ++s.with_truth;
          if (r["correct"].get<bool>()) ++s.correct;
        }
      }
      if (o.on_record) o.on_record(r);
    }
  });
  RunOptions ro;
  // Each worker runs one clip's graph at a time (on one thread of its own), so consecutive clips
  // overlap across the workers.
  ro.workers = s.workers;
  ro.trace_path = o.trace_path;
  const auto t0 = Clock::now();
  graph->run(ro);
  s.seconds = ms_since(t0) / 1000.0;
  s.stats = graph->stats();
  s.max_rss_mb = peak_rss_mb();
  return s;
}

}  // namespace omni::demo
