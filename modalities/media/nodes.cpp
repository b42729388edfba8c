// MediaSource / ImageSource nodes and the media module's registration.
#include "modalities/media/nodes.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

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
      .output(kVideo)
      .output(kAudio)
      .param(kPath)
      .param(kDecodeVideo)
      .param(kDecodeAudio)
      .param(kFps)
      .param(kMaxSide)
      .param(kAudioRate)
      .param(kAudioChannels)
      .param(kAudioChunkMs)
      .param(kStart)
      .param(kEnd)
      .param(kThreads)
      .param(kVideoStream)
      .param(kAudioStream)
      .param(kAllowedProtocols)
      .param(kAllowNested)
      .param(kRebase)
      .param(kSpeed);
}

void MediaSource::open(Context& ctx) {
  MediaReaderOptions o;
  o.path = ctx.param(kPath);
  if (o.path.empty()) {
    throw ConfigError(
        "param 'path' is empty (expected a "
        "media file; set it with --set " +
        ctx.node_name() + ".path=FILE)");
  }
  o.video = ctx.param(kDecodeVideo);
  o.audio = ctx.param(kDecodeAudio);
  o.fps = ctx.param(kFps);
  o.max_side = ctx.param(kMaxSide);
  o.audio_rate = ctx.param(kAudioRate);
  o.audio_channels = ctx.param(kAudioChannels);
  o.audio_chunk_ms = ctx.param(kAudioChunkMs);
  o.start = ctx.param(kStart);
  o.end = ctx.param(kEnd);
  o.threads = ctx.param(kThreads);
  o.video_stream = ctx.param(kVideoStream);
  o.audio_stream = ctx.param(kAudioStream);
  o.allowed_protocols = ctx.param(kAllowedProtocols);
  o.allow_nested = ctx.param(kAllowNested);
  o.rebase = ctx.param(kRebase);
  speed_ = ctx.param(kSpeed);
  if (!(speed_ >= 0) || !std::isfinite(speed_))
    throw ConfigError("param 'speed' must be >= 0 (0 = as fast as decoded), got " +
                      std::to_string(speed_));
  o.interrupt = [this] { return ctx_ && ctx_->stop_requested(); };
  ctx_ = &ctx;
  reader_ = std::make_unique<MediaReader>(std::move(o));
  ctx_ = nullptr;
  // Streams the file lacks (or that are disabled) end now, so sync consumers never wait on them.
  if (!reader_->has_video()) ctx.close_output(kVideo);
  if (!reader_->has_audio()) ctx.close_output(kAudio);
}

Flow MediaSource::process(Context& ctx) {
  ctx_ = &ctx;
  MediaReader::Item item;
  bool more = reader_->next(item);
  ctx_ = nullptr;
  if (more) {
    const bool video = item.kind == MediaReader::Item::Kind::kVideo;
    if (speed_ > 0) pace(ctx, video ? item.frame.pts_us : item.audio.end_us());
    if (video) {
      Timestamp ts(item.frame.pts_us);
      ctx.emit(kVideo, std::move(item.frame), ts);
    } else {
      Timestamp ts(item.audio.start_us);
      ctx.emit(kAudio, std::move(item.audio), ts);
    }
  }
  report(ctx);
  return more ? Flow::kContinue : Flow::kDone;
}

void MediaSource::pace(Context& ctx, int64_t media_us) {
  using Clock = std::chrono::steady_clock;
  if (!started_) {
    start_ = Clock::now();
    started_ = true;
  }
  const auto due =
      start_ + std::chrono::microseconds(static_cast<int64_t>(double(media_us) / speed_));
  // In slices, so a cancelled graph does not wait for the rest of the clip.
  while (!ctx.stop_requested()) {
    const auto now = Clock::now();
    if (now >= due) break;
    std::this_thread::sleep_for(
        std::min<Clock::duration>(due - now, std::chrono::milliseconds(50)));
  }
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
      .output(kVideo)
      .param(kPath)
      .param(kPaths)
      .param(kPattern)
      .param(kSpacing)
      .param(kOnError);
}

void ImageSource::open(Context& ctx) {
  std::vector<std::string> entries;
  if (!ctx.param(kPath).empty()) entries.push_back(ctx.param(kPath));
  for (const std::string& e : ctx.param(kPaths)) entries.push_back(e);
  if (entries.empty()) {
    throw ConfigError("set `path` (file or folder) or `paths` (list)");
  }
  const std::string& on_error = ctx.param(kOnError);
  if (on_error != "skip" && on_error != "fail") {
    throw ConfigError("on_error must be skip or fail, got '" + on_error + "'");
  }
  skip_errors_ = on_error == "skip";
  double spacing = ctx.param(kSpacing);
  if (spacing < 0) throw ConfigError("spacing must be >= 0");
  spacing_us_ = spacing > 0 ? std::max<int64_t>(1, std::llround(spacing * 1e6)) : 1;
  files_ = list_images(entries, ctx.param(kPattern));
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
    ctx.emit(kVideo, std::move(f), ts);
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
