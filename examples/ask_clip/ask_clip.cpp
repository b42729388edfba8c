// ask_clip: answers a question about a media file with the shipped shapes & voices model, through
// the inference graph (MediaSource -> ImageEncoder / LogMel -> AudioEncoder -> UnifiedSequencer ->
// Generate). Prints the answer and the time taken; --json for one machine-readable object.
// --batch MANIFEST answers every (clip, question) pair of a manifest through one running graph
// (models/shapes_voices/batch.h) and writes one JSON line per pair.
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>

#include "core/error.h"
#include "models/shapes_voices/batch.h"
#include "models/shapes_voices/pipeline.h"
#include "models/shapes_voices/task.h"

namespace {

struct BatchCli {
  std::string manifest, out = "-", summary, trace;
  int workers = 0, torch_threads = 1;
  int64_t vision_batch = 0;
  bool no_share_prefix = false, no_batch_questions = false, quiet = false;
};

// Progress on stderr: a redrawn bar on a terminal, a line every 10% otherwise.
class Progress {
 public:
  Progress(int64_t total, bool quiet) : total_(total), quiet_(quiet), tty_(isatty(2) != 0) {}
  void tick(bool error) {
    ++done_;
    errors_ += error ? 1 : 0;
    if (quiet_ || total_ <= 0) return;
    const int64_t pct = done_ * 100 / total_;
    if (!tty_ && pct < next_pct_ && done_ != total_) return;
    next_pct_ = pct + 10;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    const int width = 30, filled = static_cast<int>(width * done_ / total_);
    std::fprintf(stderr, "%s[%s%s] %lld/%lld pairs, %lld errors, %.1f pairs/s%s", tty_ ? "\r" : "",
                 std::string(size_t(filled), '#').c_str(),
                 std::string(size_t(width - filled), '.').c_str(), static_cast<long long>(done_),
                 static_cast<long long>(total_), static_cast<long long>(errors_),
                 s > 0 ? double(done_) / s : 0.0, tty_ && done_ != total_ ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  int64_t total_, done_ = 0, errors_ = 0, next_pct_ = 0;
  bool quiet_, tty_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

int run_batch_cli(const BatchCli& c, const std::string& model_dir) {
  const auto jobs = omni::demo::read_batch_manifest(c.manifest);
  const int64_t total = omni::demo::count_pairs(jobs);
  std::ofstream file;
  std::ostream* out = &std::cout;
  if (c.out != "-") {
    file.open(c.out);
    if (!file) throw omni::InputError("cannot write '" + c.out + "'");
    out = &file;
  }
  Progress progress(total, c.quiet);
  omni::demo::BatchOptions o;
  o.model_dir = model_dir;
  o.workers = c.workers;
  o.torch_threads = c.torch_threads;
  o.vision_batch = c.vision_batch;
  o.share_prefix = !c.no_share_prefix;
  o.batch_questions = !c.no_batch_questions;
  o.trace_path = c.trace;
  o.on_record = [&](const nlohmann::ordered_json& r) {
    *out << r.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    progress.tick(r.contains("error"));
  };
  const auto s = omni::demo::run_batch(jobs, o);
  out->flush();
  nlohmann::ordered_json j;
  j["clips"] = s.clips;
  j["pairs"] = s.pairs;
  j["answered"] = s.answered;
  j["errors"] = s.errors;
  if (s.with_truth > 0) j["accuracy"] = double(s.correct) / double(s.with_truth);
  j["seconds"] = s.seconds;
  j["load_seconds"] = s.load_seconds;
  j["clips_per_s"] = s.seconds > 0 ? double(s.clips) / s.seconds : 0.0;
  j["max_rss_mb"] = s.max_rss_mb;
  j["workers"] = s.workers;
  j["torch_threads"] = c.torch_threads;
  if (!c.summary.empty()) {
    std::ofstream f(c.summary);
    f << j.dump(2) << "\n";
  }
  if (!c.quiet) std::cerr << "ask_clip: " << j.dump() << "\n";
  if (s.pairs != total)
    throw omni::RunError("wrote " + std::to_string(s.pairs) + " records for " +
                         std::to_string(total) + " pairs");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Answers a question about a clip with the shapes & voices demo model"};
  std::string file, question, model_dir = omni::demo::default_model_dir(), device = "cpu";
  bool json = false, verbose = false;
  BatchCli batch;
  app.add_option("FILE", file, "media file (any container/codec FFmpeg reads)");
  app.add_option("QUESTION", question,
                 "one of: \"what shape is it?\", \"what color is the shape?\", "
                 "\"which color was spoken?\", \"does the spoken color match the shape?\"");
  app.add_option("--model", model_dir, "model directory (config.json + model.safetensors)");
  app.add_option("--device", device, "cpu, cuda or cuda:N");
  app.add_flag("--json", json, "print one JSON object {answer, seconds, tokens}");
  app.add_flag("--verbose", verbose, "also print token counts per modality");
  app.add_option("--batch", batch.manifest,
                 "answer every (clip, question) pair of a make_clips manifest.jsonl (all four "
                 "questions unless a line names one) through one graph; JSON lines out");
  app.add_option("--out", batch.out, "--batch: output file (default: standard output)");
  app.add_option("--summary", batch.summary,
                 "--batch: write a JSON summary (seconds, clips/s, peak RSS) here");
  app.add_option("--workers", batch.workers,
                 "--batch: graph worker threads (0: the idle cores, 1 or 2)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--torch-threads", batch.torch_threads,
                 "--batch: libtorch intra-op threads (0: libtorch's default)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--vision-batch", batch.vision_batch,
                 "--batch: frames per ViT forward (0: all frames of a clip)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--no-share-prefix", batch.no_share_prefix,
               "--batch: run each question's whole prompt (default: the clip's tokens once)");
  app.add_flag("--no-batch-questions", batch.no_batch_questions,
               "--batch: answer a clip's questions one after another (default: as one batch)");
  app.add_option("--trace", batch.trace, "--batch: write a Chrome trace (Perfetto) here");
  app.add_flag("--quiet", batch.quiet, "--batch: no progress bar or summary on stderr");
  CLI11_PARSE(app, argc, argv);

  try {
    if (!batch.manifest.empty()) {
      if (!file.empty()) {
        std::cerr << "ask_clip: give either FILE QUESTION or --batch MANIFEST, not both\n";
        return 2;
      }
      return run_batch_cli(batch, model_dir);
    }
    if (file.empty() || question.empty()) {
      std::cerr << "ask_clip: FILE and QUESTION are required (or --batch MANIFEST)\n" << app.help();
      return 2;
    }
    if (omni::demo::question_index(question) < 0) {
      std::string known;
      for (const char* q : omni::demo::kQuestionText) known += std::string("\n  ") + q;
      std::cerr << "ask_clip: the model was trained on four questions only; got \"" << question
                << "\", expected one of:" << known << "\n";
      return 2;
    }
    const omni::demo::Asker asker(model_dir, device);
    const auto r = asker.ask(file, question);
    if (json) {
      nlohmann::ordered_json j;
      j["answer"] = r.answer;
      j["seconds"] = r.seconds;
      j["tokens"] = {{"text", r.tokens.count("text") ? r.tokens.at("text") : 0},
                     {"video", r.tokens.count("video") ? r.tokens.at("video") : 0},
                     {"audio", r.tokens.count("audio") ? r.tokens.at("audio") : 0}};
      if (r.tokens.count("boundary")) j["tokens"]["boundary"] = r.tokens.at("boundary");
      j["has_audio"] = r.has_audio;
      // The answer is model output: bytes that are not valid UTF-8 are written as U+FFFD.
      std::cout << j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    } else {
      std::cout << r.answer << "\n";
      std::fprintf(stderr, "(%.3f s)\n", r.seconds);
      if (verbose)
        for (const auto& [k, v] : r.tokens)
          std::fprintf(stderr, "  %s tokens: %lld\n", k.c_str(), static_cast<long long>(v));
    }
  } catch (const std::exception& e) {
    std::cerr << "ask_clip: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
