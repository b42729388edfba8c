#include "models/qwen2_5_omni/media.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "modalities/common/preprocessor_config.h"
#ifdef OMNI_WITH_MEDIA
#include "modalities/media/media_reader.h"
#include "modalities/media/probe.h"
#endif

namespace omni::qwen {

const char* media_kind_name(MediaKind k) {
  switch (k) {
    case MediaKind::kImage:
      return "image";
    case MediaKind::kAudio:
      return "audio";
    case MediaKind::kVideo:
      return "video";
    case MediaKind::kNone:
      break;
  }
  return "text";
}

ProcessorConfig ProcessorConfig::from_directory(const std::string& dir) {
  const nlohmann::json cfg = read_preprocessor_config(dir);
  ProcessorConfig pc;
  pc.image = QwenVisionOptions::from_config(cfg);
  pc.video = QwenVideoOptions::from_config(cfg);
  const auto video_file = std::filesystem::path(dir) / "video_preprocessor_config.json";
  if (std::filesystem::exists(video_file))
    pc.video = QwenVideoOptions::from_config(read_preprocessor_config(video_file.string()));
  pc.audio = WhisperFeatureOptions::from_config(cfg);
  return pc;
}

#ifdef OMNI_WITH_MEDIA
MediaKind detect_media_kind(const std::string& path, bool* has_audio) {
  if (!std::filesystem::exists(path)) throw InputError(path + ": no such file");
  nlohmann::json p;
  try {
    p = probe_media(path);
  } catch (const InputError& e) {
    throw InputError(std::string("cannot read media file: ") + e.what());
  }
  bool video = false, audio = false;
  for (const auto& s : p.value("streams", nlohmann::json::array())) {
    const std::string t = s.value("type", "");
    video = video || t == "video";
    audio = audio || t == "audio";
  }
  if (has_audio) *has_audio = audio;
  const std::string fmt = p.value("format", "");
  const bool image_format =
      fmt == "image2" || (fmt.size() > 5 && fmt.compare(fmt.size() - 5, 5, "_pipe") == 0);
  if (video && image_format && !audio) return MediaKind::kImage;
  if (video) return MediaKind::kVideo;
  if (audio) return MediaKind::kAudio;
  throw InputError(path + ": no video or audio stream (format " + fmt +
                   "); expected an image, an audio file or a video");
}
#else
MediaKind detect_media_kind(const std::string& path, bool*) {
  throw ConfigError(path + ": this build reads no media files (OMNI_WITH_MEDIA=OFF)");
}
#endif

void round_to_s16(std::vector<float>& pcm) {
  for (float& x : pcm) {
    const long v = std::lrint(static_cast<double>(x) * 32768.0);
    x = static_cast<float>(std::clamp<long>(v, -32768, 32767)) / 32768.0f;
  }
}

namespace {

#ifdef OMNI_WITH_MEDIA
std::vector<float> read_pcm(const std::string& path, int rate) {
  MediaReaderOptions ro;
  ro.path = path;
  ro.video = false;
  ro.audio = true;
  ro.audio_rate = rate;
  ro.audio_channels = 1;
  MediaReader reader(ro);
  if (!reader.has_audio()) throw InputError(path + ": no decodable audio stream");
  std::vector<float> pcm;
  MediaReader::Item item;
  while (reader.next(item))
    if (item.kind == MediaReader::Item::Kind::kAudio)
      pcm.insert(pcm.end(), item.audio.samples.begin(), item.audio.samples.end());
  if (pcm.empty()) throw InputError(path + ": the audio stream decoded to no samples");
  return pcm;
}
#endif

WhisperFeatures features_of(const std::vector<float>& pcm, const ProcessorConfig& pc,
                            const std::string& source) {
  if (pcm.empty()) throw InputError(source + ": no audio samples");
  try {
    return whisper_features(pcm.data(), static_cast<int64_t>(pcm.size()), pc.audio);
  } catch (const InputError& e) {
    throw InputError(source + ": " + e.what());
  }
}

QwenVideoOptions video_options(const ProcessorConfig& pc, const MediaOptions& mo) {
  QwenVideoOptions vo = pc.video;
  if (!(mo.fps > 0)) throw InputError("fps must be positive, got " + std::to_string(mo.fps));
  vo.fps = mo.fps;
  return vo;
}

bool resolve_audio_in_video(const MediaOptions& mo, bool has_audio, const std::string& source) {
  const bool on = mo.audio_in_video.value_or(has_audio);
  if (on && !has_audio)
    throw InputError(source + ": audio-in-video is on but the video has no sound track");
  return on;
}

}  // namespace

#ifdef OMNI_WITH_MEDIA
QwenMedia read_media(const std::string& path, const ProcessorConfig& pc, const MediaOptions& mo) {
  QwenMedia m;
  m.source = path;
  bool has_audio = false;
  m.kind = detect_media_kind(path, &has_audio);
  switch (m.kind) {
    case MediaKind::kImage: {
      MediaReaderOptions ro;
      ro.path = path;
      ro.audio = false;
      MediaReader reader(ro);
      MediaReader::Item item;
      bool got = false;
      while (!got && reader.next(item)) got = item.kind == MediaReader::Item::Kind::kVideo;
      if (!got) throw InputError(path + ": the image decoded to no picture");
      const cv::Mat& rgb = item.frame.rgb;
      try {
        m.image = qwen_image_inputs(rgb.ptr<uint8_t>(0), rgb.cols, rgb.rows,
                                    static_cast<int64_t>(rgb.step[0]), pc.image);
      } catch (const InputError& e) {
        throw InputError(path + ": " + e.what());
      }
      break;
    }
    case MediaKind::kVideo: {
      m.video_has_audio = has_audio;
      m.audio_in_video = resolve_audio_in_video(mo, has_audio, path);
      try {
        m.video = qwen_video_inputs(path, video_options(pc, mo));
      } catch (const InputError& e) {
        throw InputError(path + ": " + e.what());
      }
      if (m.audio_in_video) {
        auto pcm = read_pcm(path, pc.audio.sampling_rate);
        round_to_s16(pcm);
        m.audio = features_of(pcm, pc, path);
      }
      break;
    }
    case MediaKind::kAudio:
      m.audio = features_of(read_pcm(path, pc.audio.sampling_rate), pc, path);
      break;
    case MediaKind::kNone:
      break;
  }
  return m;
}
#else
QwenMedia read_media(const std::string& path, const ProcessorConfig&, const MediaOptions&) {
  throw ConfigError(path + ": this build reads no media files (OMNI_WITH_MEDIA=OFF)");
}
#endif

QwenMedia media_from_decoded(const std::vector<DecodedFrame>& frames, const std::vector<float>& pcm,
                             bool has_audio, const ProcessorConfig& pc, const MediaOptions& mo,
                             const std::string& source) {
  QwenMedia m;
  m.source = source;
  if (frames.size() == 1 && !has_audio) {
    m.kind = MediaKind::kImage;
    const RgbView& f = frames[0].rgb;
    try {
      m.image = qwen_image_inputs(f.data, f.width, f.height, f.row_stride, pc.image);
    } catch (const InputError& e) {
      throw InputError(source + ": " + e.what());
    }
    return m;
  }
  if (frames.empty()) {
    if (!has_audio || pcm.empty())
      throw InputError(source + ": no video frames and no audio samples");
    m.kind = MediaKind::kAudio;
    m.audio = features_of(pcm, pc, source);
    return m;
  }
  m.kind = MediaKind::kVideo;
  m.video_has_audio = has_audio;
  m.audio_in_video = resolve_audio_in_video(mo, has_audio, source);
  // The decoded stream's count and average rate, as qwen_video_inputs(path) measures them.
  const int64_t count = static_cast<int64_t>(frames.size());
  const int64_t first = frames.front().pts_us, last = frames.back().pts_us;
  const double rate =
      count >= 2 && last > first ? double(count - 1) * 1e6 / double(last - first) : 0.0;
  const QwenVideoOptions vo = video_options(pc, mo);
  try {
    const QwenVideoPlan plan = qwen_video_plan(count, rate, vo);
    std::vector<RgbView> views;
    views.reserve(plan.indices.size());
    for (int64_t i : plan.indices) views.push_back(frames.at(static_cast<size_t>(i)).rgb);
    m.video = qwen_video_inputs_from_frames(views, plan, vo);
  } catch (const InputError& e) {
    throw InputError(source + ": " + e.what());
  }
  if (m.audio_in_video) {
    std::vector<float> s16 = pcm;
    round_to_s16(s16);
    m.audio = features_of(s16, pc, source);
  }
  return m;
}

}  // namespace omni::qwen

void omni::PayloadJson<omni::qwen::QwenMedia>::encode(const omni::qwen::QwenMedia& m,
                                                      nlohmann::json& j) {
  j["kind"] = omni::qwen::media_kind_name(m.kind);
  j["source"] = m.source;
  if (m.image) j["image_grid_thw"] = m.image->grid_thw;
  if (m.video) {
    j["video_grid_thw"] = m.video->grid_thw;
    j["video_second_per_grid"] = m.video->second_per_grid;
    j["video_frames"] = m.video->plan.nframes;
  }
  if (m.audio) j["audio_valid_frames"] = m.audio->valid_frames;
  j["tokens"] = {
      {"image", m.image_tokens()}, {"video", m.video_tokens()}, {"audio", m.audio_tokens()}};
  j["audio_in_video"] = m.audio_in_video;
  j["encoded"] = {{"image", m.image_embeds.defined()},
                  {"video", m.video_embeds.defined()},
                  {"audio", m.audio_embeds.defined()}};
}
