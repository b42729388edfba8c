// preprocessor_config.json as the processors read it: the image, video and Whisper options (their
// limits included), then the sizes they decide for a picture, a video and a signal whose
// dimensions come from the input too: smart_resize, the patch grid, the frame plan and frame
// size, the feature frames and audio tokens. Nothing is decoded or resized; what is checked is
// that every size is refused or bounded before a caller would allocate it.
// Input: PREPROCESSOR_CONFIG.JSON \0 DIMENSIONS (16 bytes: height, width, frames, samples).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "fuzz/fuzz_util.h"
#include "modalities/audio/whisper_options.h"
#include "modalities/image/qwen_vision_options.h"
#include "modalities/image/resize_rules.h"

namespace {

// Four little-endian 32-bit numbers from the second part (missing bytes are 0).
struct Dimensions {
  int32_t height = 0, width = 0, frames = 0, samples = 0;
};

Dimensions dimensions(const std::string& bytes) {
  uint32_t v[4] = {0, 0, 0, 0};
  std::memcpy(v, bytes.data(), std::min(bytes.size(), sizeof(v)));
  // Pictures as the readers deliver them (at most 2^26 pixels: 8192 on a side here), videos of up
  // to 2^16 frames (the plan lists the frames it reads, from the decoded video), signals of any
  // length.
  return {static_cast<int32_t>(v[0] % 8193), static_cast<int32_t>(v[1] % 8193),
          static_cast<int32_t>(v[2] % 65536), static_cast<int32_t>(v[3] & 0x7fffffff)};
}

void check_size(std::pair<int, int> hw) {
  // What a caller then allocates: a resize's result never exceeds the documented cap.
  if (hw.first <= 0 || hw.second <= 0 ||
      static_cast<int64_t>(hw.first) * hw.second > omni::kMaxResizedPixels)
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = omni::fuzz::split_parts(data, size, 2);
  const nlohmann::json cfg = nlohmann::json::parse(parts[0], nullptr, /*allow_exceptions=*/false);
  if (!cfg.is_object()) return 0;
  const Dimensions d = dimensions(parts[1]);
  omni::fuzz::expect_clean_errors([&] {
    const omni::QwenVisionOptions o = omni::QwenVisionOptions::from_config(cfg);
    check_size(omni::qwen_image_size(d.height, d.width, o));
    (void)omni::qwen_image_grid(d.height, d.width, o);
  });
  omni::fuzz::expect_clean_errors([&] {
    const omni::QwenVideoOptions v = omni::QwenVideoOptions::from_config(cfg);
    const omni::QwenVideoPlan plan = omni::qwen_video_plan(d.frames, 25.0, v);
    if (plan.indices.size() != static_cast<size_t>(plan.nframes)) __builtin_trap();
    const auto hw = omni::qwen_video_frame_size(d.height, d.width, plan.nframes, v);
    check_size(hw);
    if (v.processor.do_resize)
      check_size(omni::qwen_smart_resize(hw.first, hw.second, v.processor.factor(),
                                         v.processor.min_pixels, v.processor.max_pixels));
  });
  omni::fuzz::expect_clean_errors([&] {
    const omni::WhisperFeatureOptions w = omni::WhisperFeatureOptions::from_config(cfg);
    const int64_t len = omni::whisper_window_length(d.samples, w);
    if (len < 0 || len > int64_t{omni::kWhisperMaxChunkSeconds} * 16000 + d.samples)
      __builtin_trap();
    (void)omni::qwen_audio_tokens(omni::whisper_valid_frames(d.samples, w));
    (void)omni::whisper_feature_frames(d.samples, w);
  });
  return 0;
}
