// e2e_bench: whole-pipeline figures for the shapes & voices demo (issue 7). Subcommands:
//   floor   each stage alone over the same clips (decode; preprocess; encoders + transformer on
//           precomputed inputs), then the batch graph over them: e2e_overlap_efficiency.
//   stream  clips played at real time through the streaming graph: answer latency p50/p99.
//   dump    one clip's model inputs, layouts and logits (safetensors) for the Python parity check.
// Every subcommand prints one JSON object on standard output.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/version.h>
#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fusion/fusion_nodes.h"
#include "fusion/heads.h"
#include "modalities/common/safetensors.h"
#include "modalities/common/torch_compat.h"
#include "models/shapes_voices/batch.h"
#include "models/shapes_voices/pipeline.h"
#include "models/shapes_voices/stream.h"
#include "models/shapes_voices/task.h"

using namespace omni;
using namespace omni::demo;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::vector<ClipJob> usable_jobs(const std::string& manifest, int limit) {
  std::vector<ClipJob> jobs;
  for (auto& j : read_batch_manifest(manifest)) {
    if (!j.error.empty()) continue;
    if (limit > 0 && static_cast<int>(jobs.size()) >= limit) break;
    jobs.push_back(std::move(j));
  }
  if (jobs.empty()) throw InputError("no usable clips in '" + manifest + "'");
  return jobs;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = p / 100.0 * double(v.size() - 1);
  const auto lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

struct Common {
  std::string manifest, model_dir = default_model_dir();
  int limit = 0, workers = 0, torch_threads = 1, repeats = 1;
};

int run_floor(const Common& c) {
  const auto jobs = usable_jobs(c.manifest, c.limit);
  set_compute_threads(c.torch_threads);
  DemoConfig config;
  ShapesVoices model = load_demo_model(c.model_dir, &config);
  std::map<std::string, double> best;
  int workers_used = 0;
  auto keep_best = [&](const std::string& k, double s) {
    best[k] = best.count(k) ? std::min(best[k], s) : s;
  };
  for (int rep = 0; rep < c.repeats; ++rep) {
    // Stages alone, in sequence, each over every clip (the previous stage's outputs kept).
    std::vector<DecodedClip> decoded;
    auto t0 = Clock::now();
    for (const auto& j : jobs) decoded.push_back(decode_clip(j.path, config));
    keep_best("decode_s", seconds_since(t0));
    std::vector<ClipInputs> inputs;
    t0 = Clock::now();
    for (const auto& d : decoded) inputs.push_back(preprocess_clip(d, config));
    keep_best("preprocess_s", seconds_since(t0));
    decoded.clear();
    t0 = Clock::now();
    for (size_t i = 0; i < jobs.size(); ++i) {
      const ClipTokens t = encode_clip(*model, inputs[i]);
      answer_clip(*model, t, jobs[i].questions);
    }
    keep_best("model_s", seconds_since(t0));
    // Encoders and transformer separately (not a stage of the graph, just where model time goes).
    std::vector<ClipTokens> tokens;
    t0 = Clock::now();
    for (const auto& in : inputs) tokens.push_back(encode_clip(*model, in));
    keep_best("encoders_s", seconds_since(t0));
    t0 = Clock::now();
    for (size_t i = 0; i < jobs.size(); ++i) answer_clip(*model, tokens[i], jobs[i].questions);
    keep_best("transformer_s", seconds_since(t0));
    // The whole batch graph over the same clips.
    BatchOptions o;
    o.model_dir = c.model_dir;
    o.workers = c.workers;
    o.torch_threads = c.torch_threads;
    const BatchSummary s = run_batch(jobs, o);
    keep_best("e2e_s", s.seconds);
    workers_used = s.workers;
  }
  const double slowest = std::max({best["decode_s"], best["preprocess_s"], best["model_s"]});
  nlohmann::ordered_json j;
  j["clips"] = jobs.size();
  j["libtorch"] = TORCH_VERSION;
  j["workers"] = workers_used;
  j["torch_threads"] = c.torch_threads;
  for (const auto& [k, v] : best) j[k] = v;
  j["slowest_stage_s"] = slowest;
  j["e2e_overlap_efficiency"] = slowest / best["e2e_s"];
  j["e2e_clips_per_s"] = double(jobs.size()) / best["e2e_s"];
  std::cout << j.dump() << std::endl;
  return 0;
}

int run_stream(const Common& c, double speed, bool incremental, const std::string& batch_answers) {
  const auto jobs = usable_jobs(c.manifest, c.limit);
  set_compute_threads(c.torch_threads);
  DemoConfig config;
  auto model = std::make_shared<ShapesVoices>(load_demo_model(c.model_dir, &config));
  // Optional: batch answers (ask_clip --batch output) to report how often streaming agrees.
  std::map<std::pair<std::string, std::string>, std::string> reference;
  if (!batch_answers.empty()) {
    std::ifstream in(batch_answers);
    std::string line;
    while (std::getline(in, line)) {
      const auto r = nlohmann::json::parse(line, nullptr, false);
      if (r.is_object() && r.contains("answer"))
        reference[{r["file"].get<std::string>(), r["question"].get<std::string>()}] =
            r["answer"].get<std::string>();
    }
  }
  StreamOptions so;
  so.speed = speed;
  so.incremental = incremental;
  std::vector<double> latency, inputs_done, answer;
  int64_t correct = 0, with_truth = 0, agree = 0, compared = 0, mismatches = 0, tail = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const int q = static_cast<int>(i % kNumQuestions);  // every question, in turn
    const StreamResult r = stream_answer(model, c.model_dir, jobs[i].path, q, so);
    latency.push_back(r.latency_ms);
    inputs_done.push_back(r.inputs_done_ms);
    answer.push_back(r.answer_ms);
    tail += r.tail_tokens;
    mismatches += r.prefix_mismatch ? 1 : 0;
    const char* key = kQuestionKey[size_t(q)];
    if (jobs[i].truth.contains(key)) {
      ++with_truth;
      correct += r.answer == jobs[i].truth[key].get<std::string>() ? 1 : 0;
    }
    if (auto it = reference.find({jobs[i].file, kQuestionText[size_t(q)]}); it != reference.end()) {
      ++compared;
      agree += it->second == r.answer ? 1 : 0;
    }
    std::fprintf(stderr, "\rstream: %zu/%zu clips, last latency %.1f ms", i + 1, jobs.size(),
                 r.latency_ms);
  }
  std::fprintf(stderr, "\n");
  nlohmann::ordered_json j;
  j["clips"] = jobs.size();
  j["speed"] = speed;
  j["incremental"] = incremental;
  j["latency_ms_p50"] = percentile(latency, 50);
  j["latency_ms_p99"] = percentile(latency, 99);
  j["latency_ms_max"] = *std::max_element(latency.begin(), latency.end());
  j["inputs_done_ms_p50"] = percentile(inputs_done, 50);
  j["answer_ms_p50"] = percentile(answer, 50);
  j["mean_tail_tokens"] = double(tail) / double(jobs.size());
  j["prefix_mismatches"] = mismatches;
  if (with_truth > 0) j["accuracy"] = double(correct) / double(with_truth);
  if (compared > 0) j["agreement_with_batch"] = double(agree) / double(compared);
  std::cout << j.dump() << std::endl;
  return 0;
}

// Inputs, layouts and teacher-forced logits of one clip's four questions.
int run_dump(const Common& c, const std::string& clip, const std::string& out) {
  set_compute_threads(c.torch_threads);
  DemoConfig config;
  ShapesVoices model = load_demo_model(c.model_dir, &config);
  at::NoGradGuard no_grad;
  const ClipInputs in = preprocess_clip(decode_clip(clip, config), config);
  const ClipTokens tok = encode_clip(*model, in);
  TensorMap t;
  if (!in.frames.empty()) {
    t["frames"] = at::stack(in.frames);
    t["frame_us"] = at::tensor(in.frame_us, at::kLong);
  }
  for (size_t i = 0; i < in.mels.size(); ++i) t["mel." + std::to_string(i)] = in.mels[i];
  if (!in.mels.empty()) t["mel_us"] = at::tensor(in.mel_us, at::kLong);
  FusionTransformerImpl& f = *model->fusion;
  std::vector<int> all = {0, 1, 2, 3};
  const auto answers = answer_clip(*model, tok, all, /*share_prefix=*/true);
  nlohmann::ordered_json j;
  for (const auto& a : answers) {
    if (!a.error.empty()) continue;
    const std::string k = "q" + std::to_string(a.question);
    const FusedSequence seq =
        layout_prompt(tok.video, tok.audio, question_chunk(kQuestionText[size_t(a.question)]));
    std::vector<int64_t> ids;
    for (unsigned char ch : a.answer) ids.push_back(ch);
    // Teacher-forced over prompt + answer: one forward, no cache.
    const at::Tensor ans = at::tensor(ids, at::kLong);
    at::Tensor embeds = embed_sequence(f, seq);
    at::Tensor pos = seq.positions;
    if (!ids.empty()) {
      embeds = at::cat({embeds, f.embed_ids(ans).unsqueeze(0)}, 1);
      const int64_t next = seq.next_position();
      pos = at::cat({pos, at::arange(next, next + int64_t(ids.size()), at::kLong)
                              .unsqueeze(0)
                              .expand({3, int64_t(ids.size())})},
                    1);
    }
    const at::Tensor hidden = f.forward(embeds, pos);
    t[k + ".logits"] = f.lm_logits(hidden[0].slice(0, seq.length() - 1)).contiguous();
    t[k + ".positions"] = seq.positions.contiguous();
    t[k + ".text_ids"] = seq.text_ids.contiguous();
    t[k + ".answer_ids"] = ans;
    j[k] = a.answer;
  }
  save_safetensors(out, t, {{"clip", clip}});
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Whole-pipeline benchmarks of the shapes & voices demo (issue 7)"};
  app.require_subcommand(1);
  Common c;
  auto common = [&c](CLI::App* s) {
    s->add_option("--model", c.model_dir, "model directory");
    s->add_option("--limit", c.limit, "at most this many clips");
    s->add_option("--torch-threads", c.torch_threads, "libtorch intra-op threads (0: default)");
  };
  auto* floor = app.add_subcommand("floor", "stages alone vs the batch graph");
  floor->add_option("--manifest", c.manifest, "make_clips manifest.jsonl")->required();
  floor->add_option("--workers", c.workers, "batch graph workers (0: auto_workers())");
  floor->add_option("--repeats", c.repeats, "repetitions (best of)");
  common(floor);
  double speed = 1.0;
  bool at_end = false;
  std::string batch_answers, clip, out;
  auto* stream = app.add_subcommand("stream", "answer latency of live clips");
  stream->add_option("--manifest", c.manifest, "make_clips manifest.jsonl")->required();
  stream->add_option("--speed", speed, "playback speed (1 = real time)");
  stream->add_flag("--at-end", at_end, "no incremental prefill (everything after the clip)");
  stream->add_option("--batch-answers", batch_answers, "ask_clip --batch output to compare with");
  common(stream);
  auto* dump = app.add_subcommand("dump", "inputs and logits of one clip (safetensors)");
  dump->add_option("--clip", clip, "media file")->required();
  dump->add_option("--out", out, "output .safetensors")->required();
  common(dump);
  CLI11_PARSE(app, argc, argv);
  try {
    if (*floor) return run_floor(c);
    if (*stream) return run_stream(c, speed, !at_end, batch_answers);
    if (*dump) return run_dump(c, clip, out);
  } catch (const std::exception& e) {
    std::cerr << "e2e_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
