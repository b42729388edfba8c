// The Qwen2-VL / Qwen2.5-Omni processors' options and the sizes they decide, torch-free: the
// options read from preprocessor_config.json (limits included), smart_resize, the image's resized
// size and patch grid, and which frames of a video are read at what size. The pixel work is in
// qwen_vision.h; these are fuzzed on their own (fuzz/fuzz_preprocessor.cpp).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace omni {

enum class QwenResample {
  kPil,          // Pillow's 8-bit antialiased bicubic (Qwen2VLImageProcessorPil)
  kTorchvision,  // torchvision's uint8 kernel (Qwen2VLImageProcessor, transformers 5's default)
  // torchvision's float kernel (qwen-omni-utils' resize of video frames). It keeps the overshoot
  // of the first pass (no 8-bit intermediate), so near sharp edges it can differ from the two
  // 8-bit kernels by many levels.
  kTorchvisionFloat,
};

// Caps on the processor's sizes when they come from a file (Qwen2-VL and Qwen2.5-Omni use patch
// 14, temporal patch 2, merge 2); pixel bounds are held to kMaxResizedPixels (preprocess.h).
inline constexpr int kMaxPatchSize = 1024;
inline constexpr int kMaxMergeSize = 64;

struct QwenVisionOptions {
  int patch_size = 14;
  int temporal_patch_size = 2;
  int merge_size = 2;
  int64_t min_pixels = 56 * 56;         // size.shortest_edge
  int64_t max_pixels = 28 * 28 * 1280;  // size.longest_edge
  bool do_resize = true;
  double rescale_factor = 1.0 / 255.0;
  std::array<double, 3> mean = {0.48145466, 0.4578275, 0.40821073};  // OPENAI_CLIP_MEAN
  std::array<double, 3> std = {0.26862954, 0.26130258, 0.27577711};  // OPENAI_CLIP_STD
  QwenResample resample = QwenResample::kPil;

  int factor() const { return patch_size * merge_size; }
  // Throws ConfigError for non-positive sizes or sizes over the caps above, min_pixels >
  // max_pixels or over kMaxResizedPixels, a zero std.
  void validate() const;
  // Options from a preprocessor_config.json object (image processor keys: patch_size,
  // temporal_patch_size, merge_size, min_pixels / max_pixels or size.{shortest,longest}_edge,
  // image_mean, image_std, rescale_factor, do_resize). Absent keys keep the defaults; do_rescale
  // or do_normalize false, or do_convert_rgb false, are refused (ConfigError). `resample` follows
  // image_processor_type as transformers 5 loads it: kTorchvision for "Qwen2VLImageProcessor"
  // (and "...Fast"), kPil for "Qwen2VLImageProcessorPil"; the default (kPil) when absent.
  static QwenVisionOptions from_config(const nlohmann::json& cfg);
};

// transformers' smart_resize (the processors'): (height, width) multiples of `factor` within
// [min_pixels, max_pixels]. Throws InputError for an aspect ratio above 200 or a side below 1.
std::pair<int, int> qwen_smart_resize(int height, int width, int factor, int64_t min_pixels,
                                      int64_t max_pixels);

// Resized (height, width) and patch grid of an image of that size.
std::pair<int, int> qwen_image_size(int height, int width, const QwenVisionOptions& o);
std::array<int64_t, 3> qwen_image_grid(int height, int width, const QwenVisionOptions& o);

// ---- video ----

struct QwenVideoOptions {
  // The "video" content item of qwen-omni-utils (process_mm_info / fetch_video).
  double fps = 2.0;         // frames sampled per second (used when nframes == 0)
  int nframes = 0;          // a fixed frame count instead (rounded to a multiple of 2)
  int min_frames = 4;       // FPS_MIN_FRAMES
  int max_frames = 0;       // 0 = FPS_MAX_FRAMES (768) capped at the video's frame count
  int64_t min_pixels = 0;   // per frame; 0 = VIDEO_MIN_TOKEN_NUM (128) * factor^2
  int64_t max_pixels = 0;   // per frame; 0 = VIDEO_MAX_TOKEN_NUM (768) * factor^2 and the budget
  double total_pixels = 0;  // whole-video budget; 0 = MODEL_SEQ_LEN (128000) * factor^2 * 0.9
  int resized_height = 0;   // both set: resize to smart_resize of these instead
  int resized_width = 0;
  double video_start = -1;  // seconds; < 0 = from the start
  double video_end = -1;    // seconds; < 0 = to the end
  // The video processor (Qwen2VLVideoProcessor with Qwen2_5OmniProcessor's videos_kwargs:
  // size 128*28*28 .. 768*28*28, torchvision resize).
  QwenVisionOptions processor = default_processor();
  // fps the processor is told (video_second_per_grid = temporal_patch_size / processor_fps);
  // 0 = `fps` (transformers itself assumes 2.0 when the caller passes none).
  double processor_fps = 0;

  static QwenVisionOptions default_processor();
  // The video processor's keys of a preprocessor_config.json / video_preprocessor_config.json
  // object (as QwenVisionOptions::from_config, keeping the torchvision resize).
  static QwenVideoOptions from_config(const nlohmann::json& cfg);
};

// Which frames qwen-omni-utils reads from a video of `total_frames` at `video_fps`.
struct QwenVideoPlan {
  int64_t total_frames = 0;  // of the video (or of the video_start..video_end range)
  double video_fps = 0;
  int64_t start_frame = 0, end_frame = 0;
  int nframes = 0;
  std::vector<int64_t> indices;  // frame indices in the video, nframes of them
  double sample_fps = 0;         // nframes / total_frames * video_fps
};

// smart_nframes: throws InputError when the result is outside [2, total_frames] (the ValueError
// of qwen-omni-utils) and ConfigError for inconsistent options.
int qwen_video_nframes(int64_t total_frames, double video_fps, const QwenVideoOptions& o);
// torch.linspace(start, end, n) (float32) rounded half to even.
std::vector<int64_t> qwen_linspace_indices(int64_t start, int64_t end, int n);
QwenVideoPlan qwen_video_plan(int64_t total_frames, double video_fps, const QwenVideoOptions& o);
// The (height, width) fetch_video resizes every frame to, for nframes frames of that size.
std::pair<int, int> qwen_video_frame_size(int height, int width, int nframes,
                                          const QwenVideoOptions& o);

}  // namespace omni
