#include "models/shapes_voices/stream.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "core/contract.h"
#include "core/error.h"
#include "core/graph.h"
#include "fusion/fusion_nodes.h"
#include "fusion/heads.h"
#include "fusion/sequencer.h"
#include "modalities/common/audio_chunk.h"
#include "modalities/media/frame.h"
#include "modalities/media/media_reader.h"
#include "models/shapes_voices/pipeline.h"
#include "models/shapes_voices/task.h"

namespace fs = std::filesystem;

namespace omni::demo {

namespace {

using Clock = std::chrono::steady_clock;

// What the paced source and the answer node report to the driver.
struct StreamShared {
  Clock::time_point clip_end, answer_at, inputs_done;
  bool ended = false, answered = false;
  StreamResult result;
};

// MediaReader whose items are released when they would exist in a live recording: a frame at its
// timestamp, an audio chunk at its end, both relative to the first process() call.
class PacedSource : public Node {
 public:
  PacedSource(MediaReaderOptions o, double speed, StreamShared* shared)
      : options_(std::move(o)), speed_(speed), shared_(shared) {}
  static constexpr Output<Frame> kVideo{"video", "RGB frames at their timestamps"};
  static constexpr Output<AudioChunk> kAudio{"audio", "16 kHz mono chunks at their end time"};
  static Contract contract() {
    return Contract().doc("a media file played at real time").output(kVideo).output(kAudio);
  }
  void open(Context& ctx) override {
    reader_ = std::make_unique<MediaReader>(options_);
    if (!reader_->has_video()) ctx.close_output(kVideo);
    if (!reader_->has_audio()) ctx.close_output(kAudio);
  }
  Flow process(Context& ctx) override {
    if (!started_) {
      start_ = Clock::now();
      started_ = true;
    }
    MediaReader::Item item;
    if (ctx.stop_requested() || !reader_->next(item)) {
      shared_->clip_end = at(last_us_);
      shared_->result.clip_s = double(last_us_) / 1e6;
      shared_->ended = true;
      return Flow::kDone;
    }
    const bool video = item.kind == MediaReader::Item::Kind::kVideo;
    const int64_t avail = video ? item.frame.pts_us : item.audio.end_us();
    last_us_ = std::max(last_us_, avail);
    std::this_thread::sleep_until(at(avail));
    if (video) {
      const Timestamp ts(item.frame.pts_us);
      ctx.emit(kVideo, std::move(item.frame), ts);
    } else {
      const Timestamp ts(item.audio.start_us);
      ctx.emit(kAudio, std::move(item.audio), ts);
    }
    return Flow::kContinue;
  }

 private:
  Clock::time_point at(int64_t media_us) const {
    return start_ + std::chrono::microseconds(static_cast<int64_t>(double(media_us) / speed_));
  }
  MediaReaderOptions options_;
  double speed_;
  StreamShared* shared_;
  std::unique_ptr<MediaReader> reader_;
  Clock::time_point start_;
  bool started_ = false;
  int64_t last_us_ = 0;
};

// Collects the clip's video and audio TokenChunks; whenever another chunk_s piece of the
// interleaved prompt is complete on both streams, runs it into the KV cache. At the end it lays
// out the whole prompt with the question (the ask graph's UnifiedSequencer layout), checks that
// the cached prefix is exactly that layout's prefix, and runs only the rest plus the answer.
class StreamAnswer : public Node {
 public:
  StreamAnswer(std::shared_ptr<ShapesVoices> model, int question, bool incremental,
               StreamShared* shared)
      : model_(std::move(model)), question_(question), incremental_(incremental), shared_(shared) {}
  static constexpr OptionalInput<TokenChunk> kVideo{"video", "video frame tokens"};
  static constexpr OptionalInput<TokenChunk> kAudio{"audio", "audio window tokens"};
  static constexpr Output<std::string> kText{"text", "the answer, once the clip has ended"};
  static Contract contract() {
    return Contract()
        .doc("answers a question about a live clip, prefilling the KV cache as chunks complete")
        .input(kVideo)
        .input(kAudio)
        .output(kText)
        .policy(InputPolicy::kImmediate);
  }
  Flow process(Context& ctx) override {
    bool added = false;
    if (const auto v = ctx.input(kVideo); !v.empty()) {
      video_.push_back(v.get());
      latest_video_us_ = std::max(latest_video_us_, video_.back().start_us);
      added = true;
    }
    if (const auto a = ctx.input(kAudio); !a.empty()) {
      audio_.push_back(a.get());
      audio_end_us_ = std::max(audio_end_us_, audio_.back().end_us);
      added = true;
    }
    if (added && incremental_) prefill_complete_chunks();
    return Flow::kContinue;
  }
  void close(Context& ctx) override {
    shared_->inputs_done = Clock::now();
    at::NoGradGuard no_grad;
    FusionTransformerImpl& f = *(*model_)->fusion;
    const FusedSequence seq =
        layout_prompt(video_, audio_, question_chunk(kQuestionText[size_t(question_)]));
    if (prefilled_ > 0 && !(seq.positions.slice(1, 0, prefilled_).equal(prefix_positions_) &&
                            seq.text_ids.slice(0, 0, prefilled_).equal(prefix_ids_))) {
      shared_->result.prefix_mismatch = true;
      ctx.count("prefix_mismatch");
      cache_.clear();
      prefilled_ = 0;
    }
    const at::Tensor embeds = embed_sequence(f, seq);
    DecodeOptions d;
    d.max_new_tokens = (*model_)->config.max_answer_tokens;
    d.stop_tokens = {SpecialTokens{}.eos};
    const GenerateResult r =
        generate(f, embeds.slice(1, prefilled_), seq.positions.slice(1, prefilled_), d, &cache_);
    shared_->answer_at = Clock::now();
    shared_->answered = true;
    shared_->result.answer = decode_byte_ids(r.tokens);
    shared_->result.prompt_logits = r.prompt_logits;
    shared_->result.prompt_tokens = seq.length();
    shared_->result.tail_tokens = seq.length() - prefilled_;
    ctx.emit(kText, shared_->result.answer, Timestamp(0));
  }

 private:
  void prefill_complete_chunks() {
    if (video_.empty() || audio_.empty()) return;
    const SequencerOptions layout = SequencerConfig{}.layout;
    const auto chunk_us = static_cast<int64_t>(layout.seconds_per_chunk * 1e6);
    const int64_t t0 = std::min(video_.front().start_us, audio_.front().start_us);
    // Every frame before latest_video_us_ and all audio before audio_end_us_ has arrived.
    const int64_t complete = (std::min(latest_video_us_, audio_end_us_) - t0) / chunk_us;
    if (complete <= chunks_done_) return;
    at::NoGradGuard no_grad;
    // The clip's layout so far (no question): <video_start> <audio_start> V0 A0 V1 A1 ...
    SegmentAssembler assembler{SequencerConfig{}};
    std::vector<TokenChunk> chunks(video_.begin(), video_.end());
    chunks.insert(chunks.end(), audio_.begin(), audio_.end());
    const FusedSequence seq = assembler.assemble(std::move(chunks), 0, 0);
    const int64_t st = 1;  // both start tokens sit at position 0
    const auto per_chunk =
        static_cast<int64_t>(layout.position_ids_per_second * layout.seconds_per_chunk);
    const int64_t limit = st + per_chunk * complete;
    auto t = seq.positions[0];
    const int64_t* tp = t.data_ptr<int64_t>();
    int64_t end = 2;
    while (end < seq.length() && seq.modality[size_t(end)] != Modality::kText && tp[end] < limit)
      ++end;
    chunks_done_ = complete;
    if (end <= prefilled_) return;
    FusionTransformerImpl& f = *(*model_)->fusion;
    const at::Tensor embeds = embed_sequence(f, seq);
    f.forward(embeds.slice(1, prefilled_, end), seq.positions.slice(1, prefilled_, end), &cache_);
    prefilled_ = end;
    prefix_positions_ = seq.positions.slice(1, 0, end).clone();
    prefix_ids_ = seq.text_ids.slice(0, 0, end).clone();
  }

  std::shared_ptr<ShapesVoices> model_;
  int question_;
  bool incremental_;
  StreamShared* shared_;
  std::vector<TokenChunk> video_, audio_;
  int64_t latest_video_us_ = INT64_MIN, audio_end_us_ = INT64_MIN;
  int64_t chunks_done_ = 0, prefilled_ = 0;
  at::Tensor prefix_positions_, prefix_ids_;
  KVCache cache_;
};

}  // namespace

StreamResult stream_answer(const std::shared_ptr<ShapesVoices>& model, const std::string& model_dir,
                           const std::string& clip, int question, const StreamOptions& o) {
  if (question < 0 || question >= kNumQuestions) throw ConfigError("stream_answer: bad question");
  const DemoConfig& c = (*model)->config;
  const std::string weights = (fs::path(model_dir) / "model.safetensors").string();
  MediaReaderOptions ro;
  ro.path = clip;
  ro.fps = c.fps;
  ro.audio_rate = 16000;
  ro.audio_channels = 1;
  ro.audio_chunk_ms = static_cast<int>(o.audio_chunk_ms);
  ro.threads = 1;
  StreamShared shared;
  auto audio_params = audio_encoder_params(c, weights);
  audio_params["window_s"] = o.window_s;  // streaming: encode in windows as the audio arrives
  GraphBuilder b("ask_stream");
  b.add_instance("src", "PacedSource", PacedSource::contract(),
                 [ro, &o, &shared] { return std::make_unique<PacedSource>(ro, o.speed, &shared); })
      .add("pre", "ImagePreprocess", {{"mode", c.preprocess_mode}, {"size", c.image_size}})
      .add("vision", "ImageEncoder", vision_encoder_params(c, weights, 1))
      .add("mel", "LogMel",
           {{"n_mels", c.n_mels},
            {"mode", std::string("whole")},
            {"window_s", o.window_s},
            {"normalize", std::string("window")}})
      .add("audio", "AudioEncoder", audio_params)
      .add_instance("answer", "StreamAnswer", StreamAnswer::contract(),
                    [&model, question, &o, &shared] {
                      return std::make_unique<StreamAnswer>(model, question, o.incremental,
                                                            &shared);
                    })
      .connect("src.video", "pre.in")
      .connect("pre.out", "vision.image")
      .connect("vision.tokens", "answer.video")
      .connect("src.audio", "mel.audio")
      .connect("mel.mel", "audio.mel")
      .connect("audio.tokens", "answer.audio")
      .output("answer.text");
  auto graph = b.build(demo_registry());
  RunOptions run;
  run.workers = o.workers;
  graph->run(run);
  if (!shared.ended || !shared.answered)
    throw RunError("stream_answer: '" + clip + "' gave no answer");
  StreamResult r = shared.result;
  using Ms = std::chrono::duration<double, std::milli>;
  r.latency_ms = Ms(shared.answer_at - shared.clip_end).count();
  r.inputs_done_ms = Ms(shared.inputs_done - shared.clip_end).count();
  r.answer_ms = Ms(shared.answer_at - shared.inputs_done).count();
  return r;
}

}  // namespace omni::demo
