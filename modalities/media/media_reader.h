// MediaReader: decodes one media file (any container/codec FFmpeg reads) into upright RGB frames
// and float PCM chunks. Usable without the graph; the MediaSource node wraps it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "modalities/common/audio_chunk.h"
#include "modalities/media/frame.h"

namespace omni {

// The largest video frame decoded (pixels, e.g. 8192 x 8192): a file claiming more is an
// InputError before the decoder allocates it.
inline constexpr int64_t kMaxFramePixels = int64_t{1} << 26;

struct MediaReaderOptions {
  std::string path;
  // When set, the media is these bytes (read through a custom AVIOContext) and `path` only names
  // it in messages. Nothing else is opened; allowed_protocols / allow_nested still govern any
  // resource the data names.
  std::shared_ptr<const std::string> data = nullptr;
  bool video = true;  // decode and emit video frames
  bool audio = true;  // decode and emit audio chunks
  double fps = 0;     // sample frames to at most this rate (0 = every frame)
  int max_side = 0;   // downscale so the longer side is at most this (0 = keep)
  int audio_rate = 16000;
  int audio_channels = 1;
  int audio_chunk_ms = 1000;
  double start = 0;       // seconds (media time, see `rebase`)
  double end = 0;         // seconds; <= 0 = to the end
  int threads = 0;        // decoder and scaler threads (0 = FFmpeg's automatic choice)
  int video_stream = -1;  // index among the file's video streams; -1 = the default one
  int audio_stream = -1;  // index among the file's audio streams; -1 = the default one
  std::string allowed_protocols = "file,pipe";
  bool allow_nested = false;  // allow playlists / concat lists / SDP (see ffmpeg_input.h)
  // Timestamps relative to the container's start time (so the first packet is near 0, and audio
  // and video stay aligned). false = raw stream PTS in microseconds.
  bool rebase = true;
  // Polled during blocking I/O and between packets; returning true stops reading promptly.
  std::function<bool()> interrupt;
};

// What a reader has seen so far.
struct MediaReaderStats {
  int64_t packets = 0;          // packets read from the selected streams
  int64_t damaged_packets = 0;  // packets the demuxer/decoder rejected or flagged corrupt (skipped)
  int64_t corrupt_frames = 0;   // frames decoded with concealed errors (still emitted)
  int64_t frames_decoded = 0;   // video frames out of the decoder
  int64_t frames_emitted = 0;   // after start/end, fps sampling and the monotonic check
  int64_t frames_out_of_order = 0;  // dropped because their PTS did not increase
  int64_t audio_chunks = 0;
  int64_t audio_samples = 0;  // per channel, emitted
  bool truncated = false;     // the file ended inside a packet or with a read error
};

class MediaReader {
 public:
  // One decoded item; exactly one of frame / audio is meaningful, as `kind` says.
  struct Item {
    enum class Kind { kNone, kVideo, kAudio } kind = Kind::kNone;
    Frame frame;
    AudioChunk audio;
  };

  // Opens the file and its decoders. Throws InputError (file, reason) or ConfigError (bad option).
  explicit MediaReader(MediaReaderOptions options);
  ~MediaReader();
  MediaReader(const MediaReader&) = delete;
  MediaReader& operator=(const MediaReader&) = delete;

  // The next item in the order the file yields them (video frames in increasing PTS order,
  // audio chunks in increasing start order; the two are interleaved). False at the end, or when
  // interrupted.
  bool next(Item& out);

  bool has_video() const;  // a video stream is selected and decodable
  bool has_audio() const;
  int video_stream_index() const;  // container stream index, -1 if none
  int audio_stream_index() const;
  int rotation() const;       // clockwise degrees applied to frames (0/90/180/270)
  double duration_s() const;  // container duration, 0 if unknown
  const MediaReaderStats& stats() const;
  const MediaReaderOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace omni
