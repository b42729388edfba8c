// MediaReader against the generated samples, with ffprobe/ffmpeg as the reference.
#include "modalities/media/media_reader.h"

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <opencv2/core.hpp>

#include <chrono>
#include <cmath>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>

#include "core/error.h"
#include "modalities/media/probe.h"
#include "tests/media/media_test_util.h"

namespace omni {
namespace {

using omni::testing::ffprobe_frame_times;
using omni::testing::ffprobe_json;
using omni::testing::run_command;
using omni::testing::sample;
using Kind = MediaReader::Item::Kind;

struct Decoded {
  std::vector<Frame> frames;
  std::vector<AudioChunk> chunks;
  int64_t samples = 0;
  MediaReaderStats stats;
};

Decoded decode(MediaReaderOptions o) {
  MediaReader r(std::move(o));
  Decoded d;
  MediaReader::Item it;
  while (r.next(it)) {
    if (it.kind == Kind::kVideo) {
      d.frames.push_back(it.frame);
    } else {
      d.samples += it.audio.frames();
      d.chunks.push_back(std::move(it.audio));
    }
  }
  d.stats = r.stats();
  return d;
}

Decoded decode(const std::string& name) {
  MediaReaderOptions o;
  o.path = sample(name);
  return decode(o);
}

double format_start(const nlohmann::json& probe) {
  return probe["format"].contains("start_time")
             ? std::stod(probe["format"]["start_time"].get<std::string>())
             : 0.0;
}

const nlohmann::json* first_stream(const nlohmann::json& probe, const std::string& type) {
  for (const auto& s : probe["streams"]) {
    if (s["codec_type"] == type &&
        !(s.contains("disposition") && s["disposition"].value("attached_pic", 0)))
      return &s;
  }
  return nullptr;
}

// ---- every sample with video: frame count, timestamps, size against ffprobe --------------------

class VideoSample : public ::testing::TestWithParam<const char*> {};

TEST_P(VideoSample, FramesMatchFfprobe) {
  std::string path = sample(GetParam());
  nlohmann::json probe = ffprobe_json(path);
  ASSERT_TRUE(probe.is_object()) << path;
  const nlohmann::json* vs = first_stream(probe, "video");
  ASSERT_NE(vs, nullptr);
  std::vector<double> ref = ffprobe_frame_times(path);
  ASSERT_FALSE(ref.empty());
  double base = format_start(probe);

  Decoded d = decode(GetParam());
  ASSERT_EQ(d.frames.size(), ref.size()) << path;
  int w = (*vs)["width"], h = (*vs)["height"];
  bool rotated = path.find("rotated90") != std::string::npos;
  for (size_t i = 0; i < d.frames.size(); ++i) {
    const Frame& f = d.frames[i];
    int64_t want = std::llround((ref[i] - base) * 1e6);
    EXPECT_NEAR(double(f.pts_us), double(want), 2.0) << path << " frame " << i;
    if (i > 0) {
      EXPECT_GT(f.pts_us, d.frames[i - 1].pts_us) << path << " frame " << i;
    }
    EXPECT_EQ(f.index, int64_t(i));
    ASSERT_EQ(f.rgb.type(), CV_8UC3);
    EXPECT_EQ(f.rgb.step[0] % 64, 0u) << path;  // aligned rows: swscale writes whole vectors
    EXPECT_GE(f.rgb.step[0], size_t(f.rgb.cols) * 3) << path;
    EXPECT_EQ(f.rgb.cols, rotated ? h : w) << path;
    EXPECT_EQ(f.rgb.rows, rotated ? w : h) << path;
  }
  EXPECT_EQ(d.stats.damaged_packets, 0);
  EXPECT_EQ(d.stats.frames_out_of_order, 0);
}

INSTANTIATE_TEST_SUITE_P(Samples, VideoSample,
                         ::testing::Values("h264_aac.mp4", "vp9_opus.mkv", "vp8_vorbis.webm",
                                           "mjpeg_pcm.mov", "video_only_odd444.mp4", "vfr.mp4",
                                           "hevc10.mkv", "start_offset.ts", "multi_audio.mkv",
                                           "rotated90.mp4"));

// ---- every sample with audio: sample count = duration x rate within one chunk -------------------

class AudioSample : public ::testing::TestWithParam<const char*> {};

TEST_P(AudioSample, SampleCountMatchesDuration) {
  std::string path = sample(GetParam());
  nlohmann::json probe = ffprobe_json(path);
  double dur = std::stod(probe["format"]["duration"].get<std::string>());
  Decoded d = decode(GetParam());
  ASSERT_FALSE(d.chunks.empty()) << path;
  EXPECT_NEAR(double(d.samples), dur * 16000, 16000.0) << path;
  // Tighter than the contract in practice: decoders trim priming/padding.
  EXPECT_NEAR(double(d.samples), dur * 16000, 0.05 * 16000) << path;
  for (size_t i = 0; i < d.chunks.size(); ++i) {
    const AudioChunk& c = d.chunks[i];
    EXPECT_EQ(c.sample_rate, 16000);
    EXPECT_EQ(c.channels, 1);
    if (i + 1 < d.chunks.size()) {
      EXPECT_EQ(c.frames(), 16000) << "chunk " << i;
    }
    EXPECT_GT(c.frames(), 0);
    if (i > 0) {
      EXPECT_EQ(c.start_us, d.chunks[0].start_us + int64_t(i) * 1000000) << "chunk " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Samples, AudioSample,
                         ::testing::Values("h264_aac.mp4", "vp9_opus.mkv", "vp8_vorbis.webm",
                                           "mjpeg_pcm.mov", "speech.wav", "speech.flac",
                                           "speech.mp3", "tone_stereo.wav", "multi_audio.mkv",
                                           "start_offset.ts"));

TEST(MediaReader, AudioOnlyAndVideoOnly) {
  MediaReaderOptions o;
  o.path = sample("speech.flac");
  MediaReader audio_only(o);
  EXPECT_FALSE(audio_only.has_video());
  EXPECT_TRUE(audio_only.has_audio());
  o.path = sample("video_only_odd444.mp4");
  MediaReader video_only(o);
  EXPECT_TRUE(video_only.has_video());
  EXPECT_FALSE(video_only.has_audio());
  Decoded d = decode(o);
  EXPECT_TRUE(d.chunks.empty());
  EXPECT_EQ(d.frames[0].rgb.cols, 321);  // odd size kept
  EXPECT_EQ(d.frames[0].rgb.rows, 241);
}

// MediaReader and probe over bytes in memory (a custom AVIOContext) give what the file gives.
TEST(MediaReader, ReadsFromMemoryAsFromTheFile) {
  MediaReaderOptions o;
  o.path = std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/qwen_processor/clip_64x48.mp4";
  const Decoded from_file = decode(o);
  std::ifstream f(o.path, std::ios::binary);
  auto bytes = std::make_shared<const std::string>(std::istreambuf_iterator<char>(f),
                                                   std::istreambuf_iterator<char>());
  o.data = bytes;
  o.path = "clip in memory";
  const Decoded from_memory = decode(o);
  ASSERT_FALSE(from_file.frames.empty());
  ASSERT_EQ(from_memory.frames.size(), from_file.frames.size());
  for (size_t i = 0; i < from_file.frames.size(); ++i) {
    EXPECT_EQ(from_memory.frames[i].pts_us, from_file.frames[i].pts_us);
    EXPECT_EQ(cv::norm(from_memory.frames[i].rgb, from_file.frames[i].rgb, cv::NORM_INF), 0);
  }
  ProbeOptions po;
  po.data = bytes;
  const nlohmann::json j = probe_media("clip in memory", po);
  EXPECT_EQ(j["path"], "clip in memory");
  EXPECT_FALSE(j["streams"].empty());
  // Not media: an InputError naming the input.
  o.data = std::make_shared<const std::string>("not a media file at all");
  try {
    MediaReader r(o);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("clip in memory"), std::string::npos) << e.what();
  }
}

// A stream header claiming a frame bigger than kMaxFramePixels is refused before any decoding.
TEST(MediaReader, HugeClaimedFrameSizeIsRefused) {
  MediaReaderOptions o;
  o.path = "huge.y4m";
  o.data = std::make_shared<const std::string>(
      "YUV4MPEG2 W10000 H10000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + std::string(64, '\x80'));
  try {
    MediaReader r(o);
    MediaReader::Item item;
    while (r.next(item)) {
    }
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("more than the limit"), std::string::npos) << e.what();
  }
}

// A 1.2 KB WAV whose LIST chunk claims 4 GB (found by fuzz_wav): libavformat allocated 2.1 GB
// for it while opening the file, until FFmpeg's single-block limit was lowered to 512 MiB. Now a
// clear error (or what can be read), in bounded memory.
TEST(MediaReader, HeaderClaimingGigabytesIsNotAllocated) {
  std::ifstream f(std::string(OMNI_SOURCE_DIR) + "/fuzz/regressions/wav/list-chunk-claims-4gb",
                  std::ios::binary);
  ASSERT_TRUE(f.good());
  MediaReaderOptions o;
  o.path = "claims.wav";
  o.data = std::make_shared<const std::string>(std::istreambuf_iterator<char>(f),
                                               std::istreambuf_iterator<char>());
  o.video = false;
  try {
    MediaReader r(o);
    MediaReader::Item item;
    while (r.next(item)) {
    }
  } catch (const InputError& e) {
    EXPECT_FALSE(std::string(e.what()).empty());
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  EXPECT_LT(ru.ru_maxrss, 1024 * 1024) << "peak RSS " << ru.ru_maxrss << " KB";
}

TEST(MediaReader, ExactRateChannelsAndSignal) {
  MediaReaderOptions o;
  o.path = sample("tone_stereo.wav");  // 2.5 s of 440 Hz at amplitude 1/8, 48 kHz stereo
  o.audio_rate = 48000;
  o.audio_channels = 2;
  o.audio_chunk_ms = 500;
  Decoded d = decode(o);
  EXPECT_EQ(d.samples, 120000);
  ASSERT_EQ(d.chunks.size(), 5u);
  // Same rate and layout: the samples are the file's s16 samples as float, exactly as ffmpeg
  // converts them.
  std::string raw = run_command("ffmpeg -v error -i '" + o.path + "' -f f32le -");
  ASSERT_EQ(raw.size(), 120000u * 2 * sizeof(float));
  const float* ref = reinterpret_cast<const float*>(raw.data());
  size_t k = 0, mismatches = 0;
  int64_t crossings = 0;
  float prev = 0;
  for (const AudioChunk& c : d.chunks) {
    EXPECT_EQ(c.channels, 2);
    EXPECT_EQ(c.frames(), 24000);
    for (size_t i = 0; i < c.samples.size(); ++i, ++k) mismatches += c.samples[i] != ref[k];
    for (size_t i = 0; i < c.samples.size(); i += 2) {
      if ((prev < 0) != (c.samples[i] < 0)) ++crossings;
      prev = c.samples[i];
    }
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_NEAR(double(crossings), 2 * 440 * 2.5, 10);
}

// ---- pixels: same RGB as ffmpeg's own conversion, rotation applied like ffmpeg's autorotate -----

cv::Mat ffmpeg_first_frame(const std::string& path, int w, int h) {
  std::string raw =
      run_command("ffmpeg -v error -i '" + path + "' -frames:v 1 -f rawvideo -pix_fmt rgb24 -");
  if (raw.size() != size_t(w) * h * 3) return {};
  return cv::Mat(h, w, CV_8UC3, raw.data()).clone();
}

TEST(MediaReader, PixelsMatchFfmpeg) {
  for (const char* name :
       {"h264_aac.mp4", "mjpeg_pcm.mov", "hevc10.mkv", "video_only_odd444.mp4"}) {
    Decoded d = decode(name);
    ASSERT_FALSE(d.frames.empty());
    const cv::Mat& ours = d.frames[0].rgb;
    cv::Mat ref = ffmpeg_first_frame(sample(name), ours.cols, ours.rows);
    ASSERT_FALSE(ref.empty()) << name;
    cv::Mat diff;
    cv::absdiff(ours, ref, diff);
    cv::Scalar m = cv::mean(diff);
    EXPECT_LT((m[0] + m[1] + m[2]) / 3, 4.0) << name;  // scaler rounding/interpolation only
  }
}

TEST(MediaReader, RotationComesOutUpright) {
  MediaReaderOptions o;
  o.path = sample("rotated90.mp4");
  MediaReader r(o);
  EXPECT_EQ(r.rotation(), 270);  // display matrix says 90 counter-clockwise
  Decoded d = decode(o);
  ASSERT_FALSE(d.frames.empty());
  const cv::Mat& f = d.frames[0].rgb;
  ASSERT_EQ(f.cols, 96);
  ASSERT_EQ(f.rows, 160);
  // The stored picture has red in its top-left quarter; upright it is the bottom-left.
  auto px = [&](int x, int y) { return f.at<cv::Vec3b>(y, x); };
  EXPECT_GT(px(10, 150)[0], 200);  // bottom-left red
  EXPECT_LT(px(10, 150)[2], 60);
  for (auto [x, y] : {std::pair{10, 10}, {85, 10}, {85, 150}}) {
    EXPECT_LT(px(x, y)[0], 60) << x << "," << y;
    EXPECT_GT(px(x, y)[2], 200) << x << "," << y;
  }
  cv::Mat ref = ffmpeg_first_frame(o.path, 96, 160);  // ffmpeg autorotates
  ASSERT_FALSE(ref.empty());
  cv::Mat diff;
  cv::absdiff(f, ref, diff);
  EXPECT_LT(cv::mean(diff)[0], 4.0);
}

TEST(MediaReader, MaxSideKeepsAspect) {
  MediaReaderOptions o;
  o.path = sample("h264_aac.mp4");
  o.max_side = 160;
  o.audio = false;
  Decoded d = decode(o);
  ASSERT_FALSE(d.frames.empty());
  EXPECT_EQ(d.frames[0].rgb.cols, 160);
  EXPECT_EQ(d.frames[0].rgb.rows, 120);
  o.path = sample("rotated90.mp4");
  o.max_side = 80;
  d = decode(o);
  EXPECT_EQ(d.frames[0].rgb.cols, 48);
  EXPECT_EQ(d.frames[0].rgb.rows, 80);
}

TEST(MediaReader, FpsSamplingDecodesAllConvertsFew) {
  MediaReaderOptions o;
  o.path = sample("h264_aac.mp4");  // 25 fps, 3 s
  o.fps = 5;
  o.audio = false;
  Decoded d = decode(o);
  EXPECT_EQ(d.stats.frames_decoded, 75);
  EXPECT_EQ(d.stats.frames_emitted, 15);  // only these were converted to RGB
  ASSERT_EQ(d.frames.size(), 15u);
  for (size_t i = 0; i < d.frames.size(); ++i) {
    EXPECT_EQ(d.frames[i].pts_us, int64_t(i) * 200000);  // one frame per 0.2 s grid slot
  }
  // VFR: at most one frame per slot, and every slot that has a frame gets one.
  o.path = sample("vfr.mp4");
  o.fps = 10;
  Decoded v = decode(o);
  std::vector<double> ref = ffprobe_frame_times(o.path);
  std::set<int64_t> slots;
  for (double t : ref) slots.insert(int64_t(std::floor(t * 10 + 1e-9)));
  ASSERT_EQ(v.frames.size(), slots.size());
  std::set<int64_t> got;
  for (const Frame& f : v.frames) got.insert(f.pts_us / 100000);
  EXPECT_EQ(got, slots);
}

TEST(MediaReader, StartEndTrimBothStreams) {
  MediaReaderOptions o;
  o.path = sample("h264_aac.mp4");
  o.start = 1.0;
  o.end = 2.0;
  Decoded d = decode(o);
  ASSERT_EQ(d.frames.size(), 25u);
  EXPECT_EQ(d.frames.front().pts_us, 1000000);
  EXPECT_EQ(d.frames.back().pts_us, 1960000);
  ASSERT_FALSE(d.chunks.empty());
  EXPECT_GE(d.chunks.front().start_us, 1000000);
  EXPECT_LT(d.chunks.front().start_us, 1000000 + 100);
  EXPECT_NEAR(double(d.samples), 16000, 2);
}

TEST(MediaReader, DefaultAudioStreamAndChoice) {
  MediaReaderOptions o;
  o.path = sample("multi_audio.mkv");  // a:0 440 Hz, a:1 1000 Hz flagged default
  o.video = false;
  auto crossings_per_s = [](const Decoded& d) {
    int64_t n = 0;
    float prev = 0;
    for (const AudioChunk& c : d.chunks)
      for (float s : c.samples) {
        if ((prev < 0) != (s < 0)) ++n;
        prev = s;
      }
    return double(n) / (double(d.samples) / 16000);
  };
  {
    MediaReader r(o);
    EXPECT_EQ(r.audio_stream_index(), 2);
  }
  EXPECT_NEAR(crossings_per_s(decode(o)), 2000, 20);
  o.audio_stream = 0;
  {
    MediaReader r(o);
    EXPECT_EQ(r.audio_stream_index(), 1);
  }
  EXPECT_NEAR(crossings_per_s(decode(o)), 880, 20);
  o.audio_stream = 5;
  EXPECT_THROW(MediaReader{o}, InputError);
}

TEST(MediaReader, NonZeroStartPts) {
  MediaReaderOptions o;
  o.path = sample("start_offset.ts");
  nlohmann::json probe = ffprobe_json(o.path);
  std::vector<double> ref = ffprobe_frame_times(o.path);
  double base = format_start(probe);
  ASSERT_GT(base, 1.0);
  Decoded d = decode(o);
  ASSERT_FALSE(d.frames.empty());
  EXPECT_NEAR(double(d.frames[0].pts_us), (ref[0] - base) * 1e6, 2);
  EXPECT_LT(d.frames[0].pts_us, 100000);
  EXPECT_GE(d.chunks[0].start_us, 0);
  o.rebase = false;
  Decoded raw = decode(o);
  EXPECT_NEAR(double(raw.frames[0].pts_us), ref[0] * 1e6, 2);
}

// ---- buffers: reused when free, never overwritten while held ------------------------------------

TEST(MediaReader, HeldFramesAreNeverOverwritten) {
  MediaReaderOptions o;
  o.path = sample("h264_aac.mp4");
  o.audio = false;
  MediaReader r(o);
  std::vector<Frame> held;
  std::vector<cv::Mat> copies;
  MediaReader::Item it;
  while (r.next(it)) {
    held.push_back(it.frame);
    copies.push_back(it.frame.rgb.clone());
  }
  ASSERT_EQ(held.size(), 75u);  // more than the pool holds
  std::set<const uchar*> buffers;
  for (size_t i = 0; i < held.size(); ++i) {
    buffers.insert(held[i].rgb.data);
    EXPECT_EQ(cv::norm(held[i].rgb, copies[i], cv::NORM_INF), 0) << "frame " << i;
  }
  EXPECT_EQ(buffers.size(), held.size());
}

TEST(MediaReader, ReleasedBuffersAreReused) {
  MediaReaderOptions o;
  o.path = sample("h264_aac.mp4");
  o.audio = false;
  MediaReader r(o);
  std::set<const uchar*> buffers;
  MediaReader::Item it;
  int n = 0;
  while (r.next(it)) {
    buffers.insert(it.frame.rgb.data);
    it = MediaReader::Item();  // the consumer lets go
    ++n;
  }
  EXPECT_EQ(n, 75);
  // Bounded by the frames that come out of one decode call (the decoder flush at the end), not
  // by the file length.
  EXPECT_LE(buffers.size(), 8u);
}

// ---- damaged input ------------------------------------------------------------------------------

void expect_input_error(const std::string& name, const std::string& mention = "") {
  MediaReaderOptions o;
  o.path = sample(name);
  try {
    decode(o);
    ADD_FAILURE() << name << ": expected InputError";
  } catch (const InputError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    if (!mention.empty()) {
      EXPECT_NE(msg.find(mention), std::string::npos) << msg;
    }
  }
}

TEST(MediaReader, UnreadableFilesGiveClearErrors) {
  expect_input_error("zero.mp4", "Invalid data");
  expect_input_error("random.mp4", "Invalid data");
  expect_input_error("text.mp4", "Invalid data");
  expect_input_error("truncated_nomoov.mp4");
  expect_input_error("does_not_exist.mp4", "No such file");
}

TEST(MediaReader, TruncatedFileGivesWhatIsThere) {
  Decoded d = decode("truncated.mp4");
  EXPECT_GT(d.frames.size(), 10u);
  EXPECT_LT(d.frames.size(), 75u);
  for (size_t i = 1; i < d.frames.size(); ++i)
    EXPECT_GT(d.frames[i].pts_us, d.frames[i - 1].pts_us);
  EXPECT_GT(d.stats.damaged_packets + int64_t(d.stats.truncated), 0);
}

TEST(MediaReader, CorruptPacketsAreSkippedAndCounted) {
  for (const char* name : {"corrupt_middle.mp4", "corrupt_middle.ts"}) {
    Decoded d = decode(name);
    EXPECT_GT(d.stats.damaged_packets + d.stats.corrupt_frames, 0) << name;
    ASSERT_GT(d.frames.size(), 60u) << name;  // decoding went on past the damage
    EXPECT_GT(d.frames.back().pts_us, 2500000) << name;
    EXPECT_GT(d.samples, 16000 * 2) << name;
    for (size_t i = 1; i < d.frames.size(); ++i)
      EXPECT_GT(d.frames[i].pts_us, d.frames[i - 1].pts_us);
  }
}

// ---- security -----------------------------------------------------------------------------------

TEST(MediaReader, CraftedPlaylistsCannotOpenOtherFiles) {
  for (const char* name : {"playlist.m3u8", "playlist_renamed.mp4", "concat.ffconcat",
                           "concat_renamed.mp4", "stream.sdp"}) {
    expect_input_error(name, "allow_nested");
  }
  // The parameter widens it: the playlist then plays the local segment it names.
  MediaReaderOptions o;
  o.path = sample("playlist.m3u8");
  o.allow_nested = true;
  Decoded d = decode(o);
  EXPECT_EQ(d.frames.size(), 75u);
}

TEST(MediaReader, ProtocolWhitelist) {
  MediaReaderOptions o;
  o.path = "http://127.0.0.1:9/clip.mp4";
  EXPECT_THROW(MediaReader{o}, InputError);
  o.path = "file:" + sample("h264_aac.mp4");
  o.allowed_protocols = "pipe";
  EXPECT_THROW(MediaReader{o}, InputError);
  o.allowed_protocols = "file";
  EXPECT_NO_THROW(MediaReader{o});
}

TEST(MediaReader, InterruptStopsPromptly) {
  MediaReaderOptions o;
  o.path = sample("h264_aac.mp4");
  int calls = 0;
  bool stop = false;
  o.interrupt = [&] {
    ++calls;
    return stop;
  };
  MediaReader r(o);
  MediaReader::Item it;
  ASSERT_TRUE(r.next(it));
  stop = true;
  EXPECT_FALSE(r.next(it) && r.next(it) && r.next(it) && r.next(it) && r.next(it) && r.next(it) &&
               r.next(it) && r.next(it) && r.next(it) && r.next(it));
  EXPECT_GT(calls, 0);
}

TEST(MediaReader, BadOptionsAreConfigErrors) {
  MediaReaderOptions o;
  o.path = sample("h264_aac.mp4");
  o.fps = -1;
  EXPECT_THROW(MediaReader{o}, ConfigError);
  o.fps = 0;
  o.audio_channels = 0;
  EXPECT_THROW(MediaReader{o}, ConfigError);
  o.audio_channels = 1;
  o.start = 2;
  o.end = 1;
  EXPECT_THROW(MediaReader{o}, ConfigError);
}

}  // namespace
}  // namespace omni
