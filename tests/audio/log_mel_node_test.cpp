// Graph-level tests of the LogMel node: an AudioChunk source -> LogMel, in both modes; chunk
// boundaries never change the features.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "core/graph.h"
#include "core/registry.h"
#include "modalities/audio/log_mel.h"
#include "modalities/audio/nodes.h"
#include "modalities/common/audio_chunk.h"

namespace omni {
namespace {

// Emits a fixed signal as AudioChunks of the given sizes (cycled), interleaving `channels` copies.
struct ChunkPlan {
  std::vector<float> signal;
  std::vector<int64_t> sizes;
  int channels = 1;
  int rate = 16000;
  int64_t origin_us = 0;
};

class ChunkSource : public Node {
 public:
  explicit ChunkSource(std::shared_ptr<const ChunkPlan> plan) : plan_(std::move(plan)) {}
  static constexpr Output<AudioChunk> kAudio{"audio"};
  static Contract contract() { return Contract().output(kAudio); }
  Flow process(Context& ctx) override {
    const auto n = static_cast<int64_t>(plan_->signal.size());
    if (at_ >= n) return Flow::kDone;
    const int64_t k = std::min(plan_->sizes[turn_++ % plan_->sizes.size()], n - at_);
    AudioChunk c;
    c.sample_rate = plan_->rate;
    c.channels = plan_->channels;
    c.start_us = plan_->origin_us + at_ * 1000000 / plan_->rate;
    for (int64_t i = at_; i < at_ + k; ++i)
      for (int ch = 0; ch < plan_->channels; ++ch) c.samples.push_back(plan_->signal[i]);
    at_ += k;
    const Timestamp ts(c.start_us);
    ctx.emit(kAudio, std::move(c), ts);
    return Flow::kContinue;
  }

 private:
  std::shared_ptr<const ChunkPlan> plan_;
  int64_t at_ = 0;
  size_t turn_ = 0;
};

struct Window {
  int64_t ts_us;
  at::Tensor mel;
};

std::vector<Window> run_log_mel(const ChunkPlan& plan, std::map<std::string, ParamValue> params) {
  Registry r;
  register_audio_nodes(r);
  auto shared = std::make_shared<const ChunkPlan>(plan);
  auto g = GraphBuilder("audio")
               .add_instance("src", "ChunkSource", ChunkSource::contract(),
                             [shared] { return std::make_unique<ChunkSource>(shared); })
               .add("mel", "LogMel", std::move(params))
               .connect("src.audio", "mel.audio")
               .output("mel.mel")
               .build(r);
  std::vector<Window> out;
  std::mutex mu;
  g->observe("mel.mel", [&](const Packet& p) {
    std::lock_guard<std::mutex> lock(mu);
    out.push_back({p.timestamp().us(), p.get<at::Tensor>()});
  });
  g->run();
  return out;
}

std::vector<float> test_signal(int64_t n) {
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 0.05f);
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    x[i] = d(rng) + 0.3f * std::sin(0.05f * i) * (i % 16000 < 8000 ? 1.0f : 0.01f);
  return x;
}

at::Tensor as_tensor(std::vector<float> v, int64_t rows) {
  const int64_t cols = static_cast<int64_t>(v.size()) / rows;
  return at::from_blob(v.data(), {rows, cols}, at::kFloat).clone();
}

TEST(LogMelNode, WholeStreamNormEqualsWholeSignal) {
  ChunkPlan plan;
  plan.signal = test_signal(16000 * 5 + 77);
  plan.sizes = {1000, 37, 4800, 160, 16001, 399};
  plan.origin_us = 2000000;
  const auto windows = run_log_mel(
      plan,
      {{"mode", std::string("whole")}, {"window_s", 2.0}, {"normalize", std::string("stream")}});
  ASSERT_EQ(windows.size(), 3u);  // 500 frames: 200 + 200 + 100
  LogMel mel(80);
  const at::Tensor expected = as_tensor(mel.compute(plan.signal.data(), 16000 * 5 + 77), 80);
  std::vector<at::Tensor> parts;
  for (size_t k = 0; k < windows.size(); ++k) {
    EXPECT_EQ(windows[k].ts_us, 2000000 + int64_t(k) * 2000000);
    EXPECT_EQ(windows[k].mel.size(0), 80);
    parts.push_back(windows[k].mel);
  }
  EXPECT_EQ(windows[2].mel.size(1), 100);
  EXPECT_TRUE(at::equal(at::cat(parts, 1), expected));
}

TEST(LogMelNode, WholeWindowNormUsesEachWindowsMax) {
  ChunkPlan plan;
  plan.signal = test_signal(16000 * 3);
  plan.sizes = {333, 5000};
  const auto windows =
      run_log_mel(plan, {{"mode", std::string("whole")}, {"window_s", 1.0}, {"n_mels", 128}});
  ASSERT_EQ(windows.size(), 3u);
  LogMel mel(128);
  const at::Tensor raw = as_tensor(mel.compute_raw(plan.signal.data(), 16000 * 3), 128);
  for (int k = 0; k < 3; ++k) {
    at::Tensor w = raw.narrow(1, k * 100, 100).contiguous();
    normalize_log_mel(w.data_ptr<float>(), w.numel());
    EXPECT_TRUE(at::equal(windows[k].mel, w)) << "window " << k;
    EXPECT_EQ(windows[k].ts_us, k * 1000000);
  }
}

TEST(LogMelNode, Padded30WindowsAreIndependentWhisperInputs) {
  ChunkPlan plan;
  plan.signal = test_signal(16000 * 2 + 8000);
  plan.sizes = {7000, 123};
  plan.channels = 2;  // identical channels: the downmix is the signal itself
  const auto windows = run_log_mel(plan, {{"window_s", 1.0}});
  ASSERT_EQ(windows.size(), 3u);
  LogMel mel(80);
  for (int k = 0; k < 3; ++k) {
    const int64_t n =
        std::min<int64_t>(16000, static_cast<int64_t>(plan.signal.size()) - k * 16000);
    const at::Tensor expected =
        as_tensor(mel.compute_padded(plan.signal.data() + k * 16000, n, 16000), 80);
    ASSERT_EQ(windows[k].mel.sizes(), expected.sizes());
    EXPECT_TRUE(at::allclose(windows[k].mel, expected, 0.0, 1e-6)) << "window " << k;
    EXPECT_EQ(windows[k].ts_us, k * 1000000);
  }
}

TEST(LogMelNode, DefaultIsWhisper30sWindow) {
  ChunkPlan plan;
  plan.signal = test_signal(16000 * 3);
  plan.sizes = {16000};
  const auto windows = run_log_mel(plan, {});
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0].mel.size(0), 80);
  EXPECT_EQ(windows[0].mel.size(1), 3000);
  LogMel mel(80);
  const at::Tensor expected = as_tensor(
      mel.compute_padded(plan.signal.data(), static_cast<int64_t>(plan.signal.size())), 80);
  EXPECT_TRUE(at::equal(windows[0].mel, expected));
}

TEST(LogMelNode, RejectsOtherRatesAndBadParams) {
  ChunkPlan plan;
  plan.signal = test_signal(4410);
  plan.sizes = {4410};
  plan.rate = 44100;
  try {
    run_log_mel(plan, {});
    ADD_FAILURE() << "expected RunError";
  } catch (const RunError& e) {
    EXPECT_NE(std::string(e.what()).find("16000"), std::string::npos) << e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kInput) << e.what();  // bad input, not a bug
    const std::string m = e.what();
    EXPECT_EQ(m.find("LogMel"), m.rfind("LogMel")) << "one context prefix: " << m;
  }
  plan.rate = 16000;
  EXPECT_THROW(run_log_mel(plan, {{"n_mels", 64}}), Error);
  EXPECT_THROW(run_log_mel(plan, {{"mode", std::string("streaming")}}), Error);
  EXPECT_THROW(run_log_mel(plan, {{"window_s", 0.005}}), Error);
}

}  // namespace
}  // namespace omni
