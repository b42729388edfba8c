#include "models/shapes_voices/stream.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <mutex>

#include "core/error.h"
#include "core/graph.h"
#include "fusion/fused_sequence.h"
#include "modalities/common/audio_chunk.h"
#include "models/shapes_voices/pipeline.h"
#include "models/shapes_voices/task.h"

namespace fs = std::filesystem;

namespace omni::demo {

StreamResult stream_answer(const std::shared_ptr<ShapesVoices>& model, const std::string& model_dir,
                           const std::string& clip, int question, const StreamOptions& o) {
  if (question < 0 || question >= kNumQuestions) throw ConfigError("stream_answer: bad question");
  if (!(o.speed > 0)) throw ConfigError("stream_answer: speed must be > 0");
  const DemoConfig& c = (*model)->config;
  const std::string weights = (fs::path(model_dir) / "model.safetensors").string();
  // The ask graph, played at `speed` from a paced MediaSource: frames through the ViT one by one,
  // audio in window_s windows, and the sequencer's growing prompt prefilled by Generate.
  AskGraphOptions go;
  go.questions = {question};
  go.audio = has_audio_stream(clip);
  go.vision_batch = 1;
  go.audio_window_s = o.window_s;
  go.audio_chunk_ms = o.audio_chunk_ms;
  go.decode_threads = 1;
  go.speed = o.speed;
  go.prefill = o.incremental;
  go.model = model;
  auto graph = ask_graph(clip, c, weights, go).build(demo_registry());

  using Clock = std::chrono::steady_clock;
  std::mutex mu;
  Clock::time_point clip_end, inputs_done, answer_at;
  StreamResult r;
  int answers = 0;
  // The clip has finished playing when the source released its last frame or audio chunk (a
  // frame at its timestamp, audio at its end).
  int64_t played_us = 0;
  const auto released = [&](int64_t media_us) {
    std::lock_guard lock(mu);
    clip_end = Clock::now();
    played_us = std::max(played_us, media_us);
  };
  graph->observe("src.video", [&](const Packet& p) { released(p.timestamp().us()); });
  if (go.audio)
    graph->observe("src.audio", [&](const Packet& p) { released(p.get<AudioChunk>().end_us()); });
  graph->observe("seq.sequence", [&](const Packet& p) {
    std::lock_guard lock(mu);
    inputs_done = Clock::now();  // the whole prompt is laid out: every input has arrived
    r.prompt_tokens = p.get<FusedSequence>().length();
  });
  graph->observe("generate.text", [&](const Packet& p) {
    std::lock_guard lock(mu);
    answer_at = Clock::now();
    r.answer = p.get<std::string>();
    ++answers;
  });
  graph->observe("generate.logits", [&](const Packet& p) {
    std::lock_guard lock(mu);
    r.prompt_logits = p.get<at::Tensor>();
  });
  RunOptions run;
  run.workers = o.workers;
  graph->run(run);
  if (answers != 1) throw RunError("stream_answer: '" + clip + "' gave no answer");
  const auto counter = [&](const char* name) -> int64_t {
    for (const auto& n : graph->stats().nodes)
      if (n.name == "generate") {
        auto it = n.counters.find(name);
        return it == n.counters.end() ? 0 : it->second;
      }
    return 0;
  };
  r.tail_tokens = r.prompt_tokens - counter("reused_tokens");
  r.prefix_mismatch = counter("prefill_mismatch") > 0;
  r.clip_s = double(played_us) / 1e6;
  using Ms = std::chrono::duration<double, std::milli>;
  r.latency_ms = Ms(answer_at - clip_end).count();
  r.inputs_done_ms = Ms(inputs_done - clip_end).count();
  r.answer_ms = Ms(answer_at - inputs_done).count();
  return r;
}

}  // namespace omni::demo
