// MediaReader: FFmpeg demux -> decode -> swscale/swresample, with damaged-input handling.
#include "modalities/media/media_reader.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
}

#include <opencv2/core.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <deque>
#include <limits>
#include <vector>

#include "core/error.h"
#include "modalities/media/ffmpeg_input.h"

namespace omni {

using media_detail::av_error;

namespace {

constexpr AVRational kMicros{1, 1000000};
// Frames kept for reuse; a buffer is reused only once no consumer holds it any more.
constexpr size_t kPoolSize = 24;
// Give up on a file after this many read errors in a row (a damaged tail, not a damaged packet).
constexpr int kMaxConsecutiveReadErrors = 64;

struct CodecCtxDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
using CodecCtxPtr = std::unique_ptr<AVCodecContext, CodecCtxDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;

// The deprecated full-range "J" formats: swscale wants the plain format plus a range flag.
AVPixelFormat unjpeg(AVPixelFormat f, bool& full_range) {
  switch (f) {
    case AV_PIX_FMT_YUVJ420P:
      full_range = true;
      return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P:
      full_range = true;
      return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P:
      full_range = true;
      return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P:
      full_range = true;
      return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P:
      full_range = true;
      return AV_PIX_FMT_YUV411P;
    default:
      return f;
  }
}

bool only_owner(const cv::Mat& m) {
  return m.u && std::atomic_ref<int>(m.u->refcount).load(std::memory_order_acquire) == 1;
}

}  // namespace

struct MediaReader::Impl {
  MediaReaderOptions opt;
  std::unique_ptr<media_detail::Input> input;
  AVFormatContext* fmt = nullptr;
  MediaReaderStats stats;

  struct Decoder {
    int stream = -1;
    CodecCtxPtr ctx;
    AVRational time_base{0, 1};
    bool done = false;  // flushed, or past `end`
  };
  Decoder vdec, adec;
  PacketPtr pkt{av_packet_alloc()};
  FramePtr frame{av_frame_alloc()};
  std::deque<Item> ready;
  bool finished = false;
  int consecutive_read_errors = 0;

  int64_t base_us = 0;   // subtracted from every timestamp (container start time)
  int64_t start_us = 0;  // media time bounds after rebasing
  int64_t end_us = std::numeric_limits<int64_t>::max();

  // Video state.
  int rotation_cw = 0;
  int64_t last_video_us = std::numeric_limits<int64_t>::min();
  int64_t next_sample_us = std::numeric_limits<int64_t>::min();
  int64_t video_index = 0;
  SwsContext* sws = nullptr;
  struct SwsKey {
    int w = 0, h = 0, fmt = -1, ow = 0, oh = 0, cs = -1, full = -1;
    bool operator==(const SwsKey&) const = default;
  } sws_key;
  cv::Mat scratch;  // unrotated RGB before cv::rotate (reused)
  std::vector<cv::Mat> pool;

  // Audio state.
  SwrContext* swr = nullptr;
  struct SwrKey {
    int rate = 0, fmt = -1;
    AVChannelLayout layout{};
  } swr_key;
  std::vector<float> conv;     // resampler output (reused)
  std::vector<float> pending;  // samples not yet emitted as a chunk
  int64_t audio_origin_us = std::numeric_limits<int64_t>::min();  // time of output sample 0
  int64_t produced = 0;       // output samples (per channel) produced since audio_origin_us
  int64_t pending_first = 0;  // output sample index of pending[0]
  int64_t chunk_frames = 0;

  ~Impl() {
    sws_freeContext(sws);
    swr_free(&swr);
    av_channel_layout_uninit(&swr_key.layout);
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw InputError("MediaSource: '" + opt.path + "': " + what);
  }

  void validate() {
    auto bad = [&](const std::string& m) {
      throw ConfigError("MediaSource '" + opt.path + "': " + m);
    };
    if (opt.fps < 0) bad("fps must be >= 0 (0 = every frame), got " + std::to_string(opt.fps));
    if (opt.max_side < 0) bad("max_side must be >= 0, got " + std::to_string(opt.max_side));
    if (opt.audio_rate < 1000 || opt.audio_rate > 384000)
      bad("audio_rate must be in 1000..384000 Hz, got " + std::to_string(opt.audio_rate));
    if (opt.audio_channels < 1 || opt.audio_channels > 8)
      bad("audio_channels must be in 1..8, got " + std::to_string(opt.audio_channels));
    if (opt.audio_chunk_ms < 1)
      bad("audio_chunk_ms must be >= 1, got " + std::to_string(opt.audio_chunk_ms));
    if (opt.start < 0) bad("start must be >= 0 seconds");
    if (opt.end > 0 && opt.end <= opt.start)
      bad("end must be > start (or <= 0 for the whole file)");
    if (opt.threads < 0) bad("threads must be >= 0 (0 = automatic)");
    if (opt.path.empty()) bad("path is empty");
  }

  void open() {
    validate();
    media_detail::OpenPolicy policy{opt.allowed_protocols, opt.allow_nested};
    input = std::make_unique<media_detail::Input>(opt.path, policy, opt.interrupt, opt.data);
    fmt = input->ctx();
    if (opt.rebase && fmt->start_time != AV_NOPTS_VALUE) base_us = fmt->start_time;
    start_us = static_cast<int64_t>(std::llround(opt.start * 1e6));
    if (opt.end > 0) end_us = static_cast<int64_t>(std::llround(opt.end * 1e6));

    int vs = opt.video
                 ? media_detail::pick_stream(fmt, AVMEDIA_TYPE_VIDEO, opt.video_stream, opt.path)
                 : -1;
    int as = opt.audio
                 ? media_detail::pick_stream(fmt, AVMEDIA_TYPE_AUDIO, opt.audio_stream, opt.path)
                 : -1;
    if (vs >= 0) open_decoder(vdec, vs);
    if (as >= 0) open_decoder(adec, as);
    if (vdec.stream < 0 && adec.stream < 0) {
      std::string want = opt.video && opt.audio ? "audio or video" : opt.video ? "video" : "audio";
      if (!opt.video && !opt.audio) fail("both video and audio are disabled; nothing to decode");
      fail("no decodable " + want + " stream (the file has " + std::to_string(fmt->nb_streams) +
           " stream(s), format '" + fmt->iformat->name + "')");
    }
    // Every other stream is skipped by the demuxer.
    for (unsigned i = 0; i < fmt->nb_streams; ++i) {
      if (int(i) != vdec.stream && int(i) != adec.stream) fmt->streams[i]->discard = AVDISCARD_ALL;
    }
    if (vdec.stream >= 0)
      rotation_cw = media_detail::display_rotation_cw(fmt->streams[vdec.stream]);
    chunk_frames = std::max<int64_t>(1, int64_t(opt.audio_rate) * opt.audio_chunk_ms / 1000);
    if (start_us > 0) {
      int ret = av_seek_frame(fmt, -1, base_us + start_us, AVSEEK_FLAG_BACKWARD);
      // Not seekable (a pipe): decode from the beginning and drop what is before `start`.
      (void)ret;
    }
  }

  void open_decoder(Decoder& d, int stream) {
    AVStream* st = fmt->streams[stream];
    const AVCodec* codec = avcodec_find_decoder(st->codecpar->codec_id);
    const char* kind = av_get_media_type_string(st->codecpar->codec_type);
    if (!codec) {
      fail(std::string("no decoder for the ") + kind + " codec '" +
           avcodec_get_name(st->codecpar->codec_id) + "' (stream " + std::to_string(stream) + ")");
    }
    CodecCtxPtr ctx(avcodec_alloc_context3(codec));
    if (!ctx) fail("out of memory allocating a decoder");
    int ret = avcodec_parameters_to_context(ctx.get(), st->codecpar);
    if (ret < 0) fail(std::string("bad ") + kind + " codec parameters: " + av_error(ret));
    ctx->pkt_timebase = st->time_base;
    ctx->thread_count = opt.threads;
    ctx->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    // The decoder refuses pictures above the cap before allocating them (a header may claim any
    // size); convert_video checks again for what reaches us.
    ctx->max_pixels = kMaxFramePixels;
    if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
        int64_t(st->codecpar->width) * st->codecpar->height > kMaxFramePixels)
      fail("the video stream claims " + std::to_string(st->codecpar->width) + "x" +
           std::to_string(st->codecpar->height) + " pixels, more than the limit of " +
           std::to_string(kMaxFramePixels) + " per frame");
    ret = avcodec_open2(ctx.get(), codec, nullptr);
    if (ret < 0) {
      fail(std::string("cannot open the ") + kind + " decoder '" + codec->name +
           "': " + av_error(ret));
    }
    d.stream = stream;
    d.ctx = std::move(ctx);
    d.time_base = st->time_base;
  }

  bool interrupted() const { return opt.interrupt && opt.interrupt(); }

  bool all_done() const { return (vdec.stream < 0 || vdec.done) && (adec.stream < 0 || adec.done); }

  // Reads and decodes until something is ready or the file is finished.
  void step() {
    if (interrupted()) {
      finished = true;
      return;
    }
    if (all_done()) {
      finish_audio();
      finished = true;
      return;
    }
    int ret = av_read_frame(fmt, pkt.get());
    if (ret < 0) {
      if (ret == AVERROR(EAGAIN)) return;
      if (ret == AVERROR_EXIT || interrupted()) {
        finished = true;
        return;
      }
      if (ret != AVERROR_EOF) {
        // A read error at the end of the data is a truncated file; elsewhere a damaged region
        // the demuxer may resync past.
        bool at_end = fmt->pb && avio_feof(fmt->pb);
        ++stats.damaged_packets;
        stats.truncated = stats.truncated || at_end;
        if (!at_end && ++consecutive_read_errors < kMaxConsecutiveReadErrors) return;
        stats.truncated = true;
      }
      flush_decoder(vdec);
      flush_decoder(adec);
      finish_audio();
      finished = true;
      return;
    }
    consecutive_read_errors = 0;
    Decoder* d = pkt->stream_index == vdec.stream   ? &vdec
                 : pkt->stream_index == adec.stream ? &adec
                                                    : nullptr;
    if (d && !d->done) {
      ++stats.packets;
      if (pkt->flags & AV_PKT_FLAG_CORRUPT) {
        ++stats.damaged_packets;  // skipped: decoding it would only smear garbage
      } else {
        decode_packet(*d, pkt.get());
      }
    }
    av_packet_unref(pkt.get());
  }

  void decode_packet(Decoder& d, const AVPacket* p) {
    int ret = avcodec_send_packet(d.ctx.get(), p);
    if (ret < 0 && ret != AVERROR(EAGAIN) && ret != AVERROR_EOF) {
      ++stats.damaged_packets;  // e.g. AVERROR_INVALIDDATA: skip the packet, keep going
      return;
    }
    receive_frames(d);
    if (ret == AVERROR(EAGAIN)) {
      // The decoder was full; it has been drained, so this send succeeds.
      if (avcodec_send_packet(d.ctx.get(), p) < 0) ++stats.damaged_packets;
      receive_frames(d);
    }
  }

  void flush_decoder(Decoder& d) {
    if (d.stream < 0 || d.done) return;
    if (avcodec_send_packet(d.ctx.get(), nullptr) >= 0) receive_frames(d);
    d.done = true;
  }

  void receive_frames(Decoder& d) {
    for (int errors = 0; errors < 1000;) {
      int ret = avcodec_receive_frame(d.ctx.get(), frame.get());
      if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return;
      if (ret < 0) {
        ++stats.damaged_packets;
        ++errors;
        continue;
      }
      if (frame->decode_error_flags || (frame->flags & AV_FRAME_FLAG_CORRUPT))
        ++stats.corrupt_frames;
      if (!d.done) {
        if (&d == &vdec)
          on_video_frame();
        else
          on_audio_frame();
      }
      av_frame_unref(frame.get());
    }
  }

  int64_t frame_time_us(const Decoder& d) const {
    int64_t t = frame->best_effort_timestamp;
    if (t == AV_NOPTS_VALUE) t = frame->pts;
    if (t == AV_NOPTS_VALUE) return AV_NOPTS_VALUE;
    return av_rescale_q(t, d.time_base, kMicros) - base_us;
  }

  // ---- video ---------------------------------------------------------------------------------
  void on_video_frame() {
    ++stats.frames_decoded;
    int64_t ts = frame_time_us(vdec);
    if (ts == AV_NOPTS_VALUE) {
      // No timestamp at all: continue from the previous frame at the stream's nominal rate.
      AVRational r = av_guess_frame_rate(fmt, fmt->streams[vdec.stream], nullptr);
      int64_t step = r.num > 0 ? av_rescale_q(1, av_inv_q(r), kMicros) : 40000;
      ts = last_video_us == std::numeric_limits<int64_t>::min() ? 0 : last_video_us + step;
    }
    if (ts < start_us) return;  // before the requested range: never converted
    if (ts >= end_us) {
      vdec.done = true;
      return;
    }
    if (ts <= last_video_us) {
      ++stats.frames_out_of_order;
      return;
    }
    if (opt.fps > 0) {
      if (ts < next_sample_us) return;  // sampled out: never converted
      // Next grid point strictly after this frame (grid anchored at `start`).
      double k = std::floor(double(ts - start_us) * opt.fps / 1e6) + 1;
      next_sample_us = start_us + static_cast<int64_t>(std::ceil(k * 1e6 / opt.fps));
    }
    last_video_us = ts;
    Item item;
    item.kind = Item::Kind::kVideo;
    item.frame.rgb = convert_video();
    item.frame.pts_us = ts;
    item.frame.index = video_index++;
    ++stats.frames_emitted;
    ready.push_back(std::move(item));
  }

  // An RGB image swscale may write into: rows 64-byte aligned and one spare row after the last.
  // swscale's SIMD output stores whole vectors, so a row whose byte length is not a multiple of
  // the vector size (e.g. 360 px = 1080 bytes) is written a few bytes past its end: into the
  // padding here, past the allocation with a tight cv::Mat (heap corruption, seen on 360x640).
  static cv::Mat padded_rgb(int rows, int cols) {
    const int step_px = (cols + 63) / 64 * 64;  // 64 px = 192 bytes: a multiple of 64 and of 3
    cv::Mat backing(rows + 1, step_px, CV_8UC3);
    return backing(cv::Rect(0, 0, cols, rows));
  }

  // A buffer no consumer holds any more, or a new one.
  cv::Mat acquire(int rows, int cols) {
    for (cv::Mat& m : pool) {
      if (m.rows == rows && m.cols == cols && only_owner(m)) return m;
    }
    cv::Mat fresh = padded_rgb(rows, cols);
    if (pool.size() < kPoolSize) {
      pool.push_back(fresh);
    } else {
      // Replace an idle buffer of another size (the size changed mid-stream), else don't pool.
      for (cv::Mat& m : pool) {
        if (only_owner(m)) {
          m = fresh;
          break;
        }
      }
    }
    return fresh;
  }

  void output_size(int w, int h, int& ow, int& oh) const {
    ow = w;
    oh = h;
    int longer = std::max(w, h);
    if (opt.max_side > 0 && longer > opt.max_side) {
      double s = double(opt.max_side) / longer;
      ow = std::max(1, int(std::lround(w * s)));
      oh = std::max(1, int(std::lround(h * s)));
    }
  }

  void scale_into(cv::Mat& dst) {
    AVFrame* out = av_frame_alloc();
    if (!out) fail("out of memory converting a frame");
    out->format = AV_PIX_FMT_RGB24;
    out->width = dst.cols;
    out->height = dst.rows;
    out->data[0] = dst.data;
    out->linesize[0] = static_cast<int>(dst.step[0]);
    // swscale writes into buffers it can reference; this one is owned by the cv::Mat.
    out->buf[0] = av_buffer_create(
        dst.data, dst.step[0] * dst.rows, [](void*, uint8_t*) {}, nullptr, 0);
    AVPixelFormat saved = AVPixelFormat(frame->format);
    bool full = false;
    frame->format = unjpeg(saved, full);
    int ret = out->buf[0] ? sws_scale_frame(sws, out, frame.get()) : AVERROR(ENOMEM);
    frame->format = saved;
    av_frame_free(&out);
    if (ret < 0) fail("cannot convert a video frame to RGB: " + av_error(ret));
  }

  cv::Mat convert_video() {
    int w = frame->width, h = frame->height;
    if (w <= 0 || h <= 0 || int64_t(w) * h > kMaxFramePixels)
      fail("a decoded frame is " + std::to_string(w) + "x" + std::to_string(h) +
           " pixels (outside 1.." + std::to_string(kMaxFramePixels) + " per frame)");
    int ow, oh;
    output_size(w, h, ow, oh);
    bool full = frame->color_range == AVCOL_RANGE_JPEG;
    AVPixelFormat src = unjpeg(AVPixelFormat(frame->format), full);
    int cs = frame->colorspace == AVCOL_SPC_UNSPECIFIED || frame->colorspace == AVCOL_SPC_RGB
                 ? SWS_CS_DEFAULT
                 : int(frame->colorspace);
    SwsKey key{w, h, int(src), ow, oh, cs, full ? 1 : 0};
    if (!sws || !(key == sws_key)) {
      sws_freeContext(sws);
      sws = sws_alloc_context();
      if (!sws) fail("out of memory creating a scaler");
      av_opt_set_int(sws, "srcw", w, 0);
      av_opt_set_int(sws, "srch", h, 0);
      av_opt_set_int(sws, "src_format", src, 0);
      av_opt_set_int(sws, "dstw", ow, 0);
      av_opt_set_int(sws, "dsth", oh, 0);
      av_opt_set_int(sws, "dst_format", AV_PIX_FMT_RGB24, 0);
      // No SWS_ACCURATE_RND: it disables the SIMD YUV->RGB paths (several times slower).
      av_opt_set_int(sws, "sws_flags", ow == w && oh == h ? SWS_BICUBIC : SWS_AREA, 0);
      av_opt_set_int(sws, "threads", opt.threads, 0);
      int ret = sws_init_context(sws, nullptr, nullptr);
      if (ret < 0) {
        sws_freeContext(sws);
        sws = nullptr;
        fail(std::string("cannot convert pixel format '") + av_get_pix_fmt_name(src) +
             "' to RGB: " + av_error(ret));
      }
      // YUV->RGB matrix and range from the frame (BT.601/709/2020; limited or full range).
      const int* coefs = sws_getCoefficients(cs);
      sws_setColorspaceDetails(sws, coefs, full ? 1 : 0, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0,
                               1 << 16, 1 << 16);
      sws_key = key;
    }
    if (rotation_cw == 0) {
      cv::Mat out = acquire(oh, ow);
      scale_into(out);
      return out;
    }
    if (scratch.rows != oh || scratch.cols != ow) scratch = padded_rgb(oh, ow);
    scale_into(scratch);
    bool swap = rotation_cw == 90 || rotation_cw == 270;
    cv::Mat out = acquire(swap ? ow : oh, swap ? oh : ow);
    int code = rotation_cw == 90    ? cv::ROTATE_90_CLOCKWISE
               : rotation_cw == 180 ? cv::ROTATE_180
                                    : cv::ROTATE_90_COUNTERCLOCKWISE;
    cv::rotate(scratch, out, code);  // `out` has the right size: written in place
    return out;
  }

  // ---- audio ---------------------------------------------------------------------------------
  void setup_swr() {
    AVChannelLayout in_layout{};
    if (frame->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || frame->ch_layout.nb_channels == 0) {
      int n = frame->ch_layout.nb_channels > 0 ? frame->ch_layout.nb_channels
                                               : adec.ctx->ch_layout.nb_channels;
      av_channel_layout_default(&in_layout, std::max(1, n));
    } else {
      av_channel_layout_copy(&in_layout, &frame->ch_layout);
    }
    bool same = swr && swr_key.rate == frame->sample_rate && swr_key.fmt == frame->format &&
                av_channel_layout_compare(&swr_key.layout, &in_layout) == 0;
    if (same) {
      av_channel_layout_uninit(&in_layout);
      return;
    }
    if (swr) drain_swr();  // format change mid-stream: keep what the old resampler holds
    swr_free(&swr);
    AVChannelLayout out_layout{};
    av_channel_layout_default(&out_layout, opt.audio_channels);
    int ret = swr_alloc_set_opts2(&swr, &out_layout, AV_SAMPLE_FMT_FLT, opt.audio_rate, &in_layout,
                                  AVSampleFormat(frame->format), frame->sample_rate, 0, nullptr);
    av_channel_layout_uninit(&out_layout);
    if (ret >= 0) ret = swr_init(swr);
    if (ret < 0) {
      av_channel_layout_uninit(&in_layout);
      fail(std::string("cannot resample audio (") + std::to_string(frame->sample_rate) + " Hz, " +
           (av_get_sample_fmt_name(AVSampleFormat(frame->format))
                ? av_get_sample_fmt_name(AVSampleFormat(frame->format))
                : "?") +
           "): " + av_error(ret));
    }
    swr_key.rate = frame->sample_rate;
    swr_key.fmt = frame->format;
    av_channel_layout_uninit(&swr_key.layout);
    swr_key.layout = in_layout;  // takes ownership
  }

  void on_audio_frame() {
    if (frame->nb_samples <= 0 || frame->sample_rate <= 0) return;
    setup_swr();
    if (audio_origin_us == std::numeric_limits<int64_t>::min()) {
      int64_t ts = frame_time_us(adec);
      audio_origin_us = ts == AV_NOPTS_VALUE ? 0 : ts;
    }
    int cap = swr_get_out_samples(swr, frame->nb_samples);
    if (cap <= 0) return;
    conv.resize(size_t(cap) * opt.audio_channels);
    uint8_t* outp = reinterpret_cast<uint8_t*>(conv.data());
    int n = swr_convert(swr, &outp, cap, const_cast<const uint8_t**>(frame->extended_data),
                        frame->nb_samples);
    if (n < 0) {
      ++stats.damaged_packets;
      return;
    }
    append_audio(n);
  }

  void drain_swr() {
    for (;;) {
      int cap = std::max(4096, swr_get_out_samples(swr, 0));
      conv.resize(size_t(cap) * opt.audio_channels);
      uint8_t* outp = reinterpret_cast<uint8_t*>(conv.data());
      int n = swr_convert(swr, &outp, cap, nullptr, 0);
      if (n <= 0) return;
      append_audio(n);
    }
  }

  int64_t sample_time(int64_t index) const {
    return audio_origin_us + av_rescale(index, 1000000, opt.audio_rate);
  }

  // Appends n converted samples from `conv`, trimmed to [start, end), emitting full chunks.
  void append_audio(int n) {
    const int ch = opt.audio_channels;
    int first = 0, last = n;  // range of conv to keep
    while (first < n && sample_time(produced + first) < start_us) ++first;
    while (last > first && sample_time(produced + last - 1) >= end_us) --last;
    if (pending.empty()) pending_first = produced + first;
    pending.insert(pending.end(), conv.begin() + size_t(first) * ch,
                   conv.begin() + size_t(last) * ch);
    produced += n;
    if (sample_time(produced) >= end_us && end_us != std::numeric_limits<int64_t>::max())
      adec.done = true;
    while (int64_t(pending.size()) >= chunk_frames * ch) emit_chunk(chunk_frames);
  }

  void emit_chunk(int64_t frames) {
    const int ch = opt.audio_channels;
    Item item;
    item.kind = Item::Kind::kAudio;
    item.audio.sample_rate = opt.audio_rate;
    item.audio.channels = ch;
    item.audio.start_us = sample_time(pending_first);
    item.audio.samples.assign(pending.begin(), pending.begin() + frames * ch);
    pending.erase(pending.begin(), pending.begin() + frames * ch);
    pending_first += frames;
    ++stats.audio_chunks;
    stats.audio_samples += frames;
    ready.push_back(std::move(item));
  }

  void finish_audio() {
    if (swr) drain_swr();
    if (!pending.empty()) emit_chunk(int64_t(pending.size()) / opt.audio_channels);
    if (swr) swr_free(&swr);
  }
};

MediaReader::MediaReader(MediaReaderOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->opt = std::move(options);
  impl_->open();
}

MediaReader::~MediaReader() = default;

bool MediaReader::next(Item& out) {
  Impl& m = *impl_;
  while (m.ready.empty()) {
    if (m.finished) return false;
    m.step();
  }
  out = std::move(m.ready.front());
  m.ready.pop_front();
  return true;
}

bool MediaReader::has_video() const { return impl_->vdec.stream >= 0; }
bool MediaReader::has_audio() const { return impl_->adec.stream >= 0; }
int MediaReader::video_stream_index() const { return impl_->vdec.stream; }
int MediaReader::audio_stream_index() const { return impl_->adec.stream; }
int MediaReader::rotation() const { return impl_->rotation_cw; }
double MediaReader::duration_s() const {
  return impl_->fmt->duration == AV_NOPTS_VALUE ? 0.0 : impl_->fmt->duration / double(AV_TIME_BASE);
}
const MediaReaderStats& MediaReader::stats() const { return impl_->stats; }
const MediaReaderOptions& MediaReader::options() const { return impl_->opt; }

}  // namespace omni
