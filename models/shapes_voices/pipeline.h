// The demo's graphs: the preprocessing graph that caches a clip's model inputs for training (the
// same MediaSource / ImagePreprocess / LogMel nodes inference uses), and the full question
// answering graph (MediaSource -> encoders -> UnifiedSequencer -> Generate) behind ask_clip.
#pragma once

#include <cstdint>
#include <map>
#include <string>

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
