// The demo's graphs: the preprocessing graph that caches a clip's model inputs for training (the
// same MediaSource / ImagePreprocess / LogMel nodes inference uses), and the question answering
// graph (MediaSource -> encoders -> UnifiedSequencer -> Generate) that ask_clip, the batch graph
// (batch.h, one per clip) and the streaming graph (stream.h) all run.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/graph.h"
#include "core/registry.h"
#include "fusion/fused_sequence.h"
#include "models/shapes_voices/model.h"

namespace omni::demo {

// Every node type the demo graphs use (media, text, image, audio, fusion, core sinks).
const Registry& demo_registry();

// The ImageEncoder / AudioEncoder node parameters of this model (every demo graph builds its
// encoders from these, so they cannot drift from config.json).
std::map<std::string, ParamValue> vision_encoder_params(const DemoConfig& c,
                                                        const std::string& weights, int64_t batch,
                                                        const std::string& device = "cpu");
std::map<std::string, ParamValue> audio_encoder_params(const DemoConfig& c,
                                                       const std::string& weights,
                                                       const std::string& device = "cpu");

// How the ask graph runs. Every way of answering (one question, a batch, a live stream) builds its
// graph with ask_graph() and differs only in these settings.
struct AskGraphOptions {
  std::vector<int> questions;  // indices into kQuestionText: one answer each, in this order
  bool audio = true;  // the clip has an audio track: MediaSource.audio -> LogMel -> AudioEncoder
  std::string device = "cpu";
  int64_t vision_batch = 8;       // frames per ViT forward (0: all of the clip's frames)
  double audio_window_s = 30;     // LogMel normalisation window and AudioEncoder attention window
  int64_t audio_chunk_ms = 1000;  // MediaSource audio chunks
  int64_t decode_threads = 0;     // MediaSource decoder threads (0: automatic)
  double speed = 0;  // MediaSource pacing: 1 = real time (a live clip), 0 = as fast as decoded
  bool share_prefix = false;     // Generate: the clip's tokens run once for all the questions
  bool batch_questions = false;  // Generate: the questions decoded as one batch
  bool prefill = false;  // UnifiedSequencer.partial -> Generate.prefill while the clip plays
  // A loaded model whose modules the encoder and Generate nodes use as they are (a program that
  // runs many graphs loads it once); null: the nodes load `weights` themselves.
  std::shared_ptr<ShapesVoices> model;
};

// The ask graph over `clip` with the model's node parameters: src (MediaSource) -> pre
// (ImagePreprocess) -> vision (ImageEncoder) and src.audio -> mel (LogMel) -> audio (AudioEncoder)
// into seq (UnifiedSequencer, one prompt per question), question (TextSource) -> tokenize
// (TextEncoder) -> seq, seq -> generate (Generate). Observable: generate.text, generate.logits
// (one per question, in order), seq.sequence (the prompts) and src.video / src.audio.
GraphBuilder ask_graph(const std::string& clip, const DemoConfig& config,
                       const std::string& weights, const AskGraphOptions& options);

// The answering half of ask_graph(), for graphs whose media tokens come from elsewhere: question
// (TextSource, the options' questions) -> tokenize (TextEncoder) -> seq.text, seq
// (UnifiedSequencer, one prompt per question; connect media to seq.video / seq.audio) -> generate
// (Generate, on options.model's fusion transformer when set). Observable: generate.text,
// generate.logits, seq.sequence.
void add_answer_nodes(GraphBuilder& b, const DemoConfig& config, const std::string& weights,
                      const AskGraphOptions& options);

// Whether the file has an audio stream (probe). Throws InputError for a file FFmpeg cannot open.
bool has_audio_stream(const std::string& path);

// Runs MediaSource -> ImagePreprocess and MediaSource.audio -> LogMel over one clip and returns
// what those nodes emitted. A clip without audio gives no mels.
ClipTensors extract_clip(const std::string& path, const DemoConfig& config);

struct AskResult {
  std::string answer;
  double seconds = 0;
  std::map<std::string, int64_t> tokens;  // "text", "video", "audio" (+ "boundary")
  bool has_audio = true;
  FusedSequence sequence;  // the UnifiedSequencer's output the Generate node answered from
};

// Answers questions about clips through the inference graph; the model is loaded once per graph
// run by the nodes (weights file + prefixes), config read here.
class Asker {
 public:
  // Throws InputError naming the file when config.json or model.safetensors is missing/damaged.
  Asker(const std::string& model_dir, const std::string& device = "cpu");
  AskResult ask(const std::string& clip, const std::string& question) const;
  const DemoConfig& config() const { return config_; }

 private:
  std::string weights_, device_;
  DemoConfig config_;
};

// Default model directory: models/shapes_voices under the current directory when present,
// otherwise under the source tree this binary was built from.
std::string default_model_dir();

}  // namespace omni::demo
