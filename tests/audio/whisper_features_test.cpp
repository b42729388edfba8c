// WhisperFeatureExtractor as Qwen2.5-Omni's processor calls it, against transformers (fixtures
// from scripts/fixtures/make_qwen_processor_fixture.py): frame counts, feature_attention_mask and
// audio token counts for ~220 lengths from 0.1 s to over 60 s, log-mel values <= 1e-4.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "modalities/audio/log_mel.h"
#include "modalities/audio/whisper_features.h"

namespace omni {
namespace {

const std::string kFix = std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/";

nlohmann::json manifest() {
  std::ifstream f(kFix + "qwen_processor/manifest.json");
  if (!f) throw std::runtime_error("missing qwen_processor/manifest.json");
  return nlohmann::json::parse(f);
}

std::vector<float> load_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open " + path);
  const auto bytes = static_cast<size_t>(in.tellg());
  std::vector<float> v(bytes / 4);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  return v;
}

// The generator's tiled(): base repeated, repetition k scaled by {1, 0.5, 0.25, 2}[k % 4].
std::vector<float> tiled(const std::vector<float>& base, int64_t n) {
  const float scales[4] = {1.0f, 0.5f, 0.25f, 2.0f};
  std::vector<float> x(n);
  const int64_t len = static_cast<int64_t>(base.size());
  for (int64_t i = 0; i < n; ++i) x[i] = base[i % len] * scales[(i / len) % 4];
  return x;
}

TEST(WhisperFeatures, CountsMatchTransformersForManyLengths) {
  const nlohmann::json man = manifest();
  const WhisperFeatureOptions o;  // Qwen2.5-Omni: 128 mels, 30 s, max_length padding
  int n_cases = 0, differs_from_floor = 0;
  for (const auto& c : man["audio_counts"]) {
    const int64_t n = c["samples"].get<int64_t>();
    SCOPED_TRACE("samples " + std::to_string(n));
    EXPECT_EQ(whisper_feature_frames(n, o), c["frames"].get<int64_t>());
    EXPECT_EQ(whisper_feature_frames(n, o), c["mask_len"].get<int64_t>());
    const int64_t valid = whisper_valid_frames(n, o);
    EXPECT_EQ(valid, c["valid_frames"].get<int64_t>());
    EXPECT_EQ(qwen_audio_tokens(valid), c["audio_tokens"].get<int64_t>());
    if (n <= kWhisperChunkSamples && valid != log_mel_frames(n)) ++differs_from_floor;
    ++n_cases;
  }
  EXPECT_GE(n_cases, 200);
  // The lengths where floor(n/160) (LogMel's count) would have been wrong were exercised.
  EXPECT_GE(differs_from_floor, 100);
}

TEST(WhisperFeatures, LogMelMatchesTransformers) {
  const nlohmann::json man = manifest();
  const WhisperFeatureOptions o;
  for (const auto& c : man["audio_mel"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const auto base = load_f32(kFix + "audio/" + c["base"].get<std::string>());
    const int64_t n = c["samples"].get<int64_t>();
    const std::vector<float> x = tiled(base, n);
    const WhisperFeatures f = whisper_features(x.data(), n, o);
    const int64_t frames = c["frames"].get<int64_t>(), mels = c["n_mels"].get<int64_t>();
    ASSERT_EQ(f.input_features.size(0), mels);
    ASSERT_EQ(f.input_features.size(1), frames);
    EXPECT_EQ(f.frames, frames);
    EXPECT_EQ(f.valid_frames, c["valid_frames"].get<int64_t>());
    EXPECT_EQ(f.feature_attention_mask.sum().item<int64_t>(), f.valid_frames);
    EXPECT_EQ(f.feature_attention_mask[f.valid_frames - 1].item<int64_t>(), 1);
    if (f.valid_frames < frames) {
      EXPECT_EQ(f.feature_attention_mask[f.valid_frames].item<int64_t>(), 0);
    }
    EXPECT_EQ(qwen_audio_tokens(f.valid_frames), c["audio_tokens"].get<int64_t>());
    const int64_t step = c.value("column_step", 1);
    const int64_t stored = c["stored_frames"].get<int64_t>();
    const auto ref = load_f32(kFix + "qwen_processor/" + c["mel"].get<std::string>());
    ASSERT_EQ(static_cast<int64_t>(ref.size()), mels * stored);
    const float* p = f.input_features.data_ptr<float>();
    double worst = 0;
    for (int64_t m = 0; m < mels; ++m) {
      for (int64_t j = 0; j < stored; ++j) {
        worst = std::max(
            worst, static_cast<double>(std::fabs(p[m * frames + j * step] - ref[m * stored + j])));
      }
    }
    EXPECT_LE(worst, 1e-4);
    std::printf("[ %s ] max |log-mel diff| vs transformers: %.2e\n",
                c["name"].get<std::string>().c_str(), worst);
    if (c.contains("tail_value")) {  // the rest of the padded window is one constant
      const float tail = c["tail_value"].get<float>();
      double tworst = 0;
      for (int64_t m = 0; m < mels; ++m)
        for (int64_t j = stored; j < frames; ++j)
          tworst = std::max(tworst, static_cast<double>(std::fabs(p[m * frames + j] - tail)));
      EXPECT_LE(tworst, 1e-4);
    }
  }
}

TEST(WhisperFeatures, PaddingModesAndTokenCounts) {
  WhisperFeatureOptions o;
  // Python floor division: tiny inputs give 0 tokens, never negative.
  EXPECT_EQ(qwen_audio_tokens(0), 0);
  EXPECT_EQ(qwen_audio_tokens(1), 0);
  EXPECT_EQ(qwen_audio_tokens(2), 0);
  EXPECT_EQ(qwen_audio_tokens(3), 1);
  EXPECT_EQ(qwen_audio_tokens(100), 25);
  EXPECT_EQ(qwen_audio_tokens(3000), 750);
  // Without truncation a long signal keeps all its frames (n / 160, all valid).
  o.truncation = false;
  EXPECT_EQ(whisper_feature_frames(700013, o), 4375);
  EXPECT_EQ(whisper_valid_frames(700013, o), 4375);
  // No padding: the signal's own frames.
  o.truncation = true;
  o.padding = WhisperPadding::kDoNotPad;
  EXPECT_EQ(whisper_feature_frames(16001, o), 100);
  EXPECT_EQ(whisper_valid_frames(16001, o), 100);
  std::vector<float> x(16001, 0.01f);
  const WhisperFeatures f = whisper_features(x.data(), 16001, o);
  EXPECT_EQ(f.input_features.size(1), 100);
}

TEST(WhisperFeatures, BadInputAndConfig) {
  const WhisperFeatureOptions o;
  std::vector<float> x(10, 0.0f);
  EXPECT_THROW(whisper_features(nullptr, 10, o), InputError);
  EXPECT_THROW(whisper_features(x.data(), 0, o), InputError);
  // Ten samples are fine when padded to 30 s (transformers accepts them too): 1 valid frame.
  const WhisperFeatures f = whisper_features(x.data(), 10, o);
  EXPECT_EQ(f.valid_frames, 1);
  WhisperFeatureOptions nopad = o;
  nopad.padding = WhisperPadding::kDoNotPad;
  EXPECT_THROW(whisper_features(x.data(), 10, nopad), InputError);  // too short for the STFT
  EXPECT_THROW(WhisperFeatureOptions::from_config(nlohmann::json{{"dither", 0.5}}), ConfigError);
  EXPECT_THROW(WhisperFeatureOptions::from_config(nlohmann::json{{"sampling_rate", 8000}}),
               ConfigError);
  EXPECT_THROW(WhisperFeatureOptions::from_config(nlohmann::json{{"feature_size", "128"}}),
               ConfigError);
  // A window is allocated whole: a file's chunk_length is held to kWhisperMaxChunkSeconds (2^31-1
  // seconds ended in std::bad_alloc), and 2^32 + 300 is not read as 300.
  EXPECT_THROW(WhisperFeatureOptions::from_config(nlohmann::json{{"chunk_length", 2147483647}}),
               ConfigError);
  EXPECT_THROW(WhisperFeatureOptions::from_config(
                   nlohmann::json{{"chunk_length", (int64_t{1} << 32) + 300}}),
               ConfigError);
  EXPECT_EQ(WhisperFeatureOptions::from_config(nlohmann::json{{"chunk_length", 3600}}).chunk_length,
            3600);
  const WhisperFeatureOptions c = WhisperFeatureOptions::from_config(nlohmann::json::parse(
      R"({"feature_size": 128, "chunk_length": 300, "n_samples": 4800000, "hop_length": 160,
          "n_fft": 400, "sampling_rate": 16000, "padding_value": 0.0, "dither": 0.0})"));
  EXPECT_EQ(c.feature_size, 128);
  EXPECT_EQ(c.target_length(), 4800000);
  EXPECT_EQ(whisper_feature_frames(16000, c), 30000);
}

}  // namespace
}  // namespace omni
