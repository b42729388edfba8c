// ask_clip: answers a question about a media file with the shipped shapes & voices model, through
// the inference graph (MediaSource -> ImageEncoder / LogMel -> AudioEncoder -> UnifiedSequencer ->
// Generate). Prints the answer and the time taken; --json for one machine-readable object.
// --batch MANIFEST answers every (clip, question) pair of a manifest through one running graph
// (models/shapes_voices/batch.h) and writes one JSON line per pair; `mpirun -n N ask_clip --batch`
// spreads the manifest over N ranks (dist/manifest_run.h), --resume finishes an interrupted run.
#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

#include "core/error.h"
#include "dist/cli_flags.h"
#include "dist/manifest_run.h"
#include "models/shapes_voices/batch.h"
#include "models/shapes_voices/pipeline.h"
#include "models/shapes_voices/task.h"

namespace {

struct BatchCli {
  std::string manifest, out = "-", summary, trace;
  int workers = 0, torch_threads = 1;
  int64_t vision_batch = 0;
  bool no_share_prefix = false, no_batch_questions = false;
  omni::dist::ManifestRunFlags run;  // --resume, --in-flight, --coordinator-only, --quiet
};

// One graph over the manifest in this process, or, under `mpirun -n N`, one per rank with the lines
// handed out dynamically by rank 0, which writes the records (dist/manifest_run.h). Progress per
// rank and overall on stderr; --resume keeps the finished lines of an earlier run's --out.
int run_batch_cli(const BatchCli& c, const std::string& model_dir) {
  const auto jobs = omni::demo::read_batch_manifest(c.manifest);
  const int64_t total = omni::demo::count_pairs(jobs);
  std::map<int64_t, int64_t> pairs_of_line;  // 0-based line index -> records of a finished line
  for (const auto& j : jobs) pairs_of_line[j.line - 1] = int64_t(j.questions.size());
  omni::dist::ManifestRunOptions mo;
  mo.manifest = c.manifest;
  mo.out = c.out;
  c.run.apply(mo);
  mo.program = "ask_clip";
  mo.expected = [&pairs_of_line](int64_t index) {
    auto it = pairs_of_line.find(index);
    return it == pairs_of_line.end() ? int64_t{1} : it->second;
  };
  int64_t correct = 0, with_truth = 0;
  mo.on_record = [&](const nlohmann::ordered_json& r) {
    if (r.contains("correct")) {
      ++with_truth;
      correct += r["correct"].get<bool>() ? 1 : 0;
    }
  };
  omni::demo::BatchOptions o;
  o.model_dir = model_dir;
  o.workers = c.workers;
  o.torch_threads = c.torch_threads;
  o.vision_batch = c.vision_batch;
  o.share_prefix = !c.no_share_prefix;
  o.batch_questions = !c.no_batch_questions;
  const int ranks = omni::dist::launched_world_size();
  o.trace_path = c.trace.empty() || ranks <= 1
                     ? c.trace
                     : c.trace + ".rank" + std::to_string(omni::dist::launched_rank());
  o.manifest = c.manifest;
  omni::demo::BatchSummary local;
  const auto s = omni::dist::run_manifest(mo, [&] { local = omni::demo::run_batch({}, o); });
  if (!s.coordinator) return 0;
  nlohmann::ordered_json j;
  j["clips"] = s.ran;
  j["pairs"] = s.records;
  j["answered"] = s.records - s.errors;
  j["errors"] = s.errors;
  if (with_truth > 0) j["accuracy"] = double(correct) / double(with_truth);
  // One process: the graph run without model loading (as before); MPI: the whole run.
  const double seconds = s.ranks > 1 ? s.seconds : local.seconds;
  j["seconds"] = seconds;
  j["load_seconds"] = local.load_seconds;
  j["clips_per_s"] = seconds > 0 ? double(s.ran) / seconds : 0.0;
  j["max_rss_mb"] = local.max_rss_mb;
  j["workers"] = local.workers;
  j["torch_threads"] = c.torch_threads;
  // The manifest run as a whole (model loading and, under MPI, every rank's start included).
  const auto run = s.to_json(false);
  j["run_seconds"] = s.seconds;
  for (const char* k : {"lines_per_s", "lines", "skipped", "ranks", "per_rank", "resume"})
    if (run.contains(k)) j[k] = run[k];
  if (!c.summary.empty()) {
    auto full = j;
    full["per_rank"] = s.to_json(true)["per_rank"];
    std::ofstream f(c.summary);
    f << full.dump(2) << "\n";
  }
  if (!c.run.quiet) std::cerr << "ask_clip: " << j.dump() << "\n";
  if (s.records + s.resume.kept_records != total)
    throw omni::RunError("wrote " + std::to_string(s.records + s.resume.kept_records) +
                         " records for " + std::to_string(total) + " pairs");
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
  batch.run.add_to(app, "--batch");
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
