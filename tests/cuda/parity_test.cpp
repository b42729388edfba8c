// CPU versus GPU parity of the fusion transformer and the encoders (issue 8), and streaming ==
// full forward on the GPU. fp32 on the GPU must match the CPU within 1e-4 (max abs, TF32 off);
// bf16 is compared with the CPU fp32 result by relative RMS error and cosine (kBf16* below).
// Every measured difference is recorded as a test property (gtest JSON), which
// scripts/gpu-check copies into its summary. All tests skip without a CUDA device.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "modalities/common/torch_compat.h"

#ifdef OMNI_TEST_HAVE_FUSION
#include "fusion/transformer.h"
#endif
#ifdef OMNI_TEST_HAVE_IMAGE
#include "modalities/image/vit.h"
#endif
#ifdef OMNI_TEST_HAVE_AUDIO
#include "modalities/audio/audio_encoder.h"
#endif

namespace omni {
namespace {

constexpr double kFp32MaxAbs = 1e-4;
// bf16 keeps 8 significant bits (relative rounding 2^-9 per value); through a few blocks of
// matmuls with fp32 accumulation the output's relative RMS error is expected around 1e-2.
constexpr double kBf16RelRms = 5e-2;
constexpr double kBf16MinCosine = 0.995;

struct Diff {
  double max_abs = 0, rel_rms = 0, cosine = 0;
};

Diff compare(const at::Tensor& got, const at::Tensor& ref) {
  const at::Tensor g = got.detach().to(at::kCPU, at::kDouble);
  const at::Tensor r = ref.detach().to(at::kCPU, at::kDouble);
  EXPECT_EQ(g.sizes(), r.sizes());
  Diff d;
  d.max_abs = (g - r).abs().max().item<double>();
  d.rel_rms = ((g - r).norm() / r.norm().clamp_min(1e-30)).item<double>();
  d.cosine = ((g * r).sum() / (g.norm() * r.norm()).clamp_min(1e-30)).item<double>();
  return d;
}

void record(const std::string& what, const Diff& d) {
  ::testing::Test::RecordProperty(what + "_max_abs", std::to_string(d.max_abs));
  ::testing::Test::RecordProperty(what + "_rel_rms", std::to_string(d.rel_rms));
  ::testing::Test::RecordProperty(what + "_cosine", std::to_string(d.cosine));
  std::printf("  %-28s max_abs %.3g  rel_rms %.3g  cosine %.6f\n", what.c_str(), d.max_abs,
              d.rel_rms, d.cosine);
}

void expect_fp32(const std::string& what, const at::Tensor& got, const at::Tensor& ref) {
  const Diff d = compare(got, ref);
  record(what, d);
  EXPECT_LE(d.max_abs, kFp32MaxAbs) << what;
}

void expect_bf16(const std::string& what, const at::Tensor& got, const at::Tensor& ref) {
  const Diff d = compare(got, ref);
  record(what, d);
  EXPECT_LE(d.rel_rms, kBf16RelRms) << what;
  EXPECT_GE(d.cosine, kBf16MinCosine) << what;
}

class GpuParity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device available";
    // fp32 parity means real fp32: cuDNN convolutions default to TF32 on Ampere and later.
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setAllowTF32CuBLAS(false);
    gpu_ = at::Device(at::kCUDA, 0);
  }
  at::Device gpu_{at::kCPU};
};

#ifdef OMNI_TEST_HAVE_FUSION
FusionTransformer make_fusion() {
  at::manual_seed(1234);
  FusionTransformer m(
      FusionTransformerOptions().vocab(272).dim(256).layers(4).heads(8).kv_heads(2));
  m->eval();
  return m;
}

// Positions [3, B, L]: a text run, a 4x8 visual grid sharing one t, then text again.
at::Tensor mixed_positions(int64_t batch, int64_t len) {
  at::Tensor p = at::zeros({3, batch, len}, at::kLong);
  int64_t next = 0;
  for (int64_t i = 0; i < len; ++i) {
    const bool visual = i >= 8 && i < 40;
    const int64_t j = i - 8;
    const int64_t t = visual ? 8 : next, h = visual ? 8 + j / 8 : next,
                  w = visual ? 8 + j % 8 : next;
    next = visual ? 16 : next + 1;
    for (int64_t b = 0; b < batch; ++b) {
      p[0][b][i] = t;
      p[1][b][i] = h;
      p[2][b][i] = w;
    }
  }
  return p;
}

TEST_F(GpuParity, FusionTransformerCpuVsGpu) {
  c10::InferenceMode guard;
  FusionTransformer m = make_fusion();
  const int64_t batch = 2, len = 96;
  const at::Tensor x = at::randn({batch, len, 256});
  const at::Tensor pos = mixed_positions(batch, len);
  const at::Tensor ref = m->forward(x, pos);
  const at::Tensor ref_logits = m->lm_logits(ref);

  m->to(gpu_);
  const at::Tensor h32 = m->forward(x.to(gpu_), pos.to(gpu_));
  expect_fp32("fusion_fp32_hidden", h32, ref);
  expect_fp32("fusion_fp32_logits", m->lm_logits(h32), ref_logits);

  m->to(gpu_, at::kBFloat16);
  const at::Tensor h16 = m->forward(x.to(gpu_, at::kBFloat16), pos.to(gpu_));
  EXPECT_EQ(h16.scalar_type(), at::kBFloat16);
  expect_bf16("fusion_bf16_hidden", h16, ref);
  expect_bf16("fusion_bf16_logits", m->lm_logits(h16), ref_logits);

  m->to(gpu_, at::kHalf);
  const at::Tensor h_half = m->forward(x.to(gpu_, at::kHalf), pos.to(gpu_));
  expect_bf16("fusion_fp16_hidden", h_half, ref);
}

TEST_F(GpuParity, FusionTextEmbeddingCpuVsGpu) {
  c10::InferenceMode guard;
  FusionTransformer m = make_fusion();
  const at::Tensor ids = at::randint(0, 272, {2, 17}, at::kLong);
  const at::Tensor ref = m->embed_ids(ids);
  m->to(gpu_);
  const at::Tensor got = m->embed_ids(ids.to(gpu_));
  EXPECT_TRUE(at::equal(got.cpu(), ref));
}

// Feeding the sequence in appended pieces through the KV cache gives the full forward's result,
// on the GPU, in fp32 and bf16.
TEST_F(GpuParity, FusionStreamingEqualsFullOnGpu) {
  c10::InferenceMode guard;
  FusionTransformer m = make_fusion();
  const int64_t batch = 2, len = 96;
  const at::Tensor x = at::randn({batch, len, 256});
  const at::Tensor pos = mixed_positions(batch, len);
  const std::vector<int64_t> pieces = {16, 1, 23, 24, 32};
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    m->to(gpu_, dtype);
    const at::Tensor xd = x.to(gpu_, dtype), pd = pos.to(gpu_);
    const at::Tensor full = m->forward(xd, pd);
    KVCache cache;
    std::vector<at::Tensor> outs;
    int64_t s = 0;
    for (int64_t n : pieces) {
      outs.push_back(m->forward(xd.narrow(1, s, n), pd.narrow(2, s, n), &cache));
      s += n;
    }
    ASSERT_EQ(s, len);
    EXPECT_EQ(cache.length(), len);
    const at::Tensor streamed = at::cat(outs, 1);
    if (dtype == at::kFloat) {
      expect_fp32("fusion_stream_vs_full_fp32", streamed, full);
    } else {
      expect_bf16("fusion_stream_vs_full_bf16", streamed, full);
    }
  }
}
#endif  // OMNI_TEST_HAVE_FUSION

#ifdef OMNI_TEST_HAVE_IMAGE
TEST_F(GpuParity, ImageEncoderCpuVsGpu) {
  c10::InferenceMode guard;
  at::manual_seed(99);
  ViT vit(
      ViTOptions().image_size(64).patch_size(16).width(96).depth(2).heads(3).merge(true).out_dim(
          256));
  vit->eval();
  const at::Tensor images = at::randn({3, 3, 64, 96});  // not square: interpolated positions
  const at::Tensor ref = vit->forward(images);
  ASSERT_EQ(ref.size(1), vit->image_tokens(64, 96));
  vit->to(gpu_);
  expect_fp32("image_fp32", vit->forward(images.to(gpu_)), ref);
  vit->to(gpu_, at::kBFloat16);
  expect_bf16("image_bf16", vit->forward(images.to(gpu_, at::kBFloat16)), ref);
}
#endif

#ifdef OMNI_TEST_HAVE_AUDIO
TEST_F(GpuParity, AudioEncoderCpuVsGpu) {
  c10::InferenceMode guard;
  at::manual_seed(7);
  AudioEncoder enc(AudioEncoderOptions().n_mels(80).width(96).depth(2).heads(3).out_dim(256));
  enc->eval();
  const at::Tensor mel = at::randn({2, 80, 300});  // 3 s of log-mel frames
  const at::Tensor ref = enc->forward(mel);
  ASSERT_EQ(ref.size(1), enc->tokens_for_frames(300));
  enc->to(gpu_);
  expect_fp32("audio_fp32", enc->forward(mel.to(gpu_)), ref);
  enc->to(gpu_, at::kBFloat16);
  expect_bf16("audio_bf16", enc->forward(mel.to(gpu_, at::kBFloat16)), ref);
}
#endif

// Keeps the executable meaningful when only some modules are built: reports which are covered.
TEST(GpuParityCoverage, ListsTheModulesCompiledIn) {
  std::string covered;
#ifdef OMNI_TEST_HAVE_FUSION
  covered += "fusion ";
#endif
#ifdef OMNI_TEST_HAVE_IMAGE
  covered += "image ";
#endif
#ifdef OMNI_TEST_HAVE_AUDIO
  covered += "audio ";
#endif
  ::testing::Test::RecordProperty("modules", covered);
  EXPECT_FALSE(covered.empty()) << "cuda_parity_test built without any model module";
}

}  // namespace
}  // namespace omni
