// One way to run the demo model (issue 15 item 2): the single-question ask graph (Asker), the
// batch graph (run_batch, with share_prefix / batch_questions on and off) and the streaming graph
// (stream_answer, incremental prefill) give the same answers and the same prompt logits on the
// same clip; and train_demo's training example for a clip is the sequence inference builds.
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

// train_demo's example for a clip (its preprocessing graph, one batched encoder forward, the
// library's chunk builders and training_example) holds exactly the prompt the ask graph answers
// from, then the answer at the positions generation feeds it.
TEST(OnePath, TrainingExampleIsTheInferenceSequence) {
  ShapesVoices model = load_demo_model(kModelDir);
  at::NoGradGuard no_grad;
  const DemoConfig& c = model->config;
  // train_demo's inputs: extract_clip (MediaSource, ImagePreprocess, LogMel nodes), then its
  // encode_batch's forwards: all frames in one ViT forward, the mel windows through the audio
  // encoder, chunks as in its training step.
  const ClipTensors t = extract_clip(kClip, c);
  ASSERT_FALSE(t.frames.empty());
  ASSERT_FALSE(t.mels.empty());
  const at::Tensor frames = at::stack(t.frames);
  const auto video =
      video_chunks(model->vision->forward(frames),
                   model->vision->grid(frames.size(2), frames.size(3)), t.frame_us, "clip/video");
  std::vector<at::Tensor> parts;
  int64_t mel_frames = 0;
  for (const auto& mel : t.mels) {
    parts.push_back(model->audio->forward(mel));
    mel_frames += mel.size(1);
  }
  const std::vector<TokenChunk> audio = {
      audio_chunk(at::cat(parts, 0), t.mel_us[0], mel_frames, "clip/audio")};

  const Asker asker(kModelDir);
  FusionTransformerImpl& f = *model->fusion;
  for (int q = 0; q < kNumQuestions; ++q) {
    const AskResult r = asker.ask(kClip, kQuestionText[size_t(q)]);
    const FusedSequence& inf = r.sequence;
    const std::string answer = "circle";
    const TrainingExample ex = training_example(*model, video, audio, q, answer);
    const int64_t lp = inf.length();
    ASSERT_EQ(ex.prompt.length(), lp) << "question " << q;
    EXPECT_EQ(ex.prompt.modality, inf.modality) << "question " << q;
    EXPECT_EQ(ex.prompt.boundaries, inf.boundaries) << "question " << q;
    EXPECT_TRUE(ex.prompt.text_ids.equal(inf.text_ids)) << "question " << q;
    EXPECT_TRUE(ex.positions.slice(1, 0, lp).equal(inf.positions)) << "question " << q;
    const double d = max_diff(ex.embeds.slice(0, 0, lp), embed_sequence(f, inf)[0]);
    std::printf("question %d: %lld prompt tokens, embeddings max |diff| %.3g\n", q,
                static_cast<long long>(lp), d);
    EXPECT_LE(d, kLogitTol) << "question " << q;
    // The answer: teacher-forced ids at next_position() + k, targets from the prompt's last token.
    const auto ids = answer_ids(answer);
    const auto n = int64_t(ids.size());
    ASSERT_EQ(ex.embeds.size(0), lp + n - 1);
    EXPECT_EQ(ex.first, lp - 1);
    EXPECT_TRUE(ex.targets.slice(0, lp - 1).equal(at::tensor(ids, at::kLong)));
    EXPECT_TRUE(ex.targets.slice(0, 0, lp - 1).eq(-100).all().item<bool>());
    const int64_t next = inf.next_position();
    EXPECT_TRUE(ex.positions.slice(1, lp).equal(
        at::arange(next, next + n - 1, at::kLong).unsqueeze(0).expand({3, n - 1})));
    EXPECT_TRUE(ex.embeds.slice(0, lp).equal(
        f.embed_ids(at::tensor(std::vector<int64_t>(ids.begin(), ids.end() - 1), at::kLong))));
  }
}
