// qwen-omni-utils' frame-count and index rules (smart_nframes, torch.linspace(...).round()) on a
// table of (frames, rate, options) made by calling them (make_qwen_processor_fixture.py).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "modalities/image/qwen_vision.h"

namespace omni {
namespace {

TEST(QwenVideoPlan, FrameCountsAndIndicesMatchQwenOmniUtils) {
  const std::string path =
      std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/qwen_processor/manifest.json";
  std::ifstream f(path);
  ASSERT_TRUE(f) << "missing " << path;
  const nlohmann::json man = nlohmann::json::parse(f);
  int checked = 0, errors = 0;
  for (const auto& r : man["nframes"]) {
    SCOPED_TRACE(r.dump());
    QwenVideoOptions o;
    const auto& e = r["ele"];
    if (e.contains("fps")) o.fps = e["fps"].get<double>();
    if (e.contains("nframes")) o.nframes = e["nframes"].get<int>();
    if (e.contains("min_frames")) o.min_frames = e["min_frames"].get<int>();
    if (e.contains("max_frames")) o.max_frames = e["max_frames"].get<int>();
    if (e.contains("video_start")) o.video_start = e["video_start"].get<double>();
    if (e.contains("video_end")) o.video_end = e["video_end"].get<double>();
    const int64_t total = r["total_frames"].get<int64_t>();
    const double fps = r["video_fps"].get<double>();
    if (r.contains("error")) {
      EXPECT_THROW(qwen_video_plan(total, fps, o), InputError);
      ++errors;
      continue;
    }
    const QwenVideoPlan p = qwen_video_plan(total, fps, o);
    EXPECT_EQ(p.nframes, r["nframes"].get<int>());
    EXPECT_EQ(p.indices, r["indices"].get<std::vector<int64_t>>());
    ++checked;
  }
  EXPECT_GE(checked, 60);
  EXPECT_GE(errors, 1);
}

TEST(QwenVideoPlan, FrameSizeBudget) {
  QwenVideoOptions o;
  // 64x48 at the default bounds: upscaled to at least 128 * 28 * 28 pixels.
  EXPECT_EQ(qwen_video_frame_size(48, 64, 4, o), (std::pair<int, int>{280, 392}));
  // A long video spends the total budget: 128000 * 784 * 0.9 / 768 * 2 pixels per frame is more
  // than 768 tokens' worth, so the per-frame cap applies; with 4000 frames the floor of
  // 1.05 * min_pixels does.
  const auto [h768, w768] = qwen_video_frame_size(1080, 1920, 768, o);
  EXPECT_LE(static_cast<int64_t>(h768) * w768, 768 * 784);
  const auto [h, w] = qwen_video_frame_size(1080, 1920, 4000, o);
  EXPECT_LE(static_cast<int64_t>(h) * w, static_cast<int64_t>(128 * 784 * 1.05));
  EXPECT_GE(static_cast<int64_t>(h) * w, 128 * 784 * 0.9);
  o.min_pixels = 1000;
  o.max_pixels = 500;
  EXPECT_THROW(qwen_video_frame_size(48, 64, 4, o), ConfigError);
}

}  // namespace
}  // namespace omni
