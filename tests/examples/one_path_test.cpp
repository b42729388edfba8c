// One way to run the demo model (issue 15 item 2): the single-question ask graph (Asker), the
// batch graph (run_batch, with share_prefix / batch_questions on and off) and the streaming graph
// (stream_answer, incremental prefill) give the same answers and the same prompt logits on the
// same clip.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fusion/fusion_nodes.h"
#include "fusion/heads.h"
#include "models/shapes_voices/batch.h"
#include "models/shapes_voices/pipeline.h"
#include "models/shapes_voices/stream.h"
#include "models/shapes_voices/task.h"

using namespace omni;
using namespace omni::demo;

namespace {

const std::string kModelDir = std::string(OMNI_SOURCE_DIR) + "/models/shapes_voices";
// The committed sample clip (video and speech); every question applies to it.
const std::string kClip = kModelDir + "/sample.mp4";
// Identical up to float rounding: the modes batch and split the same operations differently
// (one prompt forward or a prefix plus the rest, padded rows, one frame per ViT forward).
constexpr double kLogitTol = 1e-5;

struct ModeAnswer {
  std::string answer;
  at::Tensor logits;  // [V]
};

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

DecodeOptions demo_decoding(const ShapesVoicesImpl& m) {
  DecodeOptions d;
  d.max_new_tokens = m.config.max_answer_tokens;
  d.stop_tokens = {SpecialTokens{}.eos};
  return d;
}

// The ask graph (MediaSource -> encoders -> UnifiedSequencer -> Generate), one question per run.
// Its answer is the Generate node's; its prompt logits are those of the sequence the graph's
// UnifiedSequencer handed to Generate, through the same generate() call the node makes.
std::vector<ModeAnswer> ask_mode(ShapesVoicesImpl& model) {
  const Asker asker(kModelDir);
  std::vector<ModeAnswer> out;
  for (int q = 0; q < kNumQuestions; ++q) {
    const AskResult r = asker.ask(kClip, kQuestionText[size_t(q)]);
    at::NoGradGuard no_grad;
    FusionTransformerImpl& f = *model.fusion;
    const GenerateResult g =
        generate(f, embed_sequence(f, r.sequence), r.sequence.positions, demo_decoding(model));
    EXPECT_EQ(decode_byte_ids(g.tokens), r.answer) << "question " << q;
    out.push_back({r.answer, g.prompt_logits});
  }
  return out;
}

std::vector<ModeAnswer> batch_mode(bool share_prefix, bool batch_questions) {
  ClipJob job;
  job.line = 1;
  job.file = job.path = kClip;
  job.questions = {0, 1, 2, 3};
  BatchOptions o;
  o.model_dir = kModelDir;
  o.workers = 2;
  o.share_prefix = share_prefix;
  o.batch_questions = batch_questions;
  std::mutex mu;
  std::vector<ModeAnswer> out(static_cast<size_t>(kNumQuestions));
  int answered = 0;
  o.on_answer = [&](const ClipJob&, const QuestionAnswer& a) {
    std::lock_guard lock(mu);
    EXPECT_TRUE(a.error.empty()) << a.error;
    out[size_t(a.question)] = {a.answer, a.prompt_logits};
    ++answered;
  };
  const BatchSummary s = run_batch({job}, o);
  EXPECT_EQ(s.answered, kNumQuestions);
  EXPECT_EQ(answered, kNumQuestions);
  return out;
}

std::vector<ModeAnswer> stream_mode(const std::shared_ptr<ShapesVoices>& model, double window_s,
                                    bool incremental, bool* prefilled = nullptr) {
  StreamOptions o;
  o.speed = 20;  // a 5 s clip plays in a quarter of a second
  o.window_s = window_s;
  o.incremental = incremental;
  std::vector<ModeAnswer> out;
  for (int q = 0; q < kNumQuestions; ++q) {
    const StreamResult r = stream_answer(model, kModelDir, kClip, q, o);
    EXPECT_FALSE(r.prefix_mismatch) << "question " << q;
    if (prefilled) *prefilled = *prefilled || r.tail_tokens < r.prompt_tokens;
    out.push_back({r.answer, r.prompt_logits});
  }
  return out;
}

// Same answers and logits within kLogitTol; prints the largest logit difference.
void expect_same(const std::vector<ModeAnswer>& ref, const std::vector<ModeAnswer>& got,
                 const std::string& mode) {
  ASSERT_EQ(ref.size(), got.size()) << mode;
  double worst = 0;
  for (size_t q = 0; q < ref.size(); ++q) {
    EXPECT_EQ(got[q].answer, ref[q].answer) << mode << ", question " << q;
    ASSERT_TRUE(got[q].logits.defined()) << mode << ", question " << q;
    ASSERT_EQ(got[q].logits.sizes(), ref[q].logits.sizes()) << mode;
    const double d = max_diff(got[q].logits, ref[q].logits);
    EXPECT_LE(d, kLogitTol) << mode << ", question " << q;
    worst = std::max(worst, d);
  }
  std::printf("%-40s answers equal, prompt logits max |diff| %.3g\n", mode.c_str(), worst);
}

}  // namespace

TEST(OnePath, AskBatchAndStreamGiveTheSameAnswersAndLogits) {
  auto model = std::make_shared<ShapesVoices>(load_demo_model(kModelDir));
  const auto ask = ask_mode(**model);
  ASSERT_EQ(ask.size(), size_t(kNumQuestions));
  for (const auto& a : ask) ASSERT_GT(a.logits.abs().max().item<double>(), 0.1);

  expect_same(ask, batch_mode(false, false), "run_batch share_prefix=0");
  expect_same(ask, batch_mode(true, false), "run_batch share_prefix=1 batch_questions=0");
  expect_same(ask, batch_mode(true, true), "run_batch share_prefix=1 batch_questions=1");
  // The streaming graph with the ask graph's audio window (30 s: one log-mel window for the
  // clip), prefilling the KV cache as 2 s chunks of the prompt complete.
  bool prefilled = false;
  expect_same(ask, stream_mode(model, 30.0, /*incremental=*/true, &prefilled),
              "stream_answer window 30 s, incremental");
  EXPECT_TRUE(prefilled) << "no prompt tokens were prefilled while the clip played";
  // With the streaming default of 2 s audio windows the audio tokens are other numbers (each
  // window normalised and attended alone), so the reference is the same stream without prefill.
  prefilled = false;
  const auto whole = stream_mode(model, 2.0, /*incremental=*/false);
  expect_same(whole, stream_mode(model, 2.0, /*incremental=*/true, &prefilled),
              "stream_answer window 2 s, incremental");
  EXPECT_TRUE(prefilled);
}
