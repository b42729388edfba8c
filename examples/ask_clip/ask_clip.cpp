// ask_clip: answers a question about a media file with the shipped shapes & voices model, through
// the inference graph (MediaSource -> ImageEncoder / LogMel -> AudioEncoder -> UnifiedSequencer ->
// Generate). Prints the answer and the time taken; --json for one machine-readable object.
// --batch MANIFEST answers every (clip, question) pair of a manifest through one running graph
// (models/shapes_voices/batch.h) and writes one JSON line per pair; `mpirun -n N ask_clip --batch`
// spreads the manifest over N ranks (dist/manifest_run.h), --resume finishes an interrupted run.
// --model DIR with a Hugging Face Qwen2.5-Omni directory answers any question about an image, an
// audio file, a video or no file at all (models/qwen2_5_omni/ask.h), streaming the text.
#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

#include "core/error.h"
#include "dist/cli_flags.h"
#include "dist/manifest_run.h"
#include "models/qwen2_5_omni/ask.h"
#include "models/qwen2_5_omni/thinker.h"
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
  app.add_option("FILE", file,
                 "media file (any container/codec FFmpeg reads); with a Hugging Face --model: an "
                 "image, audio file or video, or leave it out for a text-only question");
  app.add_option("QUESTION", question,
                 "demo model: one of: \"what shape is it?\", \"what color is the shape?\", "
                 "\"which color was spoken?\", \"does the spoken color match the shape?\"; "
                 "a Hugging Face --model: any question");
  app.add_option("--model", model_dir,
                 "model directory: the demo model's (config.json + model.safetensors, default) or "
                 "a Hugging Face Qwen2.5-Omni directory (docs/MODELS.md)");
  app.add_option("--device", device, "cpu, cuda or cuda:N");
  // Flags of Hugging Face models (Qwen2.5-Omni); the demo model refuses them.
  omni::qwen::AskOptions hf;
  std::string audio_in_video = "auto", system_text;
  const std::vector<CLI::Option*> hf_flags = {
      app.add_option("--max-new-tokens", hf.max_new_tokens,
                     "HF model: most tokens to generate (default 128)")
          ->check(CLI::NonNegativeNumber),
      app.add_option("--audio-in-video", audio_in_video,
                     "HF model: use a video's sound track, interleaved with its frames: on, off "
                     "(default: on when the video has sound)"),
      app.add_option("--fps", hf.fps, "HF model: video frames sampled per second (default 2)")
          ->check(CLI::PositiveNumber),
      app.add_option("--system", system_text,
                     "HF model: system prompt (default: the chat template's own)"),
      app.add_option("--dump-logits", hf.dump_logits,
                     "HF model: write the prompt's logits (float32 [prompt_len, vocab]) and "
                     "position_ids (int64 [3, prompt_len]) to this safetensors file"),
      app.add_option("--dtype", hf.dtype, "HF model: fp32 or bf16 (CPU); fp16 on CUDA"),
      app.add_option("--temperature", hf.temperature,
                     "HF model: sample with this temperature (0 = greedy, the default)")
          ->check(CLI::NonNegativeNumber),
      app.add_option("--top-k", hf.top_k, "HF model: sampling keeps the k most likely tokens")
          ->check(CLI::NonNegativeNumber),
      app.add_option("--top-p", hf.top_p, "HF model: sampling keeps this probability mass")
          ->check(CLI::Range(0.0, 1.0)),
      app.add_option("--seed", hf.seed, "HF model: sampling seed")};
  app.add_flag("--json", json,
               "print one JSON object: {answer, seconds, tokens} (demo model); {answer, ids, "
               "prompt_ids, ...} (Hugging Face model, docs/MODELS.md)");
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
    if (app.count("--model") && !std::filesystem::is_directory(model_dir)) {
      std::cerr << "ask_clip: model directory '" << model_dir << "' does not exist\n";
      return 1;
    }
    if (app.count("--model") &&
        !std::filesystem::exists(std::filesystem::path(model_dir) / "config.json")) {
      std::cerr << "ask_clip: '" << model_dir
                << "' has no config.json: not a model directory (a Hugging Face Qwen2.5-Omni "
                   "directory or the demo model's)\n";
      return 1;
    }
    if (omni::qwen::is_hub_model_dir(model_dir)) {
      if (!batch.manifest.empty()) {
        std::cerr << "ask_clip: --batch runs the demo model only\n";
        return 2;
      }
      // One positional argument is the question (a text-only conversation).
      if (question.empty()) std::swap(file, question);
      if (question.empty()) {
        std::cerr << "ask_clip: a QUESTION is required\n" << app.help();
        return 2;
      }
      hf.model_dir = model_dir;
      hf.file = file;
      hf.question = question;
      hf.json = json;
      hf.verbose = verbose;
      hf.device = device;
      hf.audio_in_video = omni::qwen::parse_on_off(audio_in_video, "--audio-in-video");
      if (app.count("--system")) hf.system = system_text;
      omni::qwen::run_ask(hf, std::cout, std::cerr);
      return 0;
    }
    for (const CLI::Option* f : hf_flags)
      if (f->count()) {
        std::cerr << "ask_clip: " << f->get_name()
                  << " needs a Hugging Face --model directory (the demo model does not take it)\n";
        return 2;
      }
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
