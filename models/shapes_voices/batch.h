// Batch question answering for the shapes & voices demo: every (clip, question) pair of a manifest
// answered through one running graph (jobs -> ask -> records) whose `ask` node runs, per clip, the
// ask graph of pipeline.h (the library's MediaSource, ImagePreprocess, ImageEncoder, LogMel,
// AudioEncoder, UnifiedSequencer and Generate nodes; the same graph a single question runs) on the
// model loaded once. Also the per-clip stage functions benchmarks time one by one (bench/e2e).
#pragma once

#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/graph.h"
#include "modalities/common/token_chunk.h"
#include "modalities/media/frame.h"
#include "models/shapes_voices/model.h"

namespace omni::demo {

// One clip of a manifest and the questions to ask about it. A line that cannot be used (bad
// JSON, no "file", unknown question) becomes a job with `error` set and one question slot, so it
// still yields exactly one output record.
struct ClipJob {
  int64_t line = 0;            // 1-based manifest line
  std::string file;            // as written in the manifest
  std::string path;            // resolved against the manifest's directory
  std::vector<int> questions;  // indices into kQuestionText (-1 for an unusable line)
  nlohmann::json truth;        // the manifest line (ground truth), or null
  std::string error;
};

// Reads a make_clips manifest (JSON lines with "file"; optional "question": its text or key
// such as "shape"). Lines without a question ask all four. Throws InputError only when the
// manifest itself cannot be read; a bad line becomes an error job.
std::vector<ClipJob> read_batch_manifest(const std::string& path);
// The job of one manifest line (`line` 1-based; `path` the manifest, for relative files).
ClipJob clip_job_from_line(int64_t line, const std::string& text, const std::string& path);
// Number of (clip, question) pairs, i.e. output records, of these jobs.
int64_t count_pairs(const std::vector<ClipJob>& jobs);

// ---- the stages, one function each, for benchmarks (the batch graph runs the ask graph) ----

struct DecodedClip {
  std::vector<Frame> frames;  // RGB, sampled at the model's fps
  std::vector<float> pcm;     // 16 kHz mono
  int64_t audio_start_us = 0;
  bool has_audio = false;
};
// Decodes like the ask graph's MediaSource (fps sampling, 16 kHz mono). Throws InputError.
DecodedClip decode_clip(const std::string& path, const DemoConfig& config);

struct ClipInputs {
  std::vector<at::Tensor> frames;  // [3, H, W] float each (ImagePreprocess output)
  std::vector<int64_t> frame_us;
  std::vector<at::Tensor> mels;  // LogMel (whole mode, 30 s windows, per-window normalisation)
  std::vector<int64_t> mel_us;
  bool has_audio = false;
};
// ImagePreprocess + LogMel exactly as the ask graph configures them.
ClipInputs preprocess_clip(const DecodedClip& clip, const DemoConfig& config);

struct ClipTokens {
  std::vector<TokenChunk> video, audio;
  bool has_audio = false;
};
// The ViT over the frames (`vision_batch` frames per forward, 0 = all) and the audio encoder.
ClipTokens encode_clip(ShapesVoicesImpl& model, const ClipInputs& in, int64_t vision_batch = 0);

struct QuestionAnswer {
  int question = 0;
  std::string answer;
  std::string error;  // set instead of an answer (e.g. an audio question on a silent clip)
  int64_t tokens = 0;
  at::Tensor prompt_logits;  // [V] the LM head after the prompt (GenerateResult::prompt_logits)
};
// Greedy answers from tokens encoded beforehand, through the answering half of the ask graph
// (pipeline.h add_answer_nodes: UnifiedSequencer -> Generate on this model). With `share_prefix`,
// the clip's tokens run once into Generate's KV cache and each question continues from there;
// with `batch_questions` too, the questions then run as one batch (fusion's generate_batch:
// padded, masked): one forward for their prompts and one per answer token.
std::vector<QuestionAnswer> answer_clip(ShapesVoicesImpl& model, const ClipTokens& tokens,
                                        const std::vector<int>& questions, bool share_prefix = true,
                                        bool batch_questions = true);

// Loads the demo model (config.json + model.safetensors) for inference.
ShapesVoices load_demo_model(const std::string& model_dir, DemoConfig* config = nullptr);

// ---- the batch graph ----

struct BatchOptions {
  std::string model_dir;
  int workers = 0;              // clips answered at once (graph workers); 0: auto_workers()
  int torch_threads = 1;        // libtorch intra-op threads (0: leave libtorch's default)
  int64_t vision_batch = 0;     // frames per ViT forward (0: all of a clip's frames)
  bool share_prefix = true;     // run a clip's tokens once for all its questions (Generate)
  bool batch_questions = true;  // and its questions as one batch (Generate, with share_prefix)
  std::string trace_path;       // Chrome trace of the run when non-empty
  // When set, the graph reads this manifest through a ManifestSource (the lines the installed
  // ItemFeed hands out: dist::run_manifest, MPI) and writes each clip's records whole through a
  // RecordWriter; run_batch's `jobs` are then not used.
  std::string manifest;
  // Called once per output record, in manifest order, from a graph worker thread.
  std::function<void(const nlohmann::ordered_json&)> on_record;
  // Called for each question of a clip (with its prompt logits when it was answered), from a
  // graph worker thread (several at once when workers > 1), before the clip's records are passed
  // on (tests compare the modes' logits).
  std::function<void(const ClipJob&, const QuestionAnswer&)> on_answer;
};

struct BatchSummary {
  int64_t clips = 0, pairs = 0, answered = 0, errors = 0, correct = 0, with_truth = 0;
  double seconds = 0;       // graph run (model loading excluded)
  double load_seconds = 0;  // model loading
  double max_rss_mb = 0;    // peak resident set of the process so far
  int workers = 0;          // graph workers used
  GraphStats stats;
};

// Answers every pair of `jobs` through one graph run. Per-clip failures become error records;
// only a failure of the graph itself (e.g. the model cannot be loaded) throws.
BatchSummary run_batch(const std::vector<ClipJob>& jobs, const BatchOptions& options);

// Peak resident set size of this process in MiB (getrusage).
double peak_rss_mb();

// Graph workers for the batch graph when not given: the cores that are idle (cores minus the busy
// cores measured from /proc/stat over 200 ms, rounded; the 1-minute load average where /proc/stat
// cannot be read), at least 1, at most 2. The stages only overlap usefully on
// idle cores; on the shared 2-core development box, with the other core busy, a second worker
// made the run 13% slower (median of 7 paired runs) instead of faster.
int auto_workers();

}  // namespace omni::demo
