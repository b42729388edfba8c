// The Qwen2-VL / Qwen2.5-Omni visual processors, exact against transformers and qwen-omni-utils:
// smart_resize, bicubic resize (PIL's or torchvision's), rescale + normalise, and the patch layout
// the vision tower reads: pixel_values [N, C*T*P*P] (temporal patch T, 2x2 merge order) and the
// (t, h, w) patch grid.
//
// Images follow transformers' Qwen2VLImageProcessor: by default the resize of the PIL processor
// (Qwen2VLImageProcessorPil, the reference), or with QwenResample::kTorchvision that of the
// torchvision processor (Qwen2VLImageProcessor, what transformers 5.x and Qwen2_5OmniProcessor
// load by default); both bit-exact, they differ from each other by one 8-bit level at most. Videos
// follow qwen-omni-utils' fetch_video (frame count and indices, per-video pixel budget,
// torchvision's float resize) and then Qwen2VLVideoProcessor as Qwen2_5OmniProcessor calls it.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "modalities/image/qwen_vision_options.h"

namespace omni {

// The processor's output for one image or one video.
struct QwenVisualInputs {
  at::Tensor pixel_values;            // float32 [t*h*w, 3*T*P*P]
  std::array<int64_t, 3> grid_thw{};  // patches: (t, h, w)
  int64_t merge_size = 2;
  // Placeholder tokens in the prompt (transformers: grid_thw.prod() // merge_size**2).
  int64_t num_tokens() const {
    return grid_thw[0] * grid_thw[1] * grid_thw[2] / (merge_size * merge_size);
  }
};

// One interleaved RGB8 image (rows `row_stride` bytes apart) -> pixel_values and grid (t = 1; the
// image is repeated over the temporal patch). Throws InputError for bad images.
QwenVisualInputs qwen_image_inputs(const uint8_t* rgb, int width, int height, int64_t row_stride,
                                   const QwenVisionOptions& o);

// Patch layout of normalised frames: `frames` holds t planar float frames [t, 3, height, width]
// whose sides are multiples of patch_size * merge_size. A frame count that is not a multiple of
// temporal_patch_size is padded by repeating the last frame (as Qwen2VLVideoProcessor does).
QwenVisualInputs qwen_patchify(const float* frames, int64_t t, int height, int width,
                               const QwenVisionOptions& o);

struct QwenVideoInputs : QwenVisualInputs {
  QwenVideoPlan plan;
  int resized_height = 0, resized_width = 0;  // after fetch_video's resize
  double second_per_grid = 0;                 // video_second_per_grid
};

// One RGB8 frame (rows `row_stride` bytes apart).
struct RgbView {
  const uint8_t* data = nullptr;
  int width = 0, height = 0;
  int64_t row_stride = 0;
};

// The processor on already decoded frames: `frames` are the plan's frames (plan.indices, in
// order, all the same size). Throws InputError when the count or sizes disagree.
QwenVideoInputs qwen_video_inputs_from_frames(const std::vector<RgbView>& frames,
                                              const QwenVideoPlan& plan, const QwenVideoOptions& o);

#ifdef OMNI_WITH_MEDIA
// Decodes `path` with MediaReader and runs the whole video path. The frame count and rate are
// those of the decoded stream (every frame counted, rate = (frames - 1) / (last - first PTS));
// the file is decoded twice (count, then the chosen frames), keeping only nframes frames.
QwenVideoInputs qwen_video_inputs(const std::string& path, const QwenVideoOptions& o);
#endif

}  // namespace omni
