// ask_clip --batch (models/shapes_voices/batch.h): one graph run over a small manifest with a good
// clip, a missing file, a damaged file and bad lines gives exactly one record per pair, in order,
// and the same answers as the single-clip ask graph. Also the C++ model against the Python
// reference of bench/python/ask_batch.py (fixture made by bench/python/make_parity_fixture.py).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "fusion/heads.h"
#include "modalities/common/safetensors.h"
#include "modalities/common/weights.h"
#include "models/shapes_voices/batch.h"
#include "models/shapes_voices/pipeline.h"
#include "models/shapes_voices/task.h"

namespace fs = std::filesystem;
using namespace omni;
using namespace omni::demo;

namespace {

const std::string kModelDir = std::string(OMNI_SOURCE_DIR) + "/models/shapes_voices";
const std::string kSample = kModelDir + "/sample.mp4";

// Writes the manifest and returns its path; lines (1-based):
// 1 sample, all questions | 2 missing file | 3 not JSON | 4 sample, "shape" only |
// 5 unknown question | 6 damaged file | 7 blank (skipped)
std::string write_manifest() {
  const fs::path dir = fs::path(OMNI_BINARY_DIR) / "ask_batch_test";
  fs::create_directories(dir);
  {
    std::ofstream damaged(dir / "damaged.mp4", std::ios::binary);
    damaged << "this is not an mp4 file, just some bytes that look nothing like one";
  }
  const fs::path m = dir / "manifest.jsonl";
  std::ofstream out(m);
  out << R"({"file": ")" << kSample << R"(", "shape": "circle"})"
      << "\n"
      << R"({"file": "missing.mp4"})"
      << "\n"
      << "{not json\n"
      << R"({"file": ")" << kSample << R"(", "question": "shape"})"
      << "\n"
      << R"({"file": ")" << kSample << R"(", "question": "how old is it?"})"
      << "\n"
      << R"({"file": "damaged.mp4"})"
      << "\n"
      << "\n";
  return m.string();
}

std::vector<nlohmann::ordered_json> run(const std::vector<ClipJob>& jobs, bool share_prefix,
                                        bool batch_questions, BatchSummary* summary = nullptr) {
  std::vector<nlohmann::ordered_json> records;
  BatchOptions o;
  o.model_dir = kModelDir;
  o.share_prefix = share_prefix;
  o.batch_questions = batch_questions;
  o.on_record = [&](const nlohmann::ordered_json& r) { records.push_back(r); };
  const BatchSummary s = run_batch(jobs, o);
  if (summary) *summary = s;
  return records;
}

}  // namespace

TEST(AskBatch, ManifestLinesBecomeJobs) {
  const auto jobs = read_batch_manifest(write_manifest());
  ASSERT_EQ(jobs.size(), 6u);
  EXPECT_EQ(jobs[0].questions, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_TRUE(jobs[0].error.empty());
  EXPECT_TRUE(jobs[1].error.empty());  // a missing file is found by the decode stage
  EXPECT_NE(jobs[2].error.find(":3:"), std::string::npos) << jobs[2].error;
  EXPECT_EQ(jobs[3].questions, std::vector<int>{0});
  EXPECT_NE(jobs[4].error.find("how old is it?"), std::string::npos) << jobs[4].error;
  EXPECT_EQ(count_pairs(jobs), 4 + 4 + 1 + 1 + 1 + 4);
  EXPECT_THROW(read_batch_manifest("/nonexistent/manifest.jsonl"), InputError);
}

TEST(AskBatch, OneRecordPerPairInOrderWithAskGraphAnswers) {
  const auto jobs = read_batch_manifest(write_manifest());
  BatchSummary s;
  const auto records = run(jobs, /*share_prefix=*/true, /*batch_questions=*/true, &s);
  ASSERT_EQ(int64_t(records.size()), count_pairs(jobs));
  EXPECT_EQ(s.pairs, count_pairs(jobs));
  EXPECT_EQ(s.clips, 6);
  // Per line: how many records and whether they are errors.
  std::map<int64_t, int> per_line, errors;
  int64_t last_line = 0;
  for (const auto& r : records) {
    const int64_t line = r["line"].get<int64_t>();
    EXPECT_GE(line, last_line) << "records out of manifest order";
    last_line = line;
    ++per_line[line];
    if (r.contains("error")) ++errors[line];
  }
  EXPECT_EQ(per_line, (std::map<int64_t, int>{{1, 4}, {2, 4}, {3, 1}, {4, 1}, {5, 1}, {6, 4}}));
  EXPECT_EQ(errors, (std::map<int64_t, int>{{2, 4}, {3, 1}, {5, 1}, {6, 4}}));
  EXPECT_NE(records[4]["error"].get<std::string>().find("missing.mp4"), std::string::npos);
  EXPECT_EQ(s.errors, 10);
  EXPECT_EQ(s.answered, 5);

  // The sample's answers are the ask graph's (MediaSource -> encoders -> UnifiedSequencer ->
  // Generate), question by question; the truth given on line 1 is reported against.
  const Asker asker(kModelDir);
  for (int q = 0; q < kNumQuestions; ++q) {
    const auto& r = records[size_t(q)];
    EXPECT_EQ(r["question"], kQuestionText[size_t(q)]);
    EXPECT_EQ(r["answer"].get<std::string>(), asker.ask(kSample, kQuestionText[size_t(q)]).answer)
        << kQuestionText[size_t(q)];
  }
  EXPECT_EQ(records[0]["expected"], "circle");
  EXPECT_EQ(records[0]["correct"].get<bool>(), records[0]["answer"] == "circle");
  EXPECT_FALSE(records[1].contains("expected"));          // line 1 gives no colour truth
  EXPECT_EQ(records[9]["answer"], records[0]["answer"]);  // line 4: "shape" only

  // Every question's whole prompt alone, or the shared prefix with the questions one by one,
  // gives the same answers as the shared prefix with the questions batched.
  for (bool share : {false, true}) {
    const auto other = run(jobs, share, /*batch_questions=*/false);
    ASSERT_EQ(other.size(), records.size());
    for (size_t i = 0; i < other.size(); ++i)
      EXPECT_EQ(other[i], records[i]) << "record " << i << ", share_prefix " << share;
  }
}

// A tiny random model with the demo's module structure: the prompt layout (TMRoPE positions, text
// ids) must equal the Python reference's exactly and the teacher-forced logits within 1e-4.
TEST(AskBatch, ModelMatchesPythonReference) {
  const auto file = SafeTensorsFile::open(std::string(OMNI_SOURCE_DIR) +
                                          "/tests/fixtures/e2e/shapes_voices_parity.safetensors");
  const DemoConfig config =
      DemoConfig::from_json(nlohmann::json::parse(file->metadata().at("config")), "fixture");
  ShapesVoices model(config);
  load_weights(*model->vision, *file, kVisionPrefix);
  load_weights(*model->audio, *file, kAudioPrefix);
  load_weights(*model->fusion, *file, kFusionPrefix);
  model->eval();
  at::NoGradGuard no_grad;
  const at::Tensor frame_us = file->get("in.frame_us");
  auto video = encode_video(*model, file->get("in.frames"),
                            std::vector<int64_t>(frame_us.data_ptr<int64_t>(),
                                                 frame_us.data_ptr<int64_t>() + frame_us.numel()),
                            "clip/video");
  const auto audio = encode_audio(*model, {file->get("in.mel")},
                                  {file->get("in.mel_us").item<int64_t>()}, "clip/audio");
  FusionTransformerImpl& f = *model->fusion;
  for (int q = 0; q < kNumQuestions; ++q) {
    const std::string k = "q" + std::to_string(q);
    const FusedSequence seq = layout_prompt(video, audio, question_chunk(kQuestionText[size_t(q)]));
    ASSERT_TRUE(seq.positions.equal(file->get(k + ".positions"))) << k;
    ASSERT_TRUE(seq.text_ids.equal(file->get(k + ".text_ids"))) << k;
    const at::Tensor ans = file->get(k + ".answer_ids");
    const int64_t n = ans.numel(), next = seq.next_position();
    const at::Tensor embeds = at::cat({embed_sequence(f, seq), f.embed_ids(ans).unsqueeze(0)}, 1);
    const at::Tensor pos = at::cat(
        {seq.positions, at::arange(next, next + n, at::kLong).unsqueeze(0).expand({3, n})}, 1);
    const at::Tensor logits = f.lm_logits(f.forward(embeds, pos)[0].slice(0, seq.length() - 1));
    const at::Tensor expected = file->get(k + ".logits");
    ASSERT_EQ(logits.sizes(), expected.sizes()) << k;
    EXPECT_LT((logits - expected).abs().max().item<double>(), 1e-4) << k;
    EXPECT_GT(expected.abs().max().item<double>(), 0.1) << k << ": fixture logits are degenerate";
  }
}
