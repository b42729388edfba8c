// Qwen2.5-Omni media reading (models/qwen2_5_omni/media.h) on the e2e fixture's files: read_media
// (ask_clip's path) gives the processor outputs transformers + qwen-omni-utils gave (grids, token
// counts, pixel values, Whisper features; a video's sound rounded to 16-bit as librosa reads it
// through ffmpeg), and media_from_decoded (the graph's path: every decoded frame and the PCM)
// gives exactly the same tensors as read_media.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "modalities/common/safetensors.h"
#include "modalities/media/media_reader.h"
#include "models/qwen2_5_omni/media.h"

namespace {

using omni::qwen::MediaKind;
using omni::qwen::QwenMedia;

const std::string kDir = std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/hf/qwen2_5_omni_e2e";

nlohmann::json info_of(const std::string& name) {
  std::ifstream f(kDir + "/reference/" + name + ".json");
  return nlohmann::json::parse(f);
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// The graph's view of a file: MediaSource's frames (fps 0) and 16 kHz mono PCM.
QwenMedia via_decoded(const std::string& path, const omni::qwen::ProcessorConfig& pc,
                      const omni::qwen::MediaOptions& mo) {
  omni::MediaReaderOptions ro;
  ro.path = path;
  omni::MediaReader reader(ro);
  std::vector<omni::Frame> frames;
  std::vector<float> pcm;
  bool has_audio = false;
  omni::MediaReader::Item item;
  while (reader.next(item)) {
    if (item.kind == omni::MediaReader::Item::Kind::kVideo) frames.push_back(item.frame);
    if (item.kind == omni::MediaReader::Item::Kind::kAudio) {
      has_audio = true;
      pcm.insert(pcm.end(), item.audio.samples.begin(), item.audio.samples.end());
    }
  }
  std::vector<omni::qwen::DecodedFrame> views;
  for (const auto& f : frames)
    views.push_back(
        {{f.rgb.ptr<uint8_t>(0), f.rgb.cols, f.rgb.rows, static_cast<int64_t>(f.rgb.step[0])},
         f.pts_us});
  return omni::qwen::media_from_decoded(views, pcm, has_audio, pc, mo, path);
}

void expect_same(const QwenMedia& a, const QwenMedia& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.audio_in_video, b.audio_in_video);
  EXPECT_EQ(a.image.has_value(), b.image.has_value());
  EXPECT_EQ(a.video.has_value(), b.video.has_value());
  EXPECT_EQ(a.audio.has_value(), b.audio.has_value());
  if (a.image && b.image) {
    EXPECT_EQ(a.image->grid_thw, b.image->grid_thw);
    EXPECT_TRUE(at::equal(a.image->pixel_values, b.image->pixel_values));
  }
  if (a.video && b.video) {
    EXPECT_EQ(a.video->grid_thw, b.video->grid_thw);
    EXPECT_EQ(a.video->second_per_grid, b.video->second_per_grid);
    EXPECT_TRUE(at::equal(a.video->pixel_values, b.video->pixel_values));
  }
  if (a.audio && b.audio) {
    EXPECT_EQ(a.audio->valid_frames, b.audio->valid_frames);
    EXPECT_TRUE(at::equal(a.audio->input_features, b.audio->input_features));
  }
}

struct MediaCase {
  const char* name;
  const char* file;
  MediaKind kind;
};

class QwenMediaFiles : public ::testing::TestWithParam<MediaCase> {};

TEST_P(QwenMediaFiles, MatchTheProcessorAndTheGraphPath) {
  const MediaCase& mc = GetParam();
  const auto info = info_of(mc.name);
  const auto ref =
      omni::SafeTensorsFile::open(kDir + "/reference/" + mc.name + ".safetensors")->all();
  const auto pc = omni::qwen::ProcessorConfig::from_directory(kDir);
  const omni::qwen::MediaOptions mo;  // fps 2, audio-in-video when the video has sound
  const QwenMedia m = omni::qwen::read_media(kDir + "/" + mc.file, pc, mo);
  ASSERT_EQ(m.kind, mc.kind);
  EXPECT_EQ(m.image_tokens(), info["image_tokens"].get<int64_t>());
  EXPECT_EQ(m.video_tokens(), info["video_tokens"].get<int64_t>());
  EXPECT_EQ(m.audio_tokens(), info["audio_tokens"].get<int64_t>());
  EXPECT_EQ(m.audio_in_video, info["use_audio_in_video"].get<bool>());
  if (m.image) {
    EXPECT_LE(max_abs(m.image->pixel_values, ref.at("pixel_values")), 1e-5);
  }
  if (m.video && ref.count("pixel_values_videos")) {
    const int64_t step = info["pixel_rows_step"].get<int64_t>();
    const at::Tensor rows = m.video->pixel_values.slice(0, 0, m.video->pixel_values.size(0), step);
    EXPECT_LE(max_abs(rows, ref.at("pixel_values_videos")), 1e-5 / 0.26130258);
  }
  if (m.audio) {
    EXPECT_EQ(m.audio->valid_frames, info["audio_valid_frames"].get<int64_t>());
    const at::Tensor stored = ref.at("input_features");
    const double d = max_abs(m.audio->input_features.slice(1, 0, stored.size(1)), stored);
    std::printf("[ %s ] input_features max |diff| %.3g\n", mc.name, d);
    // With the 16-bit rounding a video's sound matches as closely as a WAV file does (without it
    // the video_audio case differs by 0.027).
    EXPECT_LE(d, 1e-4) << mc.name;
  }
  expect_same(m, via_decoded(kDir + "/" + mc.file, pc, mo));
}

INSTANTIATE_TEST_SUITE_P(Fixture, QwenMediaFiles,
                         ::testing::Values(MediaCase{"image", "image.png", MediaKind::kImage},
                                           MediaCase{"audio", "speech.wav", MediaKind::kAudio},
                                           MediaCase{"video_audio", "video_audio.mp4",
                                                     MediaKind::kVideo},
                                           MediaCase{"video", "video.mp4", MediaKind::kVideo}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(QwenMedia, AudioInVideoOffAndErrors) {
  const auto pc = omni::qwen::ProcessorConfig::from_directory(kDir);
  omni::qwen::MediaOptions off;
  off.audio_in_video = false;
  const QwenMedia m = omni::qwen::read_media(kDir + "/video_audio.mp4", pc, off);
  EXPECT_TRUE(m.video_has_audio);
  EXPECT_FALSE(m.audio_in_video);
  EXPECT_FALSE(m.audio.has_value());
  omni::qwen::MediaOptions on;
  on.audio_in_video = true;
  EXPECT_THROW(omni::qwen::read_media(kDir + "/video.mp4", pc, on), omni::InputError);
  EXPECT_THROW(omni::qwen::read_media(kDir + "/none.wav", pc, on), omni::InputError);
  EXPECT_THROW(omni::qwen::read_media(kDir + "/config.json", pc, on), omni::InputError);
  omni::qwen::MediaOptions bad_fps;
  bad_fps.fps = 0;
  EXPECT_THROW(omni::qwen::read_media(kDir + "/video.mp4", pc, bad_fps), omni::InputError);
}

TEST(QwenMedia, RoundToS16) {
  std::vector<float> x = {0.0f, 1.0f, -1.0f, 0.5f + 0.3f / 32768.0f, 2.0f, -2.0f};
  omni::qwen::round_to_s16(x);
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_EQ(x[1], 32767.0f / 32768.0f);
  EXPECT_EQ(x[2], -1.0f);
  EXPECT_EQ(x[3], 0.5f);
  EXPECT_EQ(x[4], 32767.0f / 32768.0f);
  EXPECT_EQ(x[5], -1.0f);
}

}  // namespace
