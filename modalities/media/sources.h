// The media source nodes: MediaSource (FFmpeg, video + audio) and ImageSource (OpenCV images).
// Register them with register_media_nodes() (nodes.h) or add them to a GraphBuilder by class.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/contract.h"
#include "core/node.h"
#include "modalities/media/media_reader.h"

namespace omni {

// Decodes a media file: `video` emits upright RGB Frames at their PTS, `audio` float PCM
// AudioChunks at `audio_rate`. Counters: damaged_packets, corrupt_frames, frames_out_of_order.
class MediaSource : public Node {
 public:
  static constexpr Output<Frame> kVideo{"video", "RGB8 frames, timestamps = PTS in microseconds"};
  static constexpr Output<AudioChunk> kAudio{
      "audio", "float32 PCM chunks at audio_rate, timestamp = first sample"};
  static constexpr Param<std::string> kPath{"path", "", "media file (or pipe:0)"};
  static constexpr Param<bool> kDecodeVideo{"video", true, "decode and emit video"};
  static constexpr Param<bool> kDecodeAudio{"audio", true, "decode and emit audio"};
  static constexpr Param<double> kFps{"fps", 0.0,
                                      "sample frames to at most this rate (0 = every frame)"};
  static constexpr Param<int> kMaxSide{"max_side", 0,
                                       "downscale so the longer side is at most this (0 = keep)"};
  static constexpr Param<int> kAudioRate{"audio_rate", 16000, "output sample rate in Hz"};
  static constexpr Param<int> kAudioChannels{"audio_channels", 1, "output channel count"};
  static constexpr Param<int> kAudioChunkMs{
      "audio_chunk_ms", 1000, "audio chunk length in milliseconds (the last may be shorter)"};
  static constexpr Param<double> kStart{"start", 0.0, "start time in seconds"};
  static constexpr Param<double> kEnd{"end", 0.0, "end time in seconds (0 = to the end)"};
  static constexpr Param<int> kThreads{"threads", 0, "decoder/scaler threads (0 = automatic)"};
  static constexpr Param<int> kVideoStream{"video_stream", -1,
                                           "index among the video streams (-1 = default)"};
  static constexpr Param<int> kAudioStream{"audio_stream", -1,
                                           "index among the audio streams (-1 = default)"};
  static constexpr Param<std::string> kAllowedProtocols{"allowed_protocols", "file,pipe",
                                                        "FFmpeg protocols the file may use"};
  static constexpr Param<bool> kAllowNested{
      "allow_nested", false,
      "allow playlists/concat lists/SDP that open other resources (under allowed_protocols)"};
  static constexpr Param<bool> kRebase{"rebase", true,
                                       "timestamps relative to the container start time"};
  static constexpr Param<double> kSpeed{
      "speed", 0.0,
      "play like a live recording: each frame is released at its timestamp and each audio chunk "
      "at its end, relative to the first output, divided by speed (1 = real time; 0 = as fast "
      "as decoded)"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;
  void close(Context& ctx) override;

 private:
  void report(Context& ctx);
  void pace(Context& ctx, int64_t media_us);  // sleeps until media_us is due (speed > 0)
  std::unique_ptr<MediaReader> reader_;
  double speed_ = 0;
  std::chrono::steady_clock::time_point start_;
  bool started_ = false;
  Context* ctx_ = nullptr;  // the context of the call in progress, for the interrupt callback
  MediaReaderStats reported_;
};

// One Frame per image file (a file, a list, or a folder filtered by a glob), timestamps
// 0,1,2,... (microseconds) or `spacing` seconds apart.
class ImageSource : public Node {
 public:
  static constexpr Output<Frame> kVideo{"video", "one RGB8 frame per image"};
  static constexpr Param<std::string> kPath{"path", "", "an image file or a folder"};
  static constexpr Param<StringList> kPaths{"paths", {}, "more files or folders, after `path`"};
  static constexpr Param<std::string> kPattern{
      "pattern", "", "glob for folder entries (empty = known image extensions)"};
  static constexpr Param<double> kSpacing{
      "spacing", 0.0, "seconds between images (0 = timestamps 0,1,2,... microseconds)"};
  static constexpr Param<std::string> kOnError{"on_error", "skip",
                                               "unreadable image: skip (warn and count) | fail"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

 private:
  std::vector<std::string> files_;
  size_t next_ = 0;
  int64_t emitted_ = 0;
  int64_t spacing_us_ = 1;
  bool skip_errors_ = false;
};

}  // namespace omni
