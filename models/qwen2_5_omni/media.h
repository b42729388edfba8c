// The media side of a Qwen2.5-Omni prompt: what kind of file a user gave (image, audio, video with
// or without a sound track), and the processors' outputs for it (Qwen2VL image / video processor,
// WhisperFeatureExtractor), read the way qwen-omni-utils' process_mm_info reads files. Used by the
// Thinker (a path) and by the graph's QwenOmniProcessor node (decoded frames and PCM), which share
// media_from_decoded() so that ask_clip and the YAML graph see the same inputs.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/type_name.h"
#include "modalities/audio/whisper_features.h"
#include "modalities/image/qwen_vision.h"

namespace omni::qwen {

enum class MediaKind { kNone, kImage, kAudio, kVideo };
const char* media_kind_name(MediaKind k);  // "text", "image", "audio", "video"

// The processor settings of a checkpoint directory (preprocessor_config.json, and
// video_preprocessor_config.json when present), as Qwen2_5OmniProcessor.from_pretrained builds
// them.
struct ProcessorConfig {
  QwenVisionOptions image;
  QwenVideoOptions video;
  WhisperFeatureOptions audio;
  // Throws InputError naming the directory when preprocessor_config.json is missing or malformed.
  static ProcessorConfig from_directory(const std::string& dir);
};

// How to read one media item.
struct MediaOptions {
  double fps = 2.0;  // video frames sampled per second (qwen-omni-utils' "fps")
  // Use the sound track of a video as the conversation's audio (Qwen2.5-Omni's
  // use_audio_in_video); nullopt: on when the video has a sound track. On for a silent video is
  // an InputError.
  std::optional<bool> audio_in_video;
};

// One media item after the processors: what the towers read and the prompt layout needs.
struct QwenMedia {
  MediaKind kind = MediaKind::kNone;
  std::string source;     // the file (for messages)
  std::string model_dir;  // the checkpoint whose processors made it (graph nodes downstream use it)
  std::optional<QwenVisualInputs> image;  // kind == kImage
  std::optional<QwenVideoInputs> video;   // kind == kVideo
  std::optional<WhisperFeatures> audio;   // kind == kAudio, or the video's track (audio_in_video)
  bool video_has_audio = false;           // the video file has a sound track
  bool audio_in_video = false;            // audio is the video's track, interleaved with it

  // Tower outputs, filled by the towers (Thinker::encode or the tower nodes); undefined before.
  at::Tensor image_embeds, video_embeds, audio_embeds;  // [tokens, hidden]

  int64_t image_tokens() const { return image ? image->num_tokens() : 0; }
  int64_t video_tokens() const { return video ? video->num_tokens() : 0; }
  int64_t audio_tokens() const { return audio ? qwen_audio_tokens(audio->valid_frames) : 0; }
};

// What a file is, from its container (FFmpeg probe): an image format (image2 / *_pipe demuxers)
// is kImage, a file with a video stream kVideo (has_audio tells whether it has sound), one with
// only audio kAudio. Throws InputError naming the file when it cannot be read or holds neither.
MediaKind detect_media_kind(const std::string& path, bool* has_audio = nullptr);

// Reads and processes one file: images through the image processor, videos through
// qwen-omni-utils' fetch_video + the video processor (two decoding passes, memory stays flat),
// audio (an audio file, or a video's track when audio_in_video) decoded to 16 kHz mono and through
// the Whisper feature extractor. Throws InputError naming the file for unreadable or unsuitable
// media.
QwenMedia read_media(const std::string& path, const ProcessorConfig& pc, const MediaOptions& mo);

// The same from already decoded media (the graph's MediaSource output): `frames` every video frame
// of the file in order (RGB8, with their PTS in microseconds), `pcm` the whole 16 kHz mono signal.
// One frame and no sound is an image; two or more frames a video; no frames and sound an audio
// clip. A video's sound track is rounded to 16-bit samples, as librosa's ffmpeg reader sees it.
struct DecodedFrame {
  RgbView rgb;
  int64_t pts_us = 0;
};
QwenMedia media_from_decoded(const std::vector<DecodedFrame>& frames, const std::vector<float>& pcm,
                             bool has_audio, const ProcessorConfig& pc, const MediaOptions& mo,
                             const std::string& source);

// Rounds float PCM to the 16-bit grid (lrint(x * 32768), clipped), in place: what ffmpeg's s16
// output divided by 32768 gives (librosa reading a video's sound through audioread).
void round_to_s16(std::vector<float>& pcm);

}  // namespace omni::qwen

OMNI_TYPE_NAME(omni::qwen::QwenMedia, "QwenMedia");
// kind, source, grids, token counts, audio_in_video, which tower outputs are set
OMNI_PAYLOAD_JSON(omni::qwen::QwenMedia);
