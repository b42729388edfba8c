// The media source nodes: MediaSource (FFmpeg, video + audio) and ImageSource (OpenCV images).
// Register them with register_media_nodes() (nodes.h) or add them to a GraphBuilder by class.
#pragma once

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
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;
  void close(Context& ctx) override;

 private:
  void report(Context& ctx);
  std::unique_ptr<MediaReader> reader_;
  Context* ctx_ = nullptr;  // the context of the call in progress, for the interrupt callback
  MediaReaderStats reported_;
  int video_port_ = -1, audio_port_ = -1;
};

// One Frame per image file (a file, a list, or a folder filtered by a glob), timestamps
// 0,1,2,... (microseconds) or `spacing` seconds apart.
class ImageSource : public Node {
 public:
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

 private:
  std::vector<std::string> files_;
  size_t next_ = 0;
  int64_t emitted_ = 0;
  int64_t spacing_us_ = 1;
  bool skip_errors_ = false;
  int port_ = -1;
};

}  // namespace omni
