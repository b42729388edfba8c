// The Qwen2.5-Omni audio tower against transformers' Qwen2_5OmniAudioEncoder run on the committed
// tiny checkpoint (references from scripts/fixtures/make_qwen_audio_refs.py): lengths below one
// window, exactly one window, odd lengths where floor and ceil pooling differ, several windows
// with a short last one, and speech features from WhisperFeatureExtractor and from ours.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "modalities/audio/audio_encoder.h"
#include "modalities/audio/whisper_features.h"
#include "modalities/common/checkpoint.h"
#include "modalities/common/safetensors.h"
#include "models/qwen2_5_omni/audio_tower.h"

namespace omni::qwen {
namespace {

const std::string kHf = std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/hf/";

std::shared_ptr<Checkpoint> checkpoint() { return Checkpoint::open(kHf + "qwen2_5_omni_tiny"); }

AudioTower load_tower(at::ScalarType dtype = at::kFloat) {
  auto ckpt = checkpoint();
  AudioTower tower(AudioTowerOptions::from_config(*ckpt->tower_config("audio")));
  tower->to(dtype);
  ckpt->load_into(*tower, {"audio."});
  tower->eval();
  return tower;
}

std::shared_ptr<SafeTensorsFile> refs() {
  return SafeTensorsFile::open(kHf + "qwen2_5_omni_audio_refs.safetensors");
}

std::vector<int64_t> ref_frames(const SafeTensorsFile& f) {
  std::vector<int64_t> frames;
  std::stringstream ss(f.metadata().at("frames"));
  for (std::string item; std::getline(ss, item, ',');) frames.push_back(std::stoll(item));
  return frames;
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  if (a.numel() == 0) return 0.0;
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

TEST(QwenAudioTower, OptionsFromTheCheckpointConfig) {
  auto ckpt = checkpoint();
  const AudioTowerOptions o = AudioTowerOptions::from_config(*ckpt->tower_config("audio"));
  EXPECT_EQ(o.num_mel_bins(), 128);
  EXPECT_EQ(o.d_model(), 16);
  EXPECT_EQ(o.encoder_layers(), 2);
  EXPECT_EQ(o.encoder_attention_heads(), 2);
  EXPECT_EQ(o.encoder_ffn_dim(), 32);
  EXPECT_EQ(o.n_window(), 100);
  EXPECT_EQ(o.output_dim(), 32);
  EXPECT_EQ(o.max_source_positions(), 1500);
  // Defaults are transformers' (Qwen2.5-Omni-7B).
  const AudioTowerOptions d = AudioTowerOptions::from_config(nlohmann::json::object());
  EXPECT_EQ(d.d_model(), 1280);
  EXPECT_EQ(d.output_dim(), 3584);
  EXPECT_THROW(AudioTowerOptions::from_config({{"activation_function", "relu"}}), ConfigError);
  EXPECT_THROW(AudioTowerOptions::from_config({{"d_model", 15}}), ConfigError);
  EXPECT_THROW(AudioTowerOptions::from_config({{"d_model", 16}, {"encoder_attention_heads", 3}}),
               ConfigError);
  EXPECT_THROW(AudioTowerOptions::from_config({{"n_window", 0}}), ConfigError);
  EXPECT_THROW(AudioTowerOptions::from_config({{"n_window", "100"}}), ConfigError);
  EXPECT_THROW(AudioTowerOptions::from_config(nlohmann::json::array()), ConfigError);
}

TEST(QwenAudioTower, LoadsEveryTensorOfTheCheckpointTower) {
  auto ckpt = checkpoint();
  AudioTower tower(AudioTowerOptions::from_config(*ckpt->tower_config("audio")));
  // No missing and no unexpected tensors (load_into throws on either).
  const LoadReport r = ckpt->load_into(*tower, {"audio."});
  EXPECT_EQ(r.tensors, static_cast<int64_t>(tower->named_parameters().size()));
  EXPECT_EQ(r.tensors, 39);
  EXPECT_FALSE(tower->layers[0]->as<AudioEncoderLayerImpl>()->self_attn->k_proj->bias.defined());
  for (const auto& p : tower->named_parameters())
    EXPECT_TRUE(p.value().equal(ckpt->get("audio." + p.key()))) << p.key();
}

TEST(QwenAudioTower, MatchesTransformersFp32) {
  AudioTower tower = load_tower();
  auto f = refs();
  const std::vector<int64_t> frames = ref_frames(*f);
  ASSERT_GE(frames.size(), 8u);
  double worst = 0;
  torch::NoGradGuard no_grad;
  for (int64_t n : frames) {
    SCOPED_TRACE("frames " + std::to_string(n));
    const at::Tensor in = f->get("in_" + std::to_string(n)).to(at::kFloat);
    const at::Tensor ref = f->get("out_" + std::to_string(n));
    ASSERT_EQ(in.sizes().vec(), (std::vector<int64_t>{128, n}));
    const at::Tensor out = tower->forward(in);
    ASSERT_EQ(out.sizes().vec(), (std::vector<int64_t>{audio_token_count(n), 32}));
    ASSERT_EQ(out.sizes(), ref.sizes());
    EXPECT_EQ(out.scalar_type(), at::kFloat);
    const double err = max_abs(out, ref);
    EXPECT_LE(err, 1e-5);
    worst = std::max(worst, err);
  }
  std::printf("fp32 max abs error vs transformers over %zu lengths: %.3g\n", frames.size(), worst);
}

TEST(QwenAudioTower, Bf16StaysCloseToTheFp32Reference) {
  AudioTower tower = load_tower(at::kBFloat16);
  auto f = refs();
  double worst = 0, worst_rel = 0;
  torch::NoGradGuard no_grad;
  for (int64_t n : ref_frames(*f)) {
    SCOPED_TRACE("frames " + std::to_string(n));
    const at::Tensor ref = f->get("out_" + std::to_string(n));
    const at::Tensor out = tower->forward(f->get("in_" + std::to_string(n)));  // float16 input
    EXPECT_EQ(out.scalar_type(), at::kBFloat16);
    ASSERT_EQ(out.sizes(), ref.sizes());
    if (ref.numel() == 0) continue;
    const double err = max_abs(out, ref), scale = ref.abs().max().item<double>();
    // bf16 keeps 8 bits of mantissa: a few per cent of the output range after 2 layers.
    EXPECT_LE(err, 0.05 * scale);
    worst = std::max(worst, err);
    worst_rel = std::max(worst_rel, err / scale);
  }
  std::printf("bf16 vs fp32 reference: max abs error %.3g (%.3g of the largest |value|)\n", worst,
              worst_rel);
}

TEST(QwenAudioTower, TokenCountsAreTransformers) {
  auto f = refs();
  const at::Tensor counts = f->get("token_counts");
  ASSERT_EQ(counts.numel(), 3001);
  const auto* c = counts.data_ptr<int64_t>();
  for (int64_t n = 0; n < counts.numel(); ++n) {
    ASSERT_EQ(audio_token_count(n), c[n]) << n;
    ASSERT_EQ(audio_token_count(n), omni::qwen_audio_tokens(n)) << n;
  }
  EXPECT_EQ(audio_token_count(3000), 750);  // 30 s of audio
  EXPECT_THROW(audio_token_count(-1), InputError);
}

TEST(QwenAudioTower, PositionsAreTransformersFloat32Table) {
  const at::Tensor ref = refs()->get("positions");  // [200, 16]
  const at::Tensor f32 = omni::whisper_sinusoids(1500, 16, at::kFloat).narrow(0, 0, ref.size(0));
  const at::Tensor f64 = omni::whisper_sinusoids(ref.size(0), 16);
  const double err32 = max_abs(f32, ref), err64 = max_abs(f64, ref);
  EXPECT_LE(err32, 1e-6);
  // The double-precision table (the demo encoder's) is measurably another table.
  EXPECT_GT(err64, 1e-6);
  std::printf("positions: float32 table differs by %.3g, float64 table by %.3g\n", err32, err64);
}

TEST(QwenAudioTower, SpeechFromWhisperFeatures) {
  AudioTower tower = load_tower();
  auto s = SafeTensorsFile::open(kHf + "qwen2_5_omni_audio_speech_refs.safetensors");
  const at::Tensor hf_features = s->get("features"), ref = s->get("out");
  const int64_t valid = std::stoll(s->metadata().at("valid_frames"));
  torch::NoGradGuard no_grad;
  // transformers' own features: the tower alone.
  const double err_tower = max_abs(tower->forward(hf_features), ref);
  EXPECT_LE(err_tower, 1e-5);

  // Our WhisperFeatureExtractor on the same samples, valid frames only (what the thinker sees).
  std::ifstream in(std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/audio/speech_16k.f32",
                   std::ios::binary | std::ios::ate);
  ASSERT_TRUE(in);
  std::vector<float> pcm(static_cast<size_t>(in.tellg()) / 4);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(pcm.data()), static_cast<std::streamsize>(pcm.size() * 4));
  ASSERT_EQ(std::to_string(pcm.size()), s->metadata().at("samples"));
  const WhisperFeatures wf =
      whisper_features(pcm.data(), static_cast<int64_t>(pcm.size()), WhisperFeatureOptions{});
  ASSERT_EQ(wf.valid_frames, valid);
  const at::Tensor ours = wf.input_features.narrow(1, 0, valid);
  const double err_features = max_abs(ours, hf_features);
  const at::Tensor out = tower->forward(ours);
  ASSERT_EQ(out.sizes(), ref.sizes());
  const double err_e2e = max_abs(out, ref);
  EXPECT_LE(err_e2e, 1e-4);
  std::printf(
      "speech (%lld frames -> %lld tokens): tower on transformers' features %.3g; our features "
      "differ by %.3g, tower output on them by %.3g\n",
      static_cast<long long>(valid), static_cast<long long>(ref.size(0)), err_tower, err_features,
      err_e2e);
}

TEST(QwenAudioTower, WindowsAreIndependent) {
  // Frames in whole windows before a cut give the same tokens whatever follows the cut.
  AudioTower tower = load_tower();
  auto f = refs();
  torch::NoGradGuard no_grad;
  const at::Tensor in = f->get("in_450").to(at::kFloat);
  const at::Tensor whole = tower->forward(in), first = tower->forward(in.narrow(1, 0, 400));
  ASSERT_EQ(first.size(0), 100);
  EXPECT_LE(max_abs(whole.narrow(0, 0, 100), first), 1e-6);
  // ... but a window's tokens do depend on frames inside the same window.
  const at::Tensor partial = tower->forward(in.narrow(1, 0, 300));
  EXPECT_GT(max_abs(whole.narrow(0, 50, 25), partial.narrow(0, 50, 25)), 1e-4);
}

TEST(QwenAudioTower, RejectsBadInput) {
  AudioTower tower = load_tower();
  torch::NoGradGuard no_grad;
  EXPECT_THROW(tower->forward(torch::zeros({80, 50})), InputError);      // wrong mel-bin count
  EXPECT_THROW(tower->forward(torch::zeros({128, 0})), InputError);      // zero frames
  EXPECT_THROW(tower->forward(torch::zeros({1, 128, 50})), InputError);  // batched
  EXPECT_THROW(tower->forward(torch::zeros({128})), InputError);
  EXPECT_THROW(tower->forward(torch::zeros({128, 50}, at::kLong)), InputError);
  EXPECT_THROW(tower->forward(at::Tensor()), InputError);
  // One and two frames are valid and give no tokens (as transformers).
  EXPECT_EQ(tower->forward(torch::zeros({128, 2})).sizes().vec(), (std::vector<int64_t>{0, 32}));
}

}  // namespace
}  // namespace omni::qwen
