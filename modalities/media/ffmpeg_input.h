// Internal to omni_media: opening a media file with FFmpeg safely (protocol/format whitelist,
// nested-open guard, interrupt callback) and small helpers shared by MediaReader and probe.
#pragma once

extern "C" {
#include <libavformat/avformat.h>
}

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace omni::media_detail {

// av_strerror as a std::string ("Invalid data found when processing input").
std::string av_error(int errnum);

// Security settings for opening an input.
struct OpenPolicy {
  // Protocols FFmpeg may use, for the file itself and anything it references.
  std::string allowed_protocols = "file,pipe";
  // Allow demuxers that open other resources named inside the file (HLS/DASH playlists, concat
  // lists, SDP/RTSP, IMF) and let them open those resources (still under allowed_protocols).
  bool allow_nested = false;
};

// An opened AVFormatContext plus the state its callbacks point at. Not movable (the callbacks
// hold its address).
class Input {
 public:
  // Opens `path` and reads stream info. Throws InputError naming the file and the reason
  // (including a refused nested open or a refused playlist format). With `memory`, its bytes are
  // read instead (a custom AVIOContext) and `path` only names the input in messages; nothing else
  // is opened (no nested opens unless policy.allow_nested, and those only under the protocol
  // whitelist).
  Input(const std::string& path, const OpenPolicy& policy, std::function<bool()> interrupt,
        std::shared_ptr<const std::string> memory = nullptr);
  ~Input();
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;

  AVFormatContext* ctx() const { return ctx_; }
  const std::string& path() const { return path_; }
  bool interrupted() const { return interrupt_ && interrupt_(); }
  // URLs the file tried to open and that were refused.
  const std::vector<std::string>& refused() const { return refused_; }

 private:
  static int interrupt_cb(void* self);
  static int memory_read(void* self, uint8_t* buf, int size);
  static int64_t memory_seek(void* self, int64_t offset, int whence);
  void free_memory_io();
  static int guarded_io_open(AVFormatContext* s, AVIOContext** pb, const char* url, int flags,
                             AVDictionary** options);

  std::string path_;
  OpenPolicy policy_;
  std::function<bool()> interrupt_;
  AVFormatContext* ctx_ = nullptr;
  int (*default_io_open_)(AVFormatContext*, AVIOContext**, const char*, int,
                          AVDictionary**) = nullptr;
  std::vector<std::string> refused_;
  std::shared_ptr<const std::string> memory_;
  int64_t memory_pos_ = 0;
  AVIOContext* memory_io_ = nullptr;
};

// Rotation to apply to a stream's decoded pictures so they display upright, in clockwise
// degrees (0, 90, 180, 270), from its display-matrix side data (the same rule as ffmpeg's
// autorotate).
int display_rotation_cw(const AVStream* st);
// Counter-clockwise rotation as ffprobe prints it, normalised to [0, 360).
int display_rotation_ccw(const AVStream* st);

// Video streams (attached pictures such as cover art excluded) or audio streams, in file order.
std::vector<int> streams_of_type(const AVFormatContext* fmt, AVMediaType type);
// The stream to decode: `choice` indexes the list above; -1 picks the stream flagged default,
// else FFmpeg's best stream. Returns -1 when the file has none. Throws InputError when `choice`
// is out of range.
int pick_stream(const AVFormatContext* fmt, AVMediaType type, int choice, const std::string& path);

// Quietens FFmpeg's own logging once per process (OMNI_FFMPEG_LOG=info|warning|error|... to see
// it), since damaged files make decoders print per-macroblock errors we already count.
void init_ffmpeg_logging();

}  // namespace omni::media_detail
