// MediaSource / ImageSource nodes and the media module's registration.
#include "modalities/media/nodes.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "modalities/media/image_reader.h"
#include "modalities/media/sources.h"

namespace omni {

// ---- MediaSource --------------------------------------------------------------------------------

Contract MediaSource::contract() {
  return Contract()
      .doc(
          "Decodes a media file with FFmpeg: upright RGB video frames at their PTS and float PCM "
          "audio chunks. Damaged packets are skipped and counted (damaged_packets).")
      .output<Frame>("video", "RGB8 frames, timestamps = PTS in microseconds")
      .output<AudioChunk>("audio", "float32 PCM chunks at audio_rate, timestamp = first sample")
      .param("path", "", "media file (or pipe:0)")
      .param("video", true, "decode and emit video")
      .param("audio", true, "decode and emit audio")
      .param("fps", 0.0, "sample frames to at most this rate (0 = every frame)")
      .param("max_side", 0, "downscale so the longer side is at most this (0 = keep)")
      .param("audio_rate", 16000, "output sample rate in Hz")
      .param("audio_channels", 1, "output channel count")
      .param("audio_chunk_ms", 1000, "audio chunk length in milliseconds (the last may be shorter)")
      .param("start", 0.0, "start time in seconds")
      .param("end", 0.0, "end time in seconds (0 = to the end)")
      .param("threads", 0, "decoder/scaler threads (0 = automatic)")
      .param("video_stream", -1, "index among the video streams (-1 = default)")
      .param("audio_stream", -1, "index among the audio streams (-1 = default)")
      .param("allowed_protocols", "file,pipe", "FFmpeg protocols the file may use")
      .param("allow_nested", false,
             "allow playlists/concat lists/SDP that open other resources (under allowed_protocols)")
      .param("rebase", true, "timestamps relative to the container start time");
}

void MediaSource::open(Context& ctx) {
  const Params& p = ctx.params();
  MediaReaderOptions o;
  o.path = p.get_string("path");
  if (o.path.empty()) {
    throw ConfigError(
        "param 'path' is empty (expected a "
        "media file; set it with --set " +
        ctx.node_name() + ".path=FILE)");
  }
  o.video = p.get_bool("video");
  o.audio = p.get_bool("audio");
  o.fps = p.get_double("fps");
  o.max_side = static_cast<int>(p.get_int("max_side"));
  o.audio_rate = static_cast<int>(p.get_int("audio_rate"));
  o.audio_channels = static_cast<int>(p.get_int("audio_channels"));
  o.audio_chunk_ms = static_cast<int>(p.get_int("audio_chunk_ms"));
  o.start = p.get_double("start");
  o.end = p.get_double("end");
  o.threads = static_cast<int>(p.get_int("threads"));
  o.video_stream = static_cast<int>(p.get_int("video_stream"));
  o.audio_stream = static_cast<int>(p.get_int("audio_stream"));
  o.allowed_protocols = p.get_string("allowed_protocols");
  o.allow_nested = p.get_bool("allow_nested");
  o.rebase = p.get_bool("rebase");
  o.interrupt = [this] { return ctx_ && ctx_->stop_requested(); };
  ctx_ = &ctx;
  reader_ = std::make_unique<MediaReader>(std::move(o));
  ctx_ = nullptr;
  video_port_ = ctx.output_port("video");
  audio_port_ = ctx.output_port("audio");
  // Streams the file lacks (or that are disabled) end now, so sync consumers never wait on them.
  if (!reader_->has_video()) ctx.close_output(video_port_);
  if (!reader_->has_audio()) ctx.close_output(audio_port_);
}

Flow MediaSource::process(Context& ctx) {
  ctx_ = &ctx;
  MediaReader::Item item;
  bool more = reader_->next(item);
  ctx_ = nullptr;
  if (more) {
    if (item.kind == MediaReader::Item::Kind::kVideo) {
      Timestamp ts(item.frame.pts_us);
      ctx.emit(video_port_, Packet::make<Frame>(ts, std::move(item.frame)));
    } else {
      Timestamp ts(item.audio.start_us);
      ctx.emit(audio_port_, Packet::make<AudioChunk>(ts, std::move(item.audio)));
    }
  }
  report(ctx);
  return more ? Flow::kContinue : Flow::kDone;
}

void MediaSource::report(Context& ctx) {
  const MediaReaderStats& s = reader_->stats();
  if (s.damaged_packets != reported_.damaged_packets)
    ctx.count("damaged_packets", s.damaged_packets - reported_.damaged_packets);
  if (s.corrupt_frames != reported_.corrupt_frames)
    ctx.count("corrupt_frames", s.corrupt_frames - reported_.corrupt_frames);
  if (s.frames_out_of_order != reported_.frames_out_of_order)
    ctx.count("frames_out_of_order", s.frames_out_of_order - reported_.frames_out_of_order);
  if (s.truncated && !reported_.truncated) {
    ctx.count("truncated", 1);
    ctx.warn("MediaSource: '" + reader_->options().path +
             "' ends early (truncated or unreadable tail)");
  }
  reported_ = s;
}

void MediaSource::close(Context& ctx) {
  if (!reader_) return;
  report(ctx);
  if (reader_->stats().damaged_packets > 0) {
    ctx.warn("MediaSource: '" + reader_->options().path + "': skipped " +
             std::to_string(reader_->stats().damaged_packets) + " damaged packet(s)");
  }
  reader_.reset();  // frees decoders now rather than when the graph is destroyed
}

// ---- ImageSource --------------------------------------------------------------------------------

Contract ImageSource::contract() {
  return Contract()
      .doc(
          "Reads images with OpenCV (a file, a list, or a folder filtered by a glob, sorted) and "
          "emits each as an upright RGB8 Frame.")
      .output<Frame>("video", "one RGB8 frame per image")
      .param("path", "", "an image file or a folder")
      .param("paths", StringList{}, "more files or folders, after `path`")
      .param("pattern", "", "glob for folder entries (empty = known image extensions)")
      .param("spacing", 0.0, "seconds between images (0 = timestamps 0,1,2,... microseconds)")
      .param("on_error", "skip", "unreadable image: skip (warn and count) | fail");
}

void ImageSource::open(Context& ctx) {
  const Params& p = ctx.params();
  std::vector<std::string> entries;
  if (!p.get_string("path").empty()) entries.push_back(p.get_string("path"));
  for (const std::string& e : p.get_list("paths")) entries.push_back(e);
  if (entries.empty()) {
    throw ConfigError("set `path` (file or folder) or `paths` (list)");
  }
  const std::string& on_error = p.get_string("on_error");
  if (on_error != "skip" && on_error != "fail") {
    throw ConfigError("on_error must be skip or fail, got '" + on_error + "'");
  }
  skip_errors_ = on_error == "skip";
  double spacing = p.get_double("spacing");
  if (spacing < 0) throw ConfigError("spacing must be >= 0");
  spacing_us_ = spacing > 0 ? std::max<int64_t>(1, std::llround(spacing * 1e6)) : 1;
  files_ = list_images(entries, p.get_string("pattern"));
  port_ = ctx.output_port("video");
}

Flow ImageSource::process(Context& ctx) {
  while (next_ < files_.size() && !ctx.stop_requested()) {
    size_t i = next_++;
    Frame f;
    try {
      f.rgb = load_image_rgb(files_[i]);
    } catch (const InputError& e) {
      if (!skip_errors_) throw;
      ctx.count("unreadable_images", 1);
      ctx.warn(e.what());
      continue;
    }
    // Timestamps follow the file's position, so a skipped file leaves a gap, not a shift.
    f.pts_us = static_cast<int64_t>(i) * spacing_us_;
    f.index = emitted_++;
    Timestamp ts(f.pts_us);
    ctx.emit(port_, Packet::make<Frame>(ts, std::move(f)));
    return next_ < files_.size() ? Flow::kContinue : Flow::kDone;
  }
  return Flow::kDone;
}

// ---- registration -------------------------------------------------------------------------------

void register_media_nodes(Registry& registry) {
  registry.add<MediaSource>("MediaSource");
  registry.add<ImageSource>("ImageSource");
}

}  // namespace omni
