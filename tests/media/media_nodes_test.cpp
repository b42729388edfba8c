// MediaSource / ImageSource driven through the Node interface with a recording Context, plus
// registration and the JSON encoders.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_codec.h"
#include "core/registry.h"
#include "modalities/media/nodes.h"
#include "modalities/media/sources.h"
#include "tests/media/media_test_util.h"

namespace omni {
namespace {

using omni::testing::sample;

// Records what a node emits; params are the contract's defaults plus overrides.
class RecordingContext : public Context {
 public:
  RecordingContext(const Contract& c, std::map<std::string, ParamValue> overrides) : contract_(c) {
    std::map<std::string, ParamValue> v;
    for (const ParamSpec& p : c.params()) v[p.name] = p.default_value;
    for (auto& [k, val] : overrides) v[k] = val;
    params_ = Params(std::move(v));
    emitted_.resize(c.outputs().size());
    closed_.resize(c.outputs().size(), false);
  }
  const std::string& node_name() const override { return name_; }
  const Params& params() const override { return params_; }
  Timestamp timestamp() const override { return Timestamp::unset(); }
  const Packet& input(int) const override { return empty_; }
  bool input_done(int) const override { return true; }
  void emit(int port, Packet p) override {
    auto& out = emitted_.at(port);
    if (closed_.at(port)) throw Error("emit on a closed output");
    if (!out.empty() && !(p.timestamp() > out.back().timestamp()))
      throw Error("non-increasing timestamp " + p.timestamp().to_string());
    out.push_back(std::move(p));
  }
  void set_bound(int, Timestamp) override {}
  void close_output(int port) override { closed_.at(port) = true; }
  void count(std::string_view counter, int64_t delta) override {
    counters_[std::string(counter)] += delta;
  }
  void warn(std::string_view message) override { warnings_.emplace_back(message); }
  bool stop_requested() const override { return stop_; }
  int input_port(std::string_view name) const override {
    throw Error("no input " + std::string(name));
  }
  int output_port(std::string_view name) const override {
    int i = contract_.output_index(std::string(name));
    if (i < 0) throw Error("no output " + std::string(name));
    return i;
  }

  const std::vector<Packet>& out(const std::string& port) const {
    return emitted_.at(output_port(port));
  }
  bool closed(const std::string& port) const { return closed_.at(output_port(port)); }
  std::map<std::string, int64_t> counters_;
  std::vector<std::string> warnings_;
  bool stop_ = false;

 private:
  Contract contract_;
  std::string name_ = "src";
  Params params_;
  Packet empty_;
  std::vector<std::vector<Packet>> emitted_;
  std::vector<bool> closed_;
};

// open, process until kDone, close.
template <class N>
void run_source(N& node, RecordingContext& ctx, int max_calls = 100000) {
  node.open(ctx);
  for (int i = 0; i < max_calls && node.process(ctx) == Flow::kContinue; ++i) {
  }
  node.close(ctx);
}

TEST(MediaSourceNode, EmitsFramesAndChunksAtTheirTimestamps) {
  MediaSource node;
  RecordingContext ctx(MediaSource::contract(), {{"path", sample("h264_aac.mp4")}});
  run_source(node, ctx);
  const auto& video = ctx.out("video");
  ASSERT_EQ(video.size(), 75u);
  for (size_t i = 0; i < video.size(); ++i) {
    const Frame& f = video[i].get<Frame>();
    EXPECT_EQ(video[i].timestamp().us(), f.pts_us);
    EXPECT_EQ(f.index, int64_t(i));
    EXPECT_EQ(f.rgb.cols, 320);
  }
  const auto& audio = ctx.out("audio");
  ASSERT_EQ(audio.size(), 4u);
  int64_t samples = 0;
  for (const Packet& p : audio) {
    EXPECT_EQ(p.timestamp().us(), p.get<AudioChunk>().start_us);
    samples += p.get<AudioChunk>().frames();
  }
  EXPECT_NEAR(double(samples), 48000, 16000);
  EXPECT_EQ(ctx.counters_["damaged_packets"], 0);
}

TEST(MediaSourceNode, ParamsReachTheReader) {
  MediaSource node;
  RecordingContext ctx(MediaSource::contract(), {{"path", sample("h264_aac.mp4")},
                                                 {"fps", 5.0},
                                                 {"max_side", int64_t(160)},
                                                 {"audio", false},
                                                 {"start", 1.0}});
  run_source(node, ctx);
  const auto& video = ctx.out("video");
  ASSERT_EQ(video.size(), 10u);
  EXPECT_EQ(video[0].timestamp().us(), 1000000);
  EXPECT_EQ(video[0].get<Frame>().rgb.cols, 160);
  EXPECT_TRUE(ctx.closed("audio"));
  EXPECT_TRUE(ctx.out("audio").empty());
}

TEST(MediaSourceNode, PacedPlaybackEmitsTheSamePackets) {
  auto timestamps = [](const std::vector<Packet>& ps) {
    std::vector<int64_t> ts;
    for (const Packet& p : ps) ts.push_back(p.timestamp().us());
    return ts;
  };
  MediaSource fast, paced;
  RecordingContext a(MediaSource::contract(), {{"path", sample("h264_aac.mp4")}});
  // speed 100: the 3 s clip plays in about 30 ms.
  RecordingContext b(MediaSource::contract(), {{"path", sample("h264_aac.mp4")}, {"speed", 100.0}});
  run_source(fast, a);
  run_source(paced, b);
  EXPECT_EQ(timestamps(b.out("video")), timestamps(a.out("video")));
  EXPECT_EQ(timestamps(b.out("audio")), timestamps(a.out("audio")));
  MediaSource bad;
  RecordingContext c(MediaSource::contract(), {{"path", sample("h264_aac.mp4")}, {"speed", -1.0}});
  EXPECT_THROW(bad.open(c), ConfigError);
}

TEST(MediaSourceNode, AudioOnlyClosesVideo) {
  MediaSource node;
  RecordingContext ctx(MediaSource::contract(), {{"path", sample("speech.mp3")}});
  run_source(node, ctx);
  EXPECT_TRUE(ctx.closed("video"));
  EXPECT_EQ(ctx.out("audio").size(), 5u);
}

TEST(MediaSourceNode, DamagedPacketsAreCounted) {
  MediaSource node;
  RecordingContext ctx(MediaSource::contract(), {{"path", sample("corrupt_middle.mp4")}});
  run_source(node, ctx);
  EXPECT_GT(ctx.counters_["damaged_packets"] + ctx.counters_["corrupt_frames"], 0);
  EXPECT_GT(ctx.out("video").size(), 60u);
}

TEST(MediaSourceNode, ErrorsNameTheFileOrParam) {
  {
    MediaSource node;
    RecordingContext ctx(MediaSource::contract(), {});
    EXPECT_THROW(node.open(ctx), ConfigError);
  }
  {
    MediaSource node;
    RecordingContext ctx(MediaSource::contract(), {{"path", sample("text.mp4")}});
    try {
      node.open(ctx);
      FAIL() << "expected InputError";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("text.mp4"), std::string::npos);
    }
  }
  {
    MediaSource node;
    RecordingContext ctx(MediaSource::contract(), {{"path", sample("playlist.m3u8")}});
    EXPECT_THROW(node.open(ctx), InputError);
  }
}

TEST(MediaSourceNode, StopRequestEndsTheSource) {
  MediaSource node;
  RecordingContext ctx(MediaSource::contract(), {{"path", sample("h264_aac.mp4")}});
  node.open(ctx);
  EXPECT_EQ(node.process(ctx), Flow::kContinue);
  ctx.stop_ = true;
  Flow f = Flow::kContinue;
  for (int i = 0; i < 10 && f == Flow::kContinue; ++i) f = node.process(ctx);
  EXPECT_EQ(f, Flow::kDone);
  node.close(ctx);
}

class ImageSourceNode : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(OMNI_BINARY_DIR) / "test_tmp" / "image_source_node";
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    cv::Mat m(30, 40, CV_8UC3, cv::Scalar(10, 20, 30));
    for (const char* n : {"a.png", "c.png", "d.jpg"}) cv::imwrite((dir_ / n).string(), m);
    std::ofstream(dir_ / "b.png") << "broken";
  }
  std::filesystem::path dir_;
};

TEST_F(ImageSourceNode, SkipsAndReportsUnreadable) {
  ImageSource node;
  RecordingContext ctx(ImageSource::contract(), {{"path", dir_.string()}});
  run_source(node, ctx);
  const auto& v = ctx.out("video");
  ASSERT_EQ(v.size(), 3u);
  // Timestamps follow the sorted position: a (0), [b skipped], c (2), d (3).
  EXPECT_EQ(v[0].timestamp().us(), 0);
  EXPECT_EQ(v[1].timestamp().us(), 2);
  EXPECT_EQ(v[2].timestamp().us(), 3);
  EXPECT_EQ(v[1].get<Frame>().index, 1);
  EXPECT_EQ(v[0].get<Frame>().rgb.at<cv::Vec3b>(0, 0), cv::Vec3b(30, 20, 10));  // RGB order
  EXPECT_EQ(ctx.counters_["unreadable_images"], 1);
  ASSERT_EQ(ctx.warnings_.size(), 1u);
  EXPECT_NE(ctx.warnings_[0].find("b.png"), std::string::npos);
}

TEST_F(ImageSourceNode, FailModeAndSpacing) {
  {
    ImageSource node;
    RecordingContext ctx(ImageSource::contract(), {{"path", dir_.string()}, {"on_error", "fail"}});
    node.open(ctx);
    EXPECT_EQ(node.process(ctx), Flow::kContinue);
    EXPECT_THROW(node.process(ctx), InputError);
  }
  {
    ImageSource node;
    RecordingContext ctx(
        ImageSource::contract(),
        {{"paths", StringList{(dir_ / "d.jpg").string(), (dir_ / "a.png").string()}},
         {"spacing", 0.5}});
    run_source(node, ctx);
    const auto& v = ctx.out("video");
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(v[1].timestamp().us(), 500000);
  }
  {
    ImageSource node;
    RecordingContext ctx(ImageSource::contract(), {{"path", dir_.string()}, {"on_error", "maybe"}});
    EXPECT_THROW(node.open(ctx), ConfigError);
  }
}

TEST(MediaNodes, RegistrationAndJson) {
  Registry r;
  register_media_nodes(r);
  EXPECT_TRUE(r.contains("MediaSource"));
  EXPECT_TRUE(r.contains("ImageSource"));
  EXPECT_EQ(r.get("MediaSource").contract.outputs().size(), 2u);
  Frame f;
  f.rgb = cv::Mat(4, 6, CV_8UC3);
  f.pts_us = 40000;
  f.index = 1;
  nlohmann::json j;
  packet_to_json(Packet::make<Frame>(Timestamp(40000), f), j);
  EXPECT_EQ(j["width"], 6);
  EXPECT_EQ(j["height"], 4);
  EXPECT_EQ(j["pts_us"], 40000);
  EXPECT_EQ(j["index"], 1);
  AudioChunk a;
  a.samples.assign(320, 0.f);
  a.start_us = 7;
  nlohmann::json ja;
  packet_to_json(Packet::make<AudioChunk>(Timestamp(7), a), ja);
  EXPECT_EQ(ja["frames"], 320);
  EXPECT_EQ(ja["sample_rate"], 16000);
  EXPECT_EQ(ja["channels"], 1);
  EXPECT_EQ(ja["start_us"], 7);
}

}  // namespace
}  // namespace omni
