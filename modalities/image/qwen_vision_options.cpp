#include "modalities/image/qwen_vision_options.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "modalities/common/preprocessor_config.h"
#include "modalities/image/resize_rules.h"

namespace omni {
namespace {

// qwen-omni-utils' constants (vision_process.py).
constexpr int kFrameFactor = 2;
constexpr int64_t kVideoMinTokens = 128;
constexpr int64_t kVideoMaxTokens = 768;
constexpr int64_t kImageMinTokens = 4;
constexpr int64_t kImageMaxTokens = 16384;
constexpr double kModelSeqLen = 128000;
constexpr double kMaxRatio = 200;

std::string size_str(int w, int h) { return std::to_string(w) + "x" + std::to_string(h); }

void check_ratio(const char* who, int height, int width) {
  if (height <= 0 || width <= 0) {
    throw InputError(std::string(who) + ": empty image " + size_str(width, height));
  }
  if (static_cast<double>(std::max(height, width)) / std::min(height, width) > kMaxRatio) {
    throw InputError(std::string(who) + ": aspect ratio of " + size_str(width, height) +
                     " exceeds 200");
  }
}

// qwen-omni-utils' smart_resize (differs from transformers': sides rounded to at least `factor`,
// float pixel bounds, no lower clamp when shrinking).
std::pair<int, int> utils_smart_resize(int height, int width, int factor, double min_pixels,
                                       double max_pixels) {
  if (max_pixels < min_pixels) {
    throw ConfigError("qwen video: max_pixels (" + std::to_string(max_pixels) +
                      ") is below min_pixels (" + std::to_string(min_pixels) + ")");
  }
  check_ratio("qwen video resize", height, width);
  const double f = factor;
  int64_t h = std::max<int64_t>(factor, static_cast<int64_t>(std::nearbyint(height / f)) * factor);
  int64_t w = std::max<int64_t>(factor, static_cast<int64_t>(std::nearbyint(width / f)) * factor);
  if (static_cast<double>(h * w) > max_pixels) {
    const double beta = std::sqrt(static_cast<double>(height) * width / max_pixels);
    h = static_cast<int64_t>(std::floor(height / beta / f)) * factor;
    w = static_cast<int64_t>(std::floor(width / beta / f)) * factor;
  } else if (static_cast<double>(h * w) < min_pixels) {
    const double beta = std::sqrt(min_pixels / (static_cast<double>(height) * width));
    h = static_cast<int64_t>(std::ceil(height * beta / f)) * factor;
    w = static_cast<int64_t>(std::ceil(width * beta / f)) * factor;
  }
  if (h <= 0 || w <= 0) {
    throw InputError("qwen video resize: " + size_str(width, height) + " frames shrink to " +
                     size_str(static_cast<int>(w), static_cast<int>(h)) +
                     " under the pixel budget (raise max_pixels / total_pixels)");
  }
  check_resized_pixels("qwen video resize", h, w);
  return {static_cast<int>(h), static_cast<int>(w)};
}

}  // namespace

// ---- options ----

void QwenVisionOptions::validate() const {
  if (patch_size <= 0 || temporal_patch_size <= 0 || merge_size <= 0) {
    throw ConfigError(
        "qwen vision: patch_size, temporal_patch_size and merge_size must be positive");
  }
  // Caps for sizes read from a file (Qwen uses 14, 2 and 2): a patch's values and a merged cell
  // stay small, and factor() cannot overflow.
  if (patch_size > kMaxPatchSize || temporal_patch_size > kMaxMergeSize ||
      merge_size > kMaxMergeSize) {
    throw ConfigError("qwen vision: patch_size " + std::to_string(patch_size) +
                      ", temporal_patch_size " + std::to_string(temporal_patch_size) +
                      " and merge_size " + std::to_string(merge_size) + " must be at most " +
                      std::to_string(kMaxPatchSize) + ", " + std::to_string(kMaxMergeSize) +
                      " and " + std::to_string(kMaxMergeSize));
  }
  if (min_pixels <= 0 || max_pixels < min_pixels) {
    throw ConfigError("qwen vision: need 0 < min_pixels <= max_pixels, got " +
                      std::to_string(min_pixels) + " and " + std::to_string(max_pixels));
  }
  // min_pixels enlarges small pictures up to it: held to what a resize may produce.
  if (min_pixels > kMaxResizedPixels) {
    throw ConfigError("qwen vision: min_pixels " + std::to_string(min_pixels) + " is over the " +
                      std::to_string(kMaxResizedPixels) + " pixels a resize may produce");
  }
  for (int c = 0; c < 3; ++c) {
    if (!(std[c] != 0.0) || !std::isfinite(std[c]) || !std::isfinite(mean[c])) {
      throw ConfigError("qwen vision: image_std must be finite and non-zero");
    }
  }
  if (!(rescale_factor > 0.0) || !std::isfinite(rescale_factor))
    throw ConfigError("qwen vision: rescale_factor must be positive and finite");
}

namespace {

void read_vision_keys(const nlohmann::json& cfg, QwenVisionOptions& o) {
  config_int(cfg, "patch_size", o.patch_size);
  config_int(cfg, "temporal_patch_size", o.temporal_patch_size);
  config_int(cfg, "merge_size", o.merge_size);
  // transformers 5 writes size.{shortest,longest}_edge; older files min_pixels / max_pixels (which
  // win, as in the processors' __init__).
  if (auto it = cfg.find("size"); it != cfg.end() && it->is_object()) {
    config_int(*it, "shortest_edge", o.min_pixels);
    config_int(*it, "longest_edge", o.max_pixels);
  }
  config_int(cfg, "min_pixels", o.min_pixels);
  config_int(cfg, "max_pixels", o.max_pixels);
  config_number(cfg, "rescale_factor", o.rescale_factor);
  config_bool(cfg, "do_resize", o.do_resize);
  for (const char* key : {"image_mean", "image_std"}) {
    auto it = cfg.find(key);
    if (it == cfg.end() || it->is_null()) continue;
    auto& dst = std::string(key) == "image_mean" ? o.mean : o.std;
    if (it->is_number()) {
      dst.fill(it->get<double>());
    } else if (it->is_array() && it->size() == 3 && (*it)[0].is_number() && (*it)[1].is_number() &&
               (*it)[2].is_number()) {
      for (int c = 0; c < 3; ++c) dst[c] = (*it)[c].get<double>();
    } else {
      throw ConfigError(std::string("preprocessor config: '") + key +
                        "' must be a number or 3 numbers, got " + it->dump());
    }
  }
  for (const char* key : {"do_rescale", "do_normalize", "do_convert_rgb"}) {
    bool b = true;
    if (config_bool(cfg, key, b) && !b) {
      throw ConfigError(std::string("preprocessor config: '") + key +
                        "': false is not supported by the Qwen processors here");
    }
  }
  o.validate();
}

}  // namespace

QwenVisionOptions QwenVisionOptions::from_config(const nlohmann::json& cfg) {
  QwenVisionOptions o;
  read_vision_keys(cfg, o);
  // What transformers 5's AutoImageProcessor would build from the file: the torchvision processor
  // for "Qwen2VLImageProcessor" / "...Fast" (torchvision installed), the PIL one for "...Pil".
  if (auto it = cfg.find("image_processor_type"); it != cfg.end() && it->is_string()) {
    const std::string type = it->get<std::string>();
    if (type.find("Pil") != std::string::npos) {
      o.resample = QwenResample::kPil;
    } else if (type.find("ImageProcessor") != std::string::npos) {
      o.resample = QwenResample::kTorchvision;
    }
  }
  return o;
}

QwenVisionOptions QwenVideoOptions::default_processor() {
  QwenVisionOptions p;
  p.min_pixels = 128 * 28 * 28;
  p.max_pixels = 768 * 28 * 28;
  p.resample = QwenResample::kTorchvision;
  return p;
}

QwenVideoOptions QwenVideoOptions::from_config(const nlohmann::json& cfg) {
  QwenVideoOptions o;
  // A combined preprocessor_config.json carries the image processor's pixel bounds, which
  // Qwen2_5OmniProcessor overrides for videos: keep the video defaults unless the file is a
  // video processor config (it names a video processor or has min_frames / max_frames).
  QwenVisionOptions p = o.processor;
  const bool video_file = cfg.contains("video_processor_type") || cfg.contains("min_frames") ||
                          cfg.contains("max_frames");
  if (video_file) {
    read_vision_keys(cfg, p);
  } else {
    nlohmann::json c = cfg;
    c.erase("min_pixels");
    c.erase("max_pixels");
    c.erase("size");
    read_vision_keys(c, p);
  }
  p.resample = QwenResample::kTorchvision;
  o.processor = p;
  config_int(cfg, "min_frames", o.min_frames);
  config_int(cfg, "max_frames", o.max_frames);
  if (config_number(cfg, "fps", o.fps) && !(o.fps > 0 && std::isfinite(o.fps)))
    throw ConfigError("qwen video: fps must be positive and finite, got " + std::to_string(o.fps));
  return o;
}

// ---- images ----

std::pair<int, int> qwen_smart_resize(int height, int width, int factor, int64_t min_pixels,
                                      int64_t max_pixels) {
  if (factor <= 0) throw ConfigError("qwen smart_resize: factor must be positive");
  check_ratio("qwen smart_resize", height, width);
  return smart_resize_sides(height, width, factor, min_pixels, max_pixels);
}

std::pair<int, int> qwen_image_size(int height, int width, const QwenVisionOptions& o) {
  o.validate();
  if (!o.do_resize) {
    check_ratio("qwen image", height, width);
    if (height % o.factor() != 0 || width % o.factor() != 0) {
      throw InputError("qwen image: with do_resize off, " + size_str(width, height) +
                       " must have sides divisible by " + std::to_string(o.factor()));
    }
    return {height, width};
  }
  return qwen_smart_resize(height, width, o.factor(), o.min_pixels, o.max_pixels);
}

std::array<int64_t, 3> qwen_image_grid(int height, int width, const QwenVisionOptions& o) {
  const auto [h, w] = qwen_image_size(height, width, o);
  return {1, h / o.patch_size, w / o.patch_size};
}

// ---- video ----

int qwen_video_nframes(int64_t total_frames, double video_fps, const QwenVideoOptions& o) {
  if (total_frames <= 0) throw InputError("qwen video: the video has no frames");
  auto floor_by = [](double x, int f) { return std::floor(x / f) * f; };
  auto ceil_by = [](double x, int f) { return std::ceil(x / f) * f; };
  double n = 0;
  if (o.nframes > 0) {
    n = std::nearbyint(o.nframes / static_cast<double>(kFrameFactor)) * kFrameFactor;
  } else {
    if (!(o.fps > 0) || !(video_fps > 0)) {
      throw InputError("qwen video: sampling needs a positive fps and a known video frame rate");
    }
    const double min_frames = ceil_by(o.min_frames, kFrameFactor);
    const double max_frames = floor_by(
        o.max_frames > 0 ? o.max_frames : std::min<int64_t>(768, total_frames), kFrameFactor);
    n = static_cast<double>(total_frames) / video_fps * o.fps;
    n = std::min(std::min(std::max(n, min_frames), max_frames), static_cast<double>(total_frames));
    n = floor_by(n, kFrameFactor);
  }
  if (!(n >= kFrameFactor && n <= static_cast<double>(total_frames))) {
    throw InputError("qwen video: nframes should be in [" + std::to_string(kFrameFactor) + ", " +
                     std::to_string(total_frames) + "], but got " +
                     std::to_string(static_cast<int64_t>(n)) +
                     " (too few frames for the requested sampling)");
  }
  return static_cast<int>(n);
}

std::vector<int64_t> qwen_linspace_indices(int64_t start, int64_t end, int n) {
  std::vector<int64_t> idx(std::max(n, 0));
  if (n <= 0) return idx;
  if (n == 1) {
    idx[0] = start;
    return idx;
  }
  // ATen's CPU linspace in float32: the first half counts up from start, the second half down
  // from end.
  const float s = static_cast<float>(start), e = static_cast<float>(end);
  const float step = (e - s) / static_cast<float>(n - 1);
  const int halfway = n / 2;
  for (int i = 0; i < n; ++i) {
    const float v =
        i < halfway ? s + step * static_cast<float>(i) : e - step * static_cast<float>(n - i - 1);
    idx[i] = static_cast<int64_t>(std::nearbyint(v));
  }
  return idx;
}

QwenVideoPlan qwen_video_plan(int64_t total_frames, double video_fps, const QwenVideoOptions& o) {
  if (total_frames <= 0) throw InputError("qwen video: the video has no frames");
  QwenVideoPlan p;
  p.video_fps = video_fps;
  p.start_frame = 0;
  p.end_frame = total_frames - 1;
  p.total_frames = total_frames;
  if (o.video_start >= 0 || o.video_end >= 0) {  // calculate_video_frame_range
    if (!(video_fps > 0)) throw InputError("qwen video: video_start/end need the frame rate");
    const double max_duration = static_cast<double>(total_frames) / video_fps;
    if (o.video_start >= 0) {
      p.start_frame = static_cast<int64_t>(
          std::ceil(std::max(0.0, std::min(o.video_start, max_duration)) * video_fps));
    }
    if (o.video_end >= 0) {
      p.end_frame = std::min<int64_t>(
          static_cast<int64_t>(
              std::floor(std::max(0.0, std::min(o.video_end, max_duration)) * video_fps)),
          total_frames - 1);
    }
    if (p.start_frame >= p.end_frame) {
      throw InputError("qwen video: invalid time range: start frame " +
                       std::to_string(p.start_frame) + " is not before end frame " +
                       std::to_string(p.end_frame));
    }
    p.total_frames = p.end_frame - p.start_frame + 1;
  }
  p.nframes = qwen_video_nframes(p.total_frames, video_fps, o);
  p.indices = qwen_linspace_indices(p.start_frame, p.end_frame, p.nframes);
  p.sample_fps = p.nframes / std::max(static_cast<double>(p.total_frames), 1e-6) * video_fps;
  return p;
}

std::pair<int, int> qwen_video_frame_size(int height, int width, int nframes,
                                          const QwenVideoOptions& o) {
  const int64_t f = o.processor.factor();
  if (o.resized_height > 0 && o.resized_width > 0) {
    return utils_smart_resize(o.resized_height, o.resized_width, static_cast<int>(f),
                              static_cast<double>(kImageMinTokens * f * f),
                              static_cast<double>(kImageMaxTokens * f * f));
  }
  if (nframes <= 0) throw InputError("qwen video: no frames to size");
  const double min_pixels =
      static_cast<double>(o.min_pixels > 0 ? o.min_pixels : kVideoMinTokens * f * f);
  const double total_pixels = o.total_pixels > 0 ? o.total_pixels : kModelSeqLen * f * f * 0.9;
  double max_pixels = std::max(
      std::min(static_cast<double>(kVideoMaxTokens * f * f), total_pixels / nframes * kFrameFactor),
      static_cast<double>(static_cast<int64_t>(min_pixels * 1.05)));
  if (o.max_pixels > 0) max_pixels = std::min(static_cast<double>(o.max_pixels), max_pixels);
  return utils_smart_resize(height, width, static_cast<int>(f), min_pixels, max_pixels);
}

}  // namespace omni
