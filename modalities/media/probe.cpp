// probe_media: container and stream facts via libavformat (same safe open as MediaReader).
#include "modalities/media/probe.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
}

#include <cmath>
#include <cstdio>
#include <sstream>

#include "modalities/media/ffmpeg_input.h"

namespace omni {

namespace {

double round3(double v) { return std::round(v * 1000.0) / 1000.0; }

}  // namespace

nlohmann::json probe_media(const std::string& path, const ProbeOptions& options) {
  media_detail::Input in(path, {options.allowed_protocols, options.allow_nested}, nullptr,
                         options.data);
  const AVFormatContext* fmt = in.ctx();
  nlohmann::json j;
  j["path"] = path;
  j["format"] = fmt->iformat->name;
  if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0) {
    j["duration_s"] = round3(fmt->duration / double(AV_TIME_BASE));
  }
  nlohmann::json streams = nlohmann::json::array();
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    AVStream* st = fmt->streams[i];
    const AVCodecParameters* par = st->codecpar;
    nlohmann::json s;
    s["index"] = i;
    const char* type = av_get_media_type_string(par->codec_type);
    s["type"] = type ? type : "unknown";
    s["codec"] = avcodec_get_name(par->codec_id);
    if (par->codec_type == AVMEDIA_TYPE_VIDEO) {
      if (par->width > 0) s["width"] = par->width;
      if (par->height > 0) s["height"] = par->height;
      AVRational r = av_guess_frame_rate(const_cast<AVFormatContext*>(fmt), st, nullptr);
      if (r.num > 0 && r.den > 0) s["fps"] = round3(av_q2d(r));
      int rot = media_detail::display_rotation_ccw(st);
      if (rot) s["rotation"] = rot;
      if (st->disposition & AV_DISPOSITION_ATTACHED_PIC) s["attached_pic"] = true;
    } else if (par->codec_type == AVMEDIA_TYPE_AUDIO) {
      if (par->sample_rate > 0) s["sample_rate"] = par->sample_rate;
      if (par->ch_layout.nb_channels > 0) s["channels"] = par->ch_layout.nb_channels;
    }
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0) {
      s["duration_s"] = round3(st->duration * av_q2d(st->time_base));
    }
    if (st->disposition & AV_DISPOSITION_DEFAULT) s["default"] = true;
    streams.push_back(std::move(s));
  }
  j["streams"] = std::move(streams);
  return j;
}

std::string probe_to_text(const nlohmann::json& p) {
  std::ostringstream o;
  o << p.value("path", "") << ": " << p.value("format", "?");
  if (p.contains("duration_s")) o << ", " << p.value("duration_s", 0.0) << " s";
  const nlohmann::json streams = p.value("streams", nlohmann::json::array());
  o << ", " << streams.size() << " stream(s)\n";
  for (const auto& s : streams) {
    o << "  #" << s.value("index", -1) << " " << s.value("type", "?") << " "
      << s.value("codec", "?");
    // A damaged header can give one dimension without the other (fuzz/regressions/media).
    if (s.contains("width") || s.contains("height")) {
      o << " " << s.value("width", 0) << "x" << s.value("height", 0);
    }
    if (s.contains("fps")) o << " " << s.value("fps", 0.0) << " fps";
    if (s.contains("rotation")) o << " rotation " << s.value("rotation", 0);
    if (s.contains("sample_rate")) o << " " << s.value("sample_rate", 0) << " Hz";
    if (s.contains("channels")) o << " " << s.value("channels", 0) << " ch";
    if (s.contains("duration_s")) o << " " << s.value("duration_s", 0.0) << " s";
    if (s.value("default", false)) o << " (default)";
    if (s.value("attached_pic", false)) o << " (attached picture)";
    o << "\n";
  }
  return o.str();
}

}  // namespace omni
