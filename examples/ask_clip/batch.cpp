#include "examples/ask_clip/batch.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <dlfcn.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <thread>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "core/contract.h"
#include "core/error.h"
#include "examples/shapes_voices/task.h"
#include "fusion/fusion_nodes.h"
#include "fusion/heads.h"
#include "modalities/audio/log_mel.h"
#include "modalities/common/safetensors.h"
#include "modalities/common/weights.h"
#include "modalities/image/frame_tensor.h"
#include "modalities/image/preprocess.h"
#include "modalities/media/media_reader.h"

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

std::vector<ClipJob> read_batch_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError("cannot open manifest '" + path + "'");
  const fs::path dir = fs::path(path).parent_path();
  std::vector<ClipJob> jobs;
  std::string text;
  int64_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    ClipJob job;
    job.line = line;
    try {
      nlohmann::json j = nlohmann::json::parse(text);
      job.file = j.at("file").get<std::string>();
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
    jobs.push_back(std::move(job));
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

std::vector<QuestionAnswer> answer_clip(ShapesVoicesImpl& model, const ClipTokens& tokens,
                                        const std::vector<int>& questions, bool share_prefix) {
  c10::InferenceMode inference;
  FusionTransformerImpl& f = *model.fusion;
  // The Generate node's decoding parameters in the ask graph.
  DecodeOptions d;
  d.max_new_tokens = model.config.max_answer_tokens;
  d.greedy = true;
  d.stop_tokens = {SpecialTokens{}.eos};
  std::vector<QuestionAnswer> out;
  KVCache cache;
  int64_t prefix = -1;  // clip tokens in the cache (-1: not run yet)
  for (int q : questions) {
    QuestionAnswer a;
    a.question = q;
    if (q < 0 || q >= kNumQuestions) {
      a.error = "unknown question";
      out.push_back(std::move(a));
      continue;
    }
    if (kQuestionNeedsAudio[size_t(q)] && !tokens.has_audio) {
      a.error = std::string("the clip has no audio track, so \"") + kQuestionText[size_t(q)] +
                "\" cannot be answered (the question needs the spoken word)";
      out.push_back(std::move(a));
      continue;
    }
    const FusedSequence seq =
        layout_prompt(tokens.video, tokens.audio, question_chunk(kQuestionText[size_t(q)]));
    const at::Tensor embeds = embed_sequence(f, seq);
    const int64_t L = seq.length();
    a.tokens = L;
    GenerateResult r;
    if (share_prefix) {
      // The question is the only text and comes after the media: everything before it is the
      // same for every question about this clip.
      const int64_t p = L - (seq.tokens.count("text") ? seq.tokens.at("text") : 0);
      if (prefix < 0) {
        if (p > 0) f.forward(embeds.slice(1, 0, p), seq.positions.slice(1, 0, p), &cache);
        prefix = p;
      } else if (p != prefix) {
        throw RunError("answer_clip: the clip's prefix changed between questions (" +
                       std::to_string(prefix) + " vs " + std::to_string(p) + " tokens)");
      }
      r = generate(f, embeds.slice(1, p), seq.positions.slice(1, p), d, &cache);
      cache.truncate(prefix);
    } else {
      r = generate(f, embeds, seq.positions, d, nullptr);
    }
    a.answer = decode_byte_ids(r.tokens);
    out.push_back(std::move(a));
  }
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

void set_compute_threads(int n) {
  if (n <= 0) return;
  at::set_num_threads(n);
  // Looked up at run time: the BLAS behind libtorch may not be OpenBLAS.
  using SetThreads = void (*)(int);
  if (auto* f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
}

int auto_workers() {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  double load[1] = {0};
  const double busy = getloadavg(load, 1) == 1 ? load[0] : 0.0;
  const int idle = static_cast<int>(std::lround(double(cores) - busy));
  return std::clamp(idle, 1, std::min(cores, 2));
}

// ---- the graph ----

namespace {

// What flows between the stages: the job plus the previous stage's output (only that, so no
// stage copies another's data).
struct ClipWork {
  std::shared_ptr<const ClipJob> job;
  std::string error;
  DecodedClip decoded;
  ClipInputs inputs;
  ClipTokens tokens;
  std::vector<nlohmann::ordered_json> records;
  std::array<double, 4> stage_ms{};  // decode, preprocess, encode, answer
};

ClipWork next_work(const ClipWork& in) {
  ClipWork w;
  w.job = in.job;
  w.error = in.error;
  w.stage_ms = in.stage_ms;
  return w;
}

class JobSource : public Node {
 public:
  explicit JobSource(const std::vector<ClipJob>* jobs) : jobs_(jobs) {}
  Flow process(Context& ctx) override {
    if (next_ >= jobs_->size() || ctx.stop_requested()) return Flow::kDone;
    ClipWork w;
    w.job = std::make_shared<const ClipJob>((*jobs_)[next_]);
    w.error = w.job->error;
    ctx.emit<ClipWork>("out", std::move(w), Timestamp(int64_t(next_)));
    ++next_;
    return next_ < jobs_->size() ? Flow::kContinue : Flow::kDone;
  }

 private:
  const std::vector<ClipJob>* jobs_;
  size_t next_ = 0;
};

// A stage: runs `fn` on the clip unless an earlier stage failed; a failure becomes the clip's
// error (reported in its records) instead of stopping the graph.
class StageNode : public Node {
 public:
  using Fn = std::function<void(const ClipWork& in, ClipWork& out)>;
  StageNode(int index, Fn fn) : index_(index), fn_(std::move(fn)) {}
  Flow process(Context& ctx) override {
    const Packet& p = ctx.input(0);
    if (p.empty()) return Flow::kContinue;
    const ClipWork& in = p.get<ClipWork>();
    ClipWork out = next_work(in);
    if (out.error.empty()) {
      const auto t0 = Clock::now();
      try {
        fn_(in, out);
      } catch (const std::exception& e) {
        out.error = e.what();
        ctx.count("failed_clips");
      }
      out.stage_ms[size_t(index_)] = ms_since(t0);
    }
    if (index_ == 3) finish_records(in, out);
    ctx.emit<ClipWork>("out", std::move(out), p.timestamp());
    return Flow::kContinue;
  }

 private:
  // One record per question of the job, in the job's question order.
  static void finish_records(const ClipWork& in, ClipWork& out) {
    const ClipJob& job = *in.job;
    if (!out.error.empty()) {
      out.records.clear();
      for (int q : job.questions) {
        nlohmann::ordered_json r;
        r["line"] = job.line;
        r["file"] = job.file;
        r["question"] = q >= 0 ? nlohmann::ordered_json(kQuestionText[size_t(q)]) : nullptr;
        r["error"] = out.error;
        out.records.push_back(std::move(r));
      }
    }
  }

  int index_;
  Fn fn_;
};

Contract stage_contract(const std::string& doc) {
  return Contract()
      .doc(doc)
      .input<ClipWork>("in", "a clip and the previous stage's output")
      .output<ClipWork>("out", "the clip and this stage's output")
      .policy(InputPolicy::kImmediate);
}

}  // namespace

BatchSummary run_batch(const std::vector<ClipJob>& jobs, const BatchOptions& o) {
  BatchSummary s;
  set_compute_threads(o.torch_threads);
  const auto t_load = Clock::now();
  DemoConfig config;
  auto model = std::make_shared<ShapesVoices>(load_demo_model(o.model_dir, &config));
  s.load_seconds = ms_since(t_load) / 1000.0;

  auto decode = [config](const ClipWork& in, ClipWork& out) {
    out.decoded = decode_clip(in.job->path, config);
  };
  auto preprocess = [config](const ClipWork& in, ClipWork& out) {
    out.inputs = preprocess_clip(in.decoded, config);
  };
  auto encode = [model, vb = o.vision_batch](const ClipWork& in, ClipWork& out) {
    out.tokens = encode_clip(**model, in.inputs, vb);
  };
  auto answer = [model, share = o.share_prefix](const ClipWork& in, ClipWork& out) {
    const ClipJob& job = *in.job;
    for (const auto& a : answer_clip(**model, in.tokens, job.questions, share)) {
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
      out.records.push_back(std::move(r));
    }
  };

  GraphBuilder b("ask_batch");
  b.add_instance("jobs", "ClipJobs",
                 Contract()
                     .doc("the manifest's clips, one packet per clip")
                     .output<ClipWork>("out", "a clip job"),
                 [&jobs] { return std::make_unique<JobSource>(&jobs); });
  const std::array<std::pair<const char*, StageNode::Fn>, 4> stages = {
      {{"decode", decode}, {"preprocess", preprocess}, {"encode", encode}, {"answer", answer}}};
  const std::array<const char*, 4> docs = {
      "MediaReader: fps-sampled RGB frames + 16 kHz mono PCM",
      "ImagePreprocess + LogMel (whole clip) as the ask graph does",
      "ViT over the frames, audio encoder over the log-mel",
      "fusion transformer: greedy answers to the clip's questions"};
  for (int i = 0; i < 4; ++i) {
    const StageNode::Fn fn = stages[size_t(i)].second;
    b.add_instance(stages[size_t(i)].first, "ClipStage", stage_contract(docs[size_t(i)]),
                   [i, fn] { return std::make_unique<StageNode>(i, fn); });
  }
  b.connect("jobs.out", "decode.in")
      .connect("decode.out", "preprocess.in")
      .connect("preprocess.out", "encode.in")
      .connect("encode.out", "answer.in")
      .output("answer.out");
  auto graph = b.build();
  graph->observe("answer.out", [&](const Packet& p) {
    const ClipWork& w = p.get<ClipWork>();
    ++s.clips;
    for (const auto& r : w.records) {
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
  ro.workers = o.workers > 0 ? o.workers : auto_workers();
  s.workers = ro.workers;
  ro.trace_path = o.trace_path;
  const auto t0 = Clock::now();
  graph->run(ro);
  s.seconds = ms_since(t0) / 1000.0;
  s.stats = graph->stats();
  s.max_rss_mb = peak_rss_mb();
  return s;
}

}  // namespace omni::demo
