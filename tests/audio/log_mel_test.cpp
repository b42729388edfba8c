// LogMel parity with the PyTorch Whisper reference (fixtures from
// scripts/fixtures/make_logmel_fixture.py) and chunked-stream equivalence.
#include "modalities/audio/log_mel.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"

namespace omni {
namespace {

const std::string kDir = std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/audio/";

std::vector<float> read_f32(const std::string& name) {
  std::ifstream f(kDir + name, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error("missing fixture " + kDir + name);
  const auto bytes = static_cast<size_t>(f.tellg());
  std::vector<float> v(bytes / sizeof(float));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(bytes));
  return v;
}

nlohmann::json manifest() {
  std::ifstream f(kDir + "manifest.json");
  return nlohmann::json::parse(f);
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0.0f;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

std::vector<float> noise(int64_t n, unsigned seed, float scale = 0.1f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = d(rng);
  return x;
}

TEST(LogMelFilters, IdenticalToLibrosa) {
  // The fixture filterbanks were checked bit-for-bit against librosa.filters.mel.
  for (int n_mels : {80, 128}) {
    const auto ref = read_f32("mel_filters_" + std::to_string(n_mels) + ".f32");
    const auto ours = slaney_mel_filters(16000, 400, n_mels);
    ASSERT_EQ(ours.size(), ref.size());
    int differing = 0;
    for (size_t i = 0; i < ref.size(); ++i) differing += ours[i] != ref[i];
    EXPECT_EQ(differing, 0) << n_mels << " bins";
  }
}

TEST(LogMelParity, MatchesTorchReference) {
  const auto m = manifest();
  ASSERT_GE(m["cases"].size(), 8u);
  for (const auto& c : m["cases"]) {
    const auto audio = read_f32(c["audio"].get<std::string>());
    const auto expected = read_f32(c["mel"].get<std::string>());
    const int n_mels = c["n_mels"].get<int>();
    const int64_t frames = c["shape"][1].get<int64_t>();
    ASSERT_EQ(static_cast<int64_t>(audio.size()), c["samples"].get<int64_t>());
    LogMel mel(n_mels);
    std::vector<float> got;
    if (c["mode"] == "whole") {
      got = mel.compute(audio.data(), static_cast<int64_t>(audio.size()));
    } else {
      const auto full = mel.compute_padded(audio.data(), static_cast<int64_t>(audio.size()));
      ASSERT_EQ(full.size(), static_cast<size_t>(n_mels) * kWhisperChunkFrames);
      // The fixture keeps the first `frames` columns of the 3000.
      for (int r = 0; r < n_mels; ++r) {
        got.insert(got.end(), full.begin() + r * kWhisperChunkFrames,
                   full.begin() + r * kWhisperChunkFrames + frames);
      }
    }
    const float diff = max_abs_diff(got, expected);
    EXPECT_LE(diff, 1e-4f) << c.dump();
    std::printf("  %-8s %-8s %3d mels: max |diff| = %.3g\n", c["clip"].get<std::string>().c_str(),
                c["mode"].get<std::string>().c_str(), n_mels, diff);
  }
}

TEST(LogMel, CopiesAndThreadsComputeTheSame) {
  // Each LogMel owns its FFT plan and scratch (FFTW's planner is shared and locked): copies and
  // instances made and used on several threads at once give the same bits.
  const std::vector<float> x = noise(16000, 3);
  LogMel a(128);
  const std::vector<float> want = a.compute(x.data(), 16000);
  LogMel b = a;
  LogMel c(80);
  c = b;
  EXPECT_EQ(b.compute(x.data(), 16000), want);
  EXPECT_EQ(c.compute(x.data(), 16000), want);
  std::vector<std::vector<float>> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < 3; ++r) got[t] = LogMel(128).compute(x.data(), 16000);
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& g : got) EXPECT_EQ(g, want);
}

TEST(LogMel, FrameCountAndShortSignals) {
  LogMel mel(80);
  EXPECT_THROW(mel.compute(std::vector<float>(200, 0.1f).data(), 200), InputError);
  for (int64_t n : {201, 319, 320, 16000, 16159}) {
    const auto x = noise(n, 7);
    EXPECT_EQ(static_cast<int64_t>(mel.compute(x.data(), n).size()), 80 * (n / 160)) << n;
  }
  EXPECT_EQ(log_mel_frames(kWhisperChunkSamples), 3000);
}

TEST(LogMel, SilenceIsFlat) {
  LogMel mel(80);
  std::vector<float> x(4000, 0.0f);
  for (float v : mel.compute(x.data(), 4000)) EXPECT_FLOAT_EQ(v, -1.5f);  // (log10(1e-10)+4)/4
}

TEST(LogMel, PaddedTrimsAndPads) {
  LogMel mel(80);
  const auto x = noise(kWhisperChunkSamples + 5000, 3);
  const auto trimmed = mel.compute_padded(x.data(), static_cast<int64_t>(x.size()));
  const auto direct = mel.compute(x.data(), kWhisperChunkSamples);
  EXPECT_EQ(trimmed, direct);
  const auto shorter = mel.compute_padded(x.data(), 16000);
  std::vector<float> padded(kWhisperChunkSamples, 0.0f);
  std::copy(x.begin(), x.begin() + 16000, padded.begin());
  EXPECT_EQ(shorter, mel.compute(padded.data(), kWhisperChunkSamples));
}

TEST(LogMel, DynamicRangeFloor) {
  // A loud burst then near-silence: values never drop more than 8 (log10) below the maximum.
  auto x = noise(8000, 11, 1.0f);
  for (size_t i = 4000; i < x.size(); ++i) x[i] *= 1e-9f;
  LogMel mel(80);
  const auto v = mel.compute(x.data(), 8000);
  const float mx = *std::max_element(v.begin(), v.end());
  const float mn = *std::min_element(v.begin(), v.end());
  EXPECT_NEAR(mx - mn, 2.0f, 1e-5f);  // 8 in log10 units is 2 after (x+4)/4
}

// Feeding the signal in chunks of any size gives exactly the whole-signal frames.
TEST(LogMelStream, ChunkedEqualsWhole) {
  const int64_t n = 16000 * 2 + 123;
  const auto x = noise(n, 5);
  LogMel whole(80);
  const auto expected = whole.compute_raw(x.data(), n);
  const int64_t frames = log_mel_frames(n);
  for (int64_t chunk : std::vector<int64_t>{1, 7, 159, 160, 161, 200, 399, 400, 1000, 4096, n}) {
    LogMelStream s(80);
    std::vector<std::vector<float>> parts;
    std::vector<int64_t> part_frames;
    for (int64_t at = 0; at < n; at += chunk) {
      s.push(x.data() + at, std::min(chunk, n - at));
      // take a few at a time so take() bookkeeping is exercised
      const int64_t k = s.frames_ready() / 2 + (s.frames_ready() % 2);
      part_frames.push_back(k);
      parts.push_back(s.take(k));
    }
    ASSERT_TRUE(s.finish());
    part_frames.push_back(s.frames_ready());
    parts.push_back(s.take(s.frames_ready()));
    EXPECT_EQ(s.next_frame_index(), frames);
    // reassemble [80, frames] from the [80, k] parts
    std::vector<float> got(expected.size());
    int64_t col = 0;
    for (size_t p = 0; p < parts.size(); ++p) {
      const int64_t k = part_frames[p];
      for (int m = 0; m < 80; ++m)
        for (int64_t f = 0; f < k; ++f) got[m * frames + col + f] = parts[p][m * k + f];
      col += k;
    }
    ASSERT_EQ(col, frames) << "chunk " << chunk;
    EXPECT_EQ(got, expected) << "chunk " << chunk;
  }
}

TEST(LogMelStream, TooShortSignal) {
  LogMelStream s(80);
  std::vector<float> x(150, 0.5f);
  s.push(x.data(), 150);
  EXPECT_FALSE(s.finish());
  EXPECT_EQ(s.frames_ready(), 0);
  LogMelStream empty(80);
  EXPECT_TRUE(empty.finish());
  EXPECT_EQ(empty.frames_ready(), 0);
}

}  // namespace
}  // namespace omni
