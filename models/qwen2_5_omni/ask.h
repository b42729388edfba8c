// `ask_clip --model DIR` for a Hugging Face Qwen2.5-Omni directory: one user turn (the media file,
// if any, then the question) through the Thinker, the answer streamed to `out` as tokens arrive
// (or one JSON object with --json), optional logits dump. examples/ask_clip dispatches here.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

namespace omni::qwen {

struct AskOptions {
  std::string model_dir;
  std::string file;  // image, audio or video; empty: a text-only question
  std::string question;
  bool json = false;
  bool verbose = false;
  int64_t max_new_tokens = 128;
  std::optional<bool> audio_in_video;  // nullopt: on when the video has a sound track
  double fps = 2.0;
  std::optional<std::string> system;  // nullopt: the template's own system prompt
  std::string dump_logits;            // safetensors path ("" = none)
  std::string device = "cpu";
  std::string dtype = "fp32";
  // Sampling (greedy unless temperature > 0).
  double temperature = 0.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
};

// "on" / "off" (also true/false, 1/0) -> bool; "auto" / "" -> nullopt. Throws ConfigError.
std::optional<bool> parse_on_off(const std::string& text, const std::string& flag);

// Runs one question. Text mode: the answer streamed to `out` followed by a newline, timings to
// `err`; JSON mode: {"answer", "ids", "prompt_ids", "stopped", "tokens": {...}, "media",
// "audio_in_video", "architecture", "dtype", "device", "load_seconds", "prompt_seconds",
// "generate_seconds", "tokens_per_s", "prefill_seconds" (generate() up to the first token),
// "prefill_tokens_per_s", "decode_tokens_per_s" (after the first token), "time_to_first_token_s"
// (from process start, loading included), "max_rss_mb"} on `out`. Errors propagate
// (omni::InputError for bad input, ConfigError for bad options).
void run_ask(const AskOptions& o, std::ostream& out, std::ostream& err);

}  // namespace omni::qwen
