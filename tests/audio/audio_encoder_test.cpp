// AudioEncoder: token-count functions agree with the outputs, batch == one at a time, devices.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include "core/error.h"
#include "core/graph.h"
#include "modalities/audio/audio_encoder.h"
#include "modalities/audio/audio_encoder_node.h"
#include "modalities/audio/audio_tokens.h"
#include "modalities/common/token_chunk.h"
#include "tests/common/fake_context.h"

namespace omni {
namespace {

AudioEncoderOptions small() {
  return AudioEncoderOptions().n_mels(8).width(16).depth(1).heads(2).out_dim(10);
}

TEST(AudioTokens, TwentyFivePerSecond) {
  EXPECT_EQ(audio_mel_frames(16000), 100);
  EXPECT_EQ(audio_mel_frames(159), 0);
  EXPECT_EQ(audio_tokens(16000), 25);
  EXPECT_EQ(audio_tokens(30 * 16000), 750);
  EXPECT_EQ(audio_tokens(45 * 16000), 750 + 375);
  EXPECT_EQ(audio_tokens(0), 0);
  // Odd lengths keep their partial last token rather than dropping audio.
  EXPECT_EQ(audio_window_tokens(1), 1);
  EXPECT_EQ(audio_window_tokens(5), 2);
  EXPECT_EQ(audio_tokens_for_frames(3001, 3000), 751);
  EXPECT_THROW(audio_tokens_for_frames(10, 0), ConfigError);
}

TEST(AudioEncoder, TokenCountMatchesOutputForManyLengths) {
  torch::NoGradGuard ng;
  torch::manual_seed(0);
  AudioEncoder enc(small());
  std::vector<int64_t> lengths;
  for (int64_t t = 1; t <= 41; ++t) lengths.push_back(t);
  for (int64_t t : {99, 100, 101, 102, 103, 517, 3000}) lengths.push_back(t);
  for (int64_t t : lengths) {
    const at::Tensor out = enc->forward(torch::randn({8, t}));
    ASSERT_EQ(out.dim(), 2);
    EXPECT_EQ(out.size(0), audio_window_tokens(t)) << "T=" << t;
    EXPECT_EQ(out.size(0), enc->tokens_for_frames(t)) << "T=" << t;
    EXPECT_EQ(out.size(1), 10);
  }
}

TEST(AudioEncoder, BatchEqualsOneAtATime) {
  torch::NoGradGuard ng;
  torch::manual_seed(1);
  AudioEncoder enc(small());
  const at::Tensor x = torch::randn({3, 8, 60});
  const at::Tensor batch = enc->forward(x);
  EXPECT_EQ(batch.sizes().vec(), (std::vector<int64_t>{3, 15, 10}));
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(at::allclose(batch[i], enc->forward(x[i]), 1e-4, 1e-5)) << i;
}

TEST(AudioEncoder, SinusoidsFollowWhisper) {
  const at::Tensor s = whisper_sinusoids(5, 8);
  EXPECT_EQ(s.sizes().vec(), (std::vector<int64_t>{5, 8}));
  // Channel 0 has timescale 1: sin(t); channel 4 is its cosine; channel 3 has timescale 10000.
  EXPECT_NEAR(s[3][0].item<float>(), std::sin(3.0), 1e-6);
  EXPECT_NEAR(s[3][4].item<float>(), std::cos(3.0), 1e-6);
  EXPECT_NEAR(s[3][3].item<float>(), std::sin(3.0 / 10000.0), 1e-6);
}

TEST(AudioEncoder, RejectsWrongShapes) {
  AudioEncoder enc(small());
  EXPECT_THROW(enc->forward(torch::randn({80, 10})), InputError);
  EXPECT_THROW(enc->forward(torch::randn({8, 0})), InputError);
  EXPECT_THROW(AudioEncoder(AudioEncoderOptions().width(15)), ConfigError);
}

TEST(AudioEncoder, RunsOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::NoGradGuard ng;
  AudioEncoder enc(small());
  const at::Tensor x = torch::randn({2, 8, 50});
  const at::Tensor ref = enc->forward(x);
  enc->to(torch::kCUDA);
  const at::Tensor y = enc->forward(x.to(torch::kCUDA));
  EXPECT_TRUE(y.is_cuda());
  EXPECT_TRUE(at::allclose(y.cpu(), ref, 1e-3, 1e-3));
  enc->to(torch::kCUDA, torch::kHalf);
  const at::Tensor h = enc->forward(x.to(torch::kCUDA, torch::kHalf));
  EXPECT_EQ(h.scalar_type(), torch::kHalf);
  EXPECT_LT((h.to(torch::kFloat).cpu() - ref).abs().max().item<double>(), 0.1);
}

std::map<std::string, ParamValue> node_params(std::map<std::string, ParamValue> extra = {}) {
  std::map<std::string, ParamValue> p = {{"n_mels", int64_t{8}},   {"width", int64_t{16}},
                                         {"depth", int64_t{1}},    {"heads", int64_t{2}},
                                         {"out_dim", int64_t{10}}, {"window_s", 1.0}};
  for (auto& [k, v] : extra) p[k] = v;
  return p;
}

TEST(AudioEncoderNode, WindowsCarryTimestampsAndCountsMatch) {
  for (int64_t batch : {1, 2, 8}) {
    SCOPED_TRACE(batch);
    AudioEncoderNode node;
    testing::FakeContext ctx(AudioEncoderNode::contract(), node_params({{"batch", batch}}), "aud");
    node.open(ctx);
    torch::manual_seed(5);
    const at::Tensor mel = torch::randn({8, 251});  // 2.51 s: windows of 100, 100, 51 frames
    ctx.feed("mel", make_packet<at::Tensor>(mel, Timestamp(3'000'000)));
    node.process(ctx);
    const auto& out = ctx.emitted("tokens");
    ASSERT_EQ(out.size(), 3u);
    int64_t total = 0;
    const int64_t starts[] = {3'000'000, 4'000'000, 5'000'000};
    const int64_t ends[] = {4'000'000, 5'000'000, 5'510'000};
    for (size_t i = 0; i < 3; ++i) {
      const TokenChunk& c = out[i].get<TokenChunk>();
      EXPECT_EQ(out[i].timestamp(), Timestamp(starts[i]));
      EXPECT_EQ(c.start_us, starts[i]);
      EXPECT_EQ(c.end_us, ends[i]);
      EXPECT_EQ(c.modality, Modality::kAudio);
      EXPECT_EQ(c.grid_w, c.num_tokens());
      // Each window is encoded on its own: same as the module on that slice.
      const at::Tensor want = node.model()->forward(
          mel.slice(1, 100 * int64_t(i), std::min<int64_t>(251, 100 * (i + 1))));
      EXPECT_TRUE(at::allclose(c.embeddings, want, 1e-4, 1e-5)) << i;
      total += c.num_tokens();
    }
    EXPECT_EQ(out[0].get<TokenChunk>().num_tokens(), 25);
    EXPECT_EQ(out[2].get<TokenChunk>().num_tokens(), 13);
    EXPECT_EQ(total, node.tokens_for_frames(251));
    EXPECT_EQ(ctx.counter("tokens"), total);
  }
}

// On CUDA, mel chunks reach the GPU through the node's DeviceStager (reused pinned buffers,
// side-stream copies): every window's tokens must equal the CPU node's (fp32, TF32 off).
TEST(AudioEncoderNode, CudaNodeThroughPinnedStagingMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const bool tf32 = at::globalContext().allowTF32CuDNN();
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  torch::manual_seed(11);
  std::vector<at::Tensor> mels;
  for (int64_t f : {251, 100, 37, 300, 99}) mels.push_back(torch::randn({8, f}));
  std::vector<std::vector<at::Tensor>> out(2);
  std::vector<int64_t> staged(2);
  for (int d = 0; d < 2; ++d) {
    AudioEncoderNode node;
    testing::FakeContext ctx(AudioEncoderNode::contract(),
                             node_params({{"device", std::string(d ? "cuda" : "cpu")}}), "aud");
    node.open(ctx);
    for (size_t i = 0; i < mels.size(); ++i) {
      ctx.feed("mel", make_packet<at::Tensor>(mels[i], Timestamp(4'000'000 * int64_t(i))));
      node.process(ctx);
    }
    node.close(ctx);
    for (const Packet& p : ctx.emitted("tokens")) out[d].push_back(p.get<TokenChunk>().embeddings);
    staged[d] = ctx.counter("staged_copies");
  }
  at::globalContext().setAllowTF32CuDNN(tf32);
  ASSERT_EQ(out[1].size(), out[0].size());
  for (size_t i = 0; i < out[0].size(); ++i) {
    EXPECT_TRUE(out[1][i].is_cuda()) << i;
    EXPECT_LE((out[1][i].cpu() - out[0][i]).abs().max().item<double>(), 1e-4) << i;
  }
  EXPECT_EQ(staged[1], int64_t(mels.size()));  // one staged copy per mel chunk
  EXPECT_EQ(staged[0], 0);
}

TEST(AudioEncoderNode, RunsInAGraphAndCountsMatch) {
  // Mel chunks of several lengths (as a LogMel node emits per audio chunk), 30 s windows.
  const std::vector<int64_t> frames = {100, 37, 3450, 1};
  std::vector<Packet> mels;
  int64_t t = 0;
  for (int64_t f : frames) {
    mels.push_back(make_packet<at::Tensor>(torch::randn({8, f}), Timestamp(t)));
    t += f * 10000;
  }
  auto p = node_params({{"window_s", 30.0}});
  GraphBuilder b("audio");
  b.add_instance("src", "VectorSource", testing::VectorSource::contract(),
                 [mels] { return std::make_unique<testing::VectorSource>(mels); });
  b.add<AudioEncoderNode>("enc", p);
  b.connect("src.out", "enc.mel").output("enc.tokens");
  auto g = b.build();
  std::vector<TokenChunk> got;
  g->observe("enc.tokens", [&](const Packet& pk) { got.push_back(pk.get<TokenChunk>()); });
  g->run();
  ASSERT_EQ(got.size(), 5u);  // 3450 frames -> a 30 s window and a 4.5 s one
  int64_t total = 0, want = 0;
  for (const auto& c : got) total += c.num_tokens();
  for (int64_t f : frames) want += audio_tokens_for_frames(f, 3000);
  EXPECT_EQ(total, want);
  EXPECT_EQ(got[2].num_tokens(), 750);
  EXPECT_EQ(got[3].start_us, got[2].start_us + 30'000'000);
  EXPECT_EQ(got[3].end_us, got[2].start_us + 34'500'000);
}

TEST(AudioEncoderNode, RejectsWrongMelAndBadParams) {
  AudioEncoderNode node;
  testing::FakeContext ctx(AudioEncoderNode::contract(), node_params(), "aud");
  node.open(ctx);
  ctx.feed("mel", make_packet<at::Tensor>(torch::randn({80, 100}), Timestamp(0)));
  EXPECT_THROW(node.process(ctx), InputError);
  AudioEncoderNode n2;
  testing::FakeContext bad(AudioEncoderNode::contract(), node_params({{"window_s", 0.001}}));
  EXPECT_THROW(n2.open(bad), ConfigError);
  testing::FakeContext half(AudioEncoderNode::contract(),
                            node_params({{"dtype", std::string("bf16")}}));
  EXPECT_THROW(n2.open(half), ConfigError);
}

}  // namespace
}  // namespace omni
