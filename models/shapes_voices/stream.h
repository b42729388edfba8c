// Live question answering for the shapes & voices demo: a clip "plays" at real time (MediaSource
// with `speed`) through the ask graph of pipeline.h (ImagePreprocess/ImageEncoder per frame,
// LogMel/AudioEncoder per window_s window) whose UnifiedSequencer emits the prompt's media as each
// 2 s chunk completes (emit_partial) and whose Generate node runs those into its KV cache as they
// arrive (prefill, share_prefix), so only the tail and the question remain when the clip ends.
// Used to measure the answer latency after the end of a clip (bench/e2e).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

#include "models/shapes_voices/model.h"

namespace omni::demo {

struct StreamOptions {
  double speed = 1.0;            // playback speed (1 = real time)
  double window_s = 2.0;         // audio window (log-mel normalisation and encoder attention)
  int64_t audio_chunk_ms = 100;  // how often the source delivers audio
  int workers = 3;               // graph workers (the paced source sleeps on one of them)
  bool incremental = true;       // prefill completed chunks while playing (false: all at the end)
};

struct StreamResult {
  std::string answer;
  double latency_ms = 0;         // answer time minus the moment the clip finished playing
  double clip_s = 0;             // playback duration
  double inputs_done_ms = 0;     // from the clip's end until the whole prompt reached Generate
  double answer_ms = 0;          // the rest: prompt tail + question + greedy decoding
  int64_t prompt_tokens = 0;     // whole prompt
  int64_t tail_tokens = 0;       // prompt tokens left to run after the clip ended
  bool prefix_mismatch = false;  // the prefilled prefix differed from the final layout (rerun)
  at::Tensor prompt_logits;      // [V] the LM head after the prompt (GenerateResult's)
};

// Plays `clip` through the streaming graph and answers question `question` (0..3). The model is
// shared (only its fusion transformer is used; the encoder nodes load the same weights file).
StreamResult stream_answer(const std::shared_ptr<ShapesVoices>& model, const std::string& model_dir,
                           const std::string& clip, int question, const StreamOptions& options);

}  // namespace omni::demo
