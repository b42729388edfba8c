// Safe FFmpeg input opening shared by MediaReader and probe (see ffmpeg_input.h).
#include "modalities/media/ffmpeg_input.h"

extern "C" {
#include <libavutil/display.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
}

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>

#include "core/error.h"

namespace omni::media_detail {

namespace {

// Demuxers that open other resources named by the file's contents (or render text as video).
// A crafted file of one of these kinds must not make us read other files or the network.
const std::set<std::string>& nested_demuxers() {
  static const std::set<std::string> kNames = {
      "hls",    "applehttp", "dash", "concat", "sdp", "rtsp", "rtp", "imf", "tty",
      "mpjpeg",  // multipart: harmless alone, but only ever used for network streams
  };
  return kNames;
}

bool is_nested_demuxer(const char* name) {
  // Demuxer names may be comma lists ("mov,mp4,m4a,..."): match any component.
  std::string s(name ? name : "");
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    if (nested_demuxers().count(s.substr(pos, comma - pos))) return true;
    pos = comma + 1;
  }
  return false;
}

// Every demuxer this FFmpeg has, minus the nested ones, as a format_whitelist value.
const std::string& safe_format_whitelist() {
  static const std::string kList = [] {
    std::string list;
    void* it = nullptr;
    while (const AVInputFormat* f = av_demuxer_iterate(&it)) {
      if (is_nested_demuxer(f->name)) continue;
      if (!list.empty()) list += ',';
      list += f->name;
    }
    return list;
  }();
  return kList;
}

// Names the demuxer FFmpeg would pick for `path` (only used to explain a refusal).
std::string sniff_format(const std::string& path, const std::string& protocols) {
  AVIOContext* pb = nullptr;
  AVDictionary* opts = nullptr;
  av_dict_set(&opts, "protocol_whitelist", protocols.c_str(), 0);
  int ret = avio_open2(&pb, path.c_str(), AVIO_FLAG_READ, nullptr, &opts);
  av_dict_free(&opts);
  if (ret < 0) return {};
  const AVInputFormat* fmt = nullptr;
  ret = av_probe_input_buffer2(pb, &fmt, path.c_str(), nullptr, 0, 1 << 16);
  avio_closep(&pb);
  return ret >= 0 && fmt ? std::string(fmt->name) : std::string();
}

}  // namespace

std::string av_error(int errnum) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  if (av_strerror(errnum, buf, sizeof(buf)) < 0) {
    return "FFmpeg error " + std::to_string(errnum);
  }
  return buf;
}

void init_ffmpeg_logging() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("OMNI_FFMPEG_LOG");
    int level = AV_LOG_FATAL;
    if (env) {
      std::string v(env);
      level = v == "quiet"     ? AV_LOG_QUIET
              : v == "panic"   ? AV_LOG_PANIC
              : v == "error"   ? AV_LOG_ERROR
              : v == "warning" ? AV_LOG_WARNING
              : v == "info"    ? AV_LOG_INFO
              : v == "verbose" ? AV_LOG_VERBOSE
              : v == "debug"   ? AV_LOG_DEBUG
                               : AV_LOG_FATAL;
    }
    // Respect a level the host program already chose.
    if (av_log_get_level() == AV_LOG_INFO) av_log_set_level(level);
    // One block FFmpeg allocates is at most 512 MiB (its own default is INT_MAX): some demuxers
    // allocate a size a header claims before reading it (a 1.2 KB WAV whose LIST chunk claims
    // 4 GB made libavformat allocate 2.1 GB; fuzz/regressions/wav/list-chunk-claims-4gb). The
    // largest block a legitimate input needs is a frame plane of kMaxFramePixels pixels: 402 MB
    // for packed 16-bit RGB. Process-wide (FFmpeg has no per-context limit).
    av_max_alloc(size_t{512} << 20);
  });
}

int Input::interrupt_cb(void* self) {
  auto* in = static_cast<Input*>(self);
  return in->interrupt_ && in->interrupt_() ? 1 : 0;
}

int Input::memory_read(void* self, uint8_t* buf, int size) {
  auto* in = static_cast<Input*>(self);
  const int64_t total = static_cast<int64_t>(in->memory_->size());
  if (in->memory_pos_ >= total) return AVERROR_EOF;
  const int n = static_cast<int>(std::min<int64_t>(size, total - in->memory_pos_));
  std::memcpy(buf, in->memory_->data() + in->memory_pos_, static_cast<size_t>(n));
  in->memory_pos_ += n;
  return n;
}

int64_t Input::memory_seek(void* self, int64_t offset, int whence) {
  auto* in = static_cast<Input*>(self);
  const int64_t total = static_cast<int64_t>(in->memory_->size());
  if (whence & AVSEEK_SIZE) return total;
  whence &= ~AVSEEK_FORCE;
  int64_t base = 0;
  if (whence == SEEK_CUR)
    base = in->memory_pos_;
  else if (whence == SEEK_END)
    base = total;
  else if (whence != SEEK_SET)
    return AVERROR(EINVAL);
  if ((offset > 0 && base > total - offset) || base + offset < 0) return AVERROR(EINVAL);
  if (base + offset > total) return AVERROR(EINVAL);
  in->memory_pos_ = base + offset;
  return in->memory_pos_;
}

void Input::free_memory_io() {
  if (memory_io_) {
    av_freep(&memory_io_->buffer);
    avio_context_free(&memory_io_);
  }
}

int Input::guarded_io_open(AVFormatContext* s, AVIOContext** pb, const char* url, int flags,
                           AVDictionary** options) {
  auto* in = static_cast<Input*>(s->opaque);
  // An input in memory has no file of its own to reopen: every open is a nested one.
  if (!in->policy_.allow_nested && (url == nullptr || in->path_ != url || in->memory_)) {
    in->refused_.push_back(url ? url : "");
    return AVERROR(EPERM);
  }
  return in->default_io_open_(s, pb, url, flags, options);
}

Input::Input(const std::string& path, const OpenPolicy& policy, std::function<bool()> interrupt,
             std::shared_ptr<const std::string> memory)
    : path_(path), policy_(policy), interrupt_(std::move(interrupt)), memory_(std::move(memory)) {
  init_ffmpeg_logging();
  ctx_ = avformat_alloc_context();
  if (!ctx_) throw InputError("media: out of memory opening '" + path + "'");
  ctx_->interrupt_callback.callback = &Input::interrupt_cb;
  ctx_->interrupt_callback.opaque = this;
  ctx_->opaque = this;
  default_io_open_ = ctx_->io_open;
  ctx_->io_open = &Input::guarded_io_open;
  if (memory_) {
    constexpr int kBufferBytes = 1 << 16;
    auto* buf = static_cast<unsigned char*>(av_malloc(kBufferBytes));
    if (buf)
      memory_io_ = avio_alloc_context(buf, kBufferBytes, 0, this, &Input::memory_read, nullptr,
                                      &Input::memory_seek);
    if (!memory_io_) {
      av_free(buf);
      avformat_free_context(ctx_);
      ctx_ = nullptr;
      throw InputError("media: out of memory opening '" + path + "'");
    }
    ctx_->pb = memory_io_;
    ctx_->flags |= AVFMT_FLAG_CUSTOM_IO;
  }

  AVDictionary* opts = nullptr;
  av_dict_set(&opts, "protocol_whitelist", policy.allowed_protocols.c_str(), 0);
  if (!policy.allow_nested)
    av_dict_set(&opts, "format_whitelist", safe_format_whitelist().c_str(), 0);
  int ret = avformat_open_input(&ctx_, path.c_str(), nullptr, &opts);
  av_dict_free(&opts);
  if (ret < 0) {
    ctx_ = nullptr;  // avformat_open_input freed it (but not a custom AVIOContext)
    free_memory_io();
    std::string why = av_error(ret);
    if (!refused_.empty()) {
      why += "; refused to open '" + refused_.front() +
             "' named inside the file (only the file itself may be read; set allow_nested=true "
             "to allow playlists/concat lists)";
    } else if (ret == AVERROR(EINVAL) && !policy.allow_nested && !memory_) {
      std::string fmt = sniff_format(path, policy.allowed_protocols);
      if (!fmt.empty() && is_nested_demuxer(fmt.c_str())) {
        why = "it is a '" + fmt +
              "' file, which references other resources; such formats are refused by default "
              "(set allow_nested=true to allow them)";
      }
    } else if (ret == AVERROR_INVALIDDATA) {
      why += " (not a media file FFmpeg recognises, or empty/damaged beyond its header)";
    }
    throw InputError("media: cannot open '" + path + "': " + why);
  }
  ret = avformat_find_stream_info(ctx_, nullptr);
  if (ret < 0) {
    avformat_close_input(&ctx_);
    free_memory_io();
    throw InputError("media: cannot read stream info of '" + path + "': " + av_error(ret));
  }
}

Input::~Input() {
  if (ctx_) avformat_close_input(&ctx_);
  free_memory_io();
}

int display_rotation_ccw(const AVStream* st) {
  size_t size = 0;
  const uint8_t* m = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
  if (!m || size < 9 * sizeof(int32_t)) return 0;
  double theta = av_display_rotation_get(reinterpret_cast<const int32_t*>(m));
  if (std::isnan(theta)) return 0;
  long deg = std::lround(theta);
  deg = ((deg % 360) + 360) % 360;
  // Snap to the nearest quarter turn; other angles are not produced by real cameras.
  return static_cast<int>(((deg + 45) / 90) % 4 * 90);
}

int display_rotation_cw(const AVStream* st) { return (360 - display_rotation_ccw(st)) % 360; }

std::vector<int> streams_of_type(const AVFormatContext* fmt, AVMediaType type) {
  std::vector<int> out;
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    const AVStream* st = fmt->streams[i];
    if (st->codecpar->codec_type != type) continue;
    if (st->disposition & AV_DISPOSITION_ATTACHED_PIC) continue;
    out.push_back(static_cast<int>(i));
  }
  return out;
}

int pick_stream(const AVFormatContext* fmt, AVMediaType type, int choice, const std::string& path) {
  std::vector<int> cands = streams_of_type(fmt, type);
  const char* kind = av_get_media_type_string(type);
  if (choice >= 0) {
    if (choice >= static_cast<int>(cands.size())) {
      throw InputError("media: '" + path + "' has " + std::to_string(cands.size()) + " " + kind +
                       " stream(s); " + kind + "_stream=" + std::to_string(choice) +
                       " is out of range (expected 0.." + std::to_string(int(cands.size()) - 1) +
                       " or -1 for the default)");
    }
    return cands[choice];
  }
  if (cands.empty()) return -1;
  for (int i : cands) {
    if (fmt->streams[i]->disposition & AV_DISPOSITION_DEFAULT) {
      // Many muxers flag every stream default; it only decides when it singles one out.
      int n_default = 0;
      for (int j : cands) n_default += (fmt->streams[j]->disposition & AV_DISPOSITION_DEFAULT) != 0;
      if (n_default == 1) return i;
      break;
    }
  }
  int best = av_find_best_stream(const_cast<AVFormatContext*>(fmt), type, -1, -1, nullptr, 0);
  for (int i : cands) {
    if (i == best) return i;
  }
  return cands.front();
}

}  // namespace omni::media_detail
