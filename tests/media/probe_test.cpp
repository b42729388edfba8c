// probe_media against ffprobe's own report of the same samples.
#include "modalities/media/probe.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "tests/media/media_test_util.h"

namespace omni {
namespace {

using omni::testing::ffprobe_json;
using omni::testing::sample;

class ProbeSample : public ::testing::TestWithParam<const char*> {};

TEST_P(ProbeSample, AgreesWithFfprobe) {
  std::string path = sample(GetParam());
  nlohmann::json ours = probe_media(path);
  nlohmann::json ref = ffprobe_json(path);
  EXPECT_EQ(ours["path"], path);
  EXPECT_EQ(ours["format"], ref["format"]["format_name"]);
  EXPECT_NEAR(ours["duration_s"].get<double>(),
              std::stod(ref["format"]["duration"].get<std::string>()), 0.001);
  ASSERT_EQ(ours["streams"].size(), ref["streams"].size());
  for (size_t i = 0; i < ref["streams"].size(); ++i) {
    const auto& o = ours["streams"][i];
    const auto& r = ref["streams"][i];
    EXPECT_EQ(o["index"], r["index"]);
    EXPECT_EQ(o["type"], r["codec_type"]);
    EXPECT_EQ(o["codec"], r["codec_name"]);
    if (r["codec_type"] == "video") {
      EXPECT_EQ(o["width"], r["width"]);
      EXPECT_EQ(o["height"], r["height"]);
      EXPECT_FALSE(o.contains("sample_rate"));
      ASSERT_TRUE(o.contains("fps"));
      EXPECT_GT(o["fps"].get<double>(), 0);
    } else if (r["codec_type"] == "audio") {
      EXPECT_EQ(o["sample_rate"], std::stoi(r["sample_rate"].get<std::string>()));
      EXPECT_EQ(o["channels"], r["channels"]);
      EXPECT_FALSE(o.contains("width"));
    }
    if (r.contains("duration")) {
      EXPECT_NEAR(o["duration_s"].get<double>(), std::stod(r["duration"].get<std::string>()),
                  0.001);
    } else {
      EXPECT_FALSE(o.contains("duration_s"));
    }
  }
  std::string text = probe_to_text(ours);
  EXPECT_NE(text.find(ref["streams"][0]["codec_name"].get<std::string>()), std::string::npos)
      << text;
}

INSTANTIATE_TEST_SUITE_P(Samples, ProbeSample,
                         ::testing::Values("h264_aac.mp4", "vp9_opus.mkv", "vp8_vorbis.webm",
                                           "mjpeg_pcm.mov", "speech.wav", "speech.flac",
                                           "speech.mp3", "video_only_odd444.mp4", "vfr.mp4",
                                           "hevc10.mkv", "multi_audio.mkv", "start_offset.ts",
                                           "rotated90.mp4"));

TEST(Probe, FpsAndRotation) {
  nlohmann::json p = probe_media(sample("h264_aac.mp4"));
  EXPECT_DOUBLE_EQ(p["streams"][0]["fps"].get<double>(), 25.0);
  EXPECT_FALSE(p["streams"][0].contains("rotation"));
  nlohmann::json r = probe_media(sample("rotated90.mp4"));
  EXPECT_EQ(r["streams"][0]["rotation"], 90);  // as ffprobe prints it
  EXPECT_NE(probe_to_text(r).find("rotation 90"), std::string::npos);
}

TEST(Probe, DamagedAndCraftedFilesAreInputErrors) {
  for (const char* name :
       {"zero.mp4", "random.mp4", "text.mp4", "playlist.m3u8", "concat.ffconcat"}) {
    try {
      probe_media(sample(name));
      ADD_FAILURE() << name << ": expected InputError";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
  // Widened on request.
  EXPECT_EQ(probe_media(sample("playlist.m3u8"), {"file,pipe", true})["format"], "hls");
}

TEST(Probe, TextOfPartialStreamFacts) {
  // A damaged header gives a width without a height (fuzz/regressions/media/webm-width-*): the
  // text form prints what is known instead of failing.
  nlohmann::json p = {{"path", "x.webm"},
                      {"format", "matroska,webm"},
                      {"streams", {{{"index", 0}, {"type", "video"}, {"width", 8}}}}};
  EXPECT_NE(probe_to_text(p).find("#0 video ? 8x0"), std::string::npos) << probe_to_text(p);
  EXPECT_NE(probe_to_text({{"path", "y"}}).find("0 stream(s)"), std::string::npos);
}

}  // namespace
}  // namespace omni
