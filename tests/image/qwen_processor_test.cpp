// Qwen2-VL / Qwen2.5-Omni image and video processors against transformers + qwen-omni-utils
// (fixtures from scripts/fixtures/make_qwen_processor_fixture.py, made by calling those libraries).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "modalities/image/preprocess.h"
#include "modalities/image/qwen_vision.h"
#include "modalities/media/media_reader.h"

namespace omni {
namespace {

const std::string kFix = std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/";
const std::string kDir = kFix + "qwen_processor/";

nlohmann::json manifest() {
  std::ifstream f(kDir + "manifest.json");
  if (!f) throw std::runtime_error("missing " + kDir + "manifest.json");
  return nlohmann::json::parse(f);
}

template <typename T>
std::vector<T> load(const std::string& name, size_t count) {
  std::vector<T> v(count);
  std::ifstream in(kDir + name, std::ios::binary);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(count * sizeof(T)));
  if (!in || in.gcount() != static_cast<std::streamsize>(count * sizeof(T)))
    throw std::runtime_error("short fixture " + name);
  return v;
}

cv::Mat load_rgb(const std::string& path) {
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
  if (bgr.empty()) throw std::runtime_error("cannot read " + path);
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

// Largest |a - b| over pixel_values rows `rows` of `ours` (every `step`-th row) against `ref`
// holding those rows with `ref_cols` columns; with `t_half`, ref holds [C, P*P] and both temporal
// slots of ours are compared with it. Differences are scaled by std to the [0, 1] pixel range
// when `pixel_scale`.
double max_diff(const at::Tensor& ours, const std::vector<float>& ref, int64_t rows, int64_t step,
                bool t_half, bool pixel_scale = false, int T = 2, int PP = 196) {
  const QwenVisionOptions defaults;
  const at::Tensor o = ours.contiguous();
  const float* p = o.data_ptr<float>();
  const int64_t cols = o.size(1);
  double m = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = p + r * step * cols;
    for (int c = 0; c < 3; ++c) {
      for (int t = 0; t < T; ++t) {
        for (int k = 0; k < PP; ++k) {
          const float a = row[(c * T + t) * PP + k];
          const float b = t_half ? ref[(r * 3 + c) * PP + k] : ref[r * cols + (c * T + t) * PP + k];
          const double d = std::fabs(a - b) * (pixel_scale ? defaults.std[c] : 1.0);
          m = std::max(m, d);
        }
      }
    }
  }
  return m;
}

TEST(QwenImageProcessor, MatchesTransformersPilProcessor) {
  const nlohmann::json man = manifest();
  ASSERT_GE(man["images"].size(), 4u);
  for (const auto& c : man["images"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const cv::Mat rgb = load_rgb(kFix + c["input"].get<std::string>());
    QwenVisionOptions o;
    if (!c["min_pixels"].is_null()) {
      o.min_pixels = c["min_pixels"].get<int64_t>();
      o.max_pixels = c["max_pixels"].get<int64_t>();
    }
    const QwenVisualInputs in =
        qwen_image_inputs(rgb.ptr<uint8_t>(0), rgb.cols, rgb.rows, rgb.step[0], o);
    const auto grid = c["grid_thw"].get<std::vector<int64_t>>();
    EXPECT_EQ(in.grid_thw[0], grid[0]);
    EXPECT_EQ(in.grid_thw[1], grid[1]);
    EXPECT_EQ(in.grid_thw[2], grid[2]);
    EXPECT_EQ(qwen_image_grid(rgb.rows, rgb.cols, o), in.grid_thw);
    EXPECT_EQ(in.num_tokens(), c["placeholder_tokens"].get<int64_t>());
    const int64_t rows = c["rows"].get<int64_t>();
    ASSERT_EQ(in.pixel_values.size(0), rows);
    ASSERT_EQ(in.pixel_values.size(1), c["cols"].get<int64_t>());
    const auto ref = load<float>(c["pil_half"].get<std::string>(), rows * 588);
    // PIL's resize is reproduced bit for bit: only float rounding of the normalisation remains,
    // also where the image is resampled.
    EXPECT_LE(max_diff(in.pixel_values, ref, rows, 1, true), 1e-5);
    if (c.contains("torchvision_half")) {
      // transformers 5's default (torchvision) image processor: its uint8 resize kernel is
      // reproduced too.
      QwenVisionOptions tv = o;
      tv.resample = QwenResample::kTorchvision;
      const QwenVisualInputs t =
          qwen_image_inputs(rgb.ptr<uint8_t>(0), rgb.cols, rgb.rows, rgb.step[0], tv);
      const auto tref = load<float>(c["torchvision_half"].get<std::string>(), rows * 588);
      EXPECT_LE(max_diff(t.pixel_values, tref, rows, 1, true), 1e-5);
      // And the two backends differ by one 8-bit level at most (transformers' own numbers).
      EXPECT_LE(c["torchvision_vs_pil_max_abs_pixel"].get<double>(), 1.0 / 255 + 1e-6);
    }
  }
}

TEST(QwenImageProcessor, PatchOrderIsTransformers) {
  // A 28x56 image whose pixel (y, x) encodes its position: row r of pixel_values must be patch
  // (bh*2+mh, bw*2+mw) in merge order, columns [c][t][ph][pw].
  const int H = 28, W = 56;
  std::vector<float> frame(3 * H * W);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) frame[(c * H + y) * W + x] = c * 10000 + y * 100 + x;
  QwenVisionOptions o;
  const QwenVisualInputs in = qwen_patchify(frame.data(), 1, H, W, o);
  ASSERT_EQ(in.pixel_values.size(0), 8);
  ASSERT_EQ(in.pixel_values.size(1), 3 * 2 * 14 * 14);
  EXPECT_EQ(in.grid_thw, (std::array<int64_t, 3>{1, 2, 4}));
  EXPECT_EQ(in.num_tokens(), 2);
  auto at = [&](int64_t r, int c, int t, int ph, int pw) {
    return in.pixel_values[r][((c * 2 + t) * 14 + ph) * 14 + pw].item<float>();
  };
  // Row 3: merge block (0, 0), (mh, mw) = (1, 1) -> patch (1, 1); row 4: block (0, 1), (0, 0).
  EXPECT_EQ(at(3, 0, 0, 0, 0), 14 * 100 + 14);
  EXPECT_EQ(at(3, 2, 1, 5, 7), 20000 + 19 * 100 + 21);
  EXPECT_EQ(at(4, 1, 0, 0, 0), 10000 + 0 + 28);
  EXPECT_EQ(at(7, 0, 1, 13, 13), 27 * 100 + 55);
}

TEST(QwenImageProcessor, BadInputAndConfig) {
  QwenVisionOptions o;
  std::vector<uint8_t> px(3 * 600 * 2, 7);
  EXPECT_THROW(qwen_image_inputs(nullptr, 10, 10, 30, o), InputError);
  EXPECT_THROW(qwen_image_inputs(px.data(), 600, 2, 1800, o), InputError);  // ratio 300
  EXPECT_THROW(qwen_image_inputs(px.data(), 10, 10, 20, o), InputError);    // short stride
  EXPECT_THROW(qwen_image_inputs(px.data(), 0, 10, 30, o), InputError);
  QwenVisionOptions bad = o;
  bad.min_pixels = bad.max_pixels + 1;
  EXPECT_THROW(qwen_image_inputs(px.data(), 10, 10, 30, bad), ConfigError);
  EXPECT_THROW(QwenVisionOptions::from_config(nlohmann::json{{"patch_size", "14"}}), ConfigError);
  EXPECT_THROW(QwenVisionOptions::from_config(nlohmann::json{{"image_mean", {0.5, 0.5}}}),
               ConfigError);
  EXPECT_THROW(QwenVisionOptions::from_config(nlohmann::json{{"do_normalize", false}}),
               ConfigError);
  std::vector<float> f(3 * 30 * 28);
  EXPECT_THROW(qwen_patchify(f.data(), 1, 30, 28, o), InputError);  // not a multiple of 28
}

TEST(QwenImageProcessor, HostileConfigSizesAreRefused) {
  // Sizes from a preprocessor_config.json are checked before anything is sized by them: no
  // wrapped 32-bit value, no undefined double -> integer conversion, no picture of what min_pixels
  // claims (10^12 pixels made ask_clip allocate until std::bad_alloc).
  using J = nlohmann::json;
  EXPECT_THROW(QwenVisionOptions::from_config(J{{"patch_size", (int64_t{1} << 32) + 14}}),
               ConfigError);  // was read as 14
  EXPECT_THROW(QwenVisionOptions::from_config(J{{"patch_size", 1e300}}), ConfigError);
  EXPECT_THROW(QwenVisionOptions::from_config(J{{"patch_size", 18446744073709551615ull}}),
               ConfigError);
  EXPECT_THROW(QwenVisionOptions::from_config(J{{"patch_size", 4096}}), ConfigError);
  EXPECT_THROW(QwenVisionOptions::from_config(J{{"merge_size", 1000}}), ConfigError);
  EXPECT_THROW(QwenVisionOptions::from_config(J{{"min_pixels", 1000000000000}}), ConfigError);
  EXPECT_THROW(QwenVideoOptions::from_config(J{{"min_frames", int64_t{1} << 40}}), ConfigError);
  EXPECT_EQ(QwenVisionOptions::from_config(J{{"patch_size", 14.0}}).patch_size, 14);
  // Within the caps, a resize may still not produce more than kMaxResizedPixels: the largest
  // factor (1024 x 64) rounds a small picture up to 65536 x 65536.
  QwenVisionOptions big;
  big.patch_size = 1024;
  big.merge_size = 64;
  EXPECT_THROW(qwen_image_size(100, 100, big), InputError);
  EXPECT_THROW(smart_resize(28, 28, 28, int64_t{1} << 40, int64_t{1} << 41), InputError);
  // CLIP's resize scales the short side to `size`: a 2000 x 1 sliver would become 448000 x 224.
  const PreprocessOptions clip = PreprocessOptions::defaults_for(PreprocessMode::kClip);
  EXPECT_THROW(preprocess_resize_size(1, 2000, clip), InputError);
  EXPECT_EQ(preprocess_resize_size(1, 200, clip), (std::pair<int, int>{224, 44800}));
}

TEST(QwenImageProcessor, OptionsFromPreprocessorConfig) {
  // The keys of Qwen2.5-Omni's preprocessor_config.json (image + audio in one file).
  const nlohmann::json cfg = nlohmann::json::parse(R"({
    "chunk_length": 300, "dither": 0.0, "feature_extractor_type": "WhisperFeatureExtractor",
    "feature_size": 128, "hop_length": 160, "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "Qwen2VLImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711], "max_pixels": 12845056,
    "merge_size": 2, "min_pixels": 3136, "n_fft": 400, "n_samples": 4800000,
    "nb_max_frames": 30000, "padding_side": "right", "padding_value": 0.0, "patch_size": 14,
    "processor_class": "Qwen2_5OmniProcessor", "return_attention_mask": true,
    "sampling_rate": 16000, "temporal_patch_size": 2})");
  const QwenVisionOptions o = QwenVisionOptions::from_config(cfg);
  EXPECT_EQ(o.min_pixels, 3136);
  EXPECT_EQ(o.max_pixels, 12845056);
  EXPECT_EQ(o.factor(), 28);
  EXPECT_DOUBLE_EQ(o.std[1], 0.26130258);
  EXPECT_EQ(o.resample, QwenResample::kTorchvision);  // what transformers 5 loads for it
  EXPECT_EQ(QwenVisionOptions::from_config(
                nlohmann::json{{"image_processor_type", "Qwen2VLImageProcessorPil"}})
                .resample,
            QwenResample::kPil);
  EXPECT_EQ(QwenVisionOptions::from_config(nlohmann::json::object()).resample, QwenResample::kPil);
  // Videos keep Qwen2_5OmniProcessor's video bounds, not the image ones.
  const QwenVideoOptions v = QwenVideoOptions::from_config(cfg);
  EXPECT_EQ(v.processor.min_pixels, 128 * 28 * 28);
  EXPECT_EQ(v.processor.max_pixels, 768 * 28 * 28);
  EXPECT_EQ(v.processor.resample, QwenResample::kTorchvision);
  // transformers 5 style size dict.
  const QwenVisionOptions s = QwenVisionOptions::from_config(
      nlohmann::json{{"size", {{"shortest_edge", 100}, {"longest_edge", 5000}}}});
  EXPECT_EQ(s.min_pixels, 100);
  EXPECT_EQ(s.max_pixels, 5000);
}

QwenVideoOptions video_options(const nlohmann::json& c) {
  QwenVideoOptions o;
  const auto& e = c["ele"];
  if (e.contains("fps")) o.fps = e["fps"].get<double>();
  if (e.contains("nframes")) o.nframes = e["nframes"].get<int>();
  if (e.contains("min_pixels")) o.min_pixels = e["min_pixels"].get<int64_t>();
  if (e.contains("max_pixels")) o.max_pixels = e["max_pixels"].get<int64_t>();
  if (e.contains("total_pixels")) o.total_pixels = e["total_pixels"].get<double>();
  if (e.contains("max_frames")) o.max_frames = e["max_frames"].get<int>();
  if (!c["processor_size"].is_null()) {
    o.processor.min_pixels = c["processor_size"]["shortest_edge"].get<int64_t>();
    o.processor.max_pixels = c["processor_size"]["longest_edge"].get<int64_t>();
  }
  o.processor_fps = c["processor_fps"].get<double>();
  return o;
}

TEST(QwenVideoProcessor, ProcessingMatchesOnTheReferenceFrames) {
  // The frames qwen-omni-utils decoded (torchcodec), through our resize + processor: isolates
  // the processing from decoding.
  const nlohmann::json man = manifest();
  for (const auto& c : man["videos"]) {
    if (!c.contains("decoded_rgb")) continue;
    const auto shape = c["decoded_shape"].get<std::vector<int64_t>>();  // T, C, H, W
    const int64_t T = shape[0], H = shape[2], W = shape[3];
    const auto tchw = load<uint8_t>(c["decoded_rgb"].get<std::string>(), T * 3 * H * W);
    std::vector<std::vector<uint8_t>> hwc(T, std::vector<uint8_t>(3 * H * W));
    std::vector<RgbView> views;
    for (int64_t t = 0; t < T; ++t) {
      for (int ch = 0; ch < 3; ++ch)
        for (int64_t k = 0; k < H * W; ++k) hwc[t][k * 3 + ch] = tchw[(t * 3 + ch) * H * W + k];
      views.push_back({hwc[t].data(), static_cast<int>(W), static_cast<int>(H), 3 * W});
    }
    const QwenVideoOptions o = video_options(c);
    const QwenVideoPlan plan =
        qwen_video_plan(c["total_frames"].get<int64_t>(), c["video_fps"].get<double>(), o);
    EXPECT_EQ(plan.indices, c["indices"].get<std::vector<int64_t>>());
    const QwenVideoInputs v = qwen_video_inputs_from_frames(views, plan, o);
    const int64_t rows = c["rows"].get<int64_t>();
    ASSERT_EQ(v.pixel_values.size(0), rows);
    const auto ref = load<float>(c["pixel_values"].get<std::string>(), rows * 1176);
    // torchvision's float bicubic is reproduced: float rounding only.
    EXPECT_LE(max_diff(v.pixel_values, ref, rows, 1, false), 1e-5);
  }
}

TEST(QwenVideoProcessor, ClipMatchesQwenOmniUtilsAndTransformers) {
  const nlohmann::json man = manifest();
  const std::string clip = kDir + "clip_64x48.mp4";
  ASSERT_GE(man["videos"].size(), 5u);
  for (const auto& c : man["videos"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const QwenVideoOptions o = video_options(c);
    const QwenVideoInputs v = qwen_video_inputs(clip, o);
    EXPECT_EQ(v.plan.total_frames, c["total_frames"].get<int64_t>());
    EXPECT_NEAR(v.plan.video_fps, c["video_fps"].get<double>(), 1e-9);
    EXPECT_EQ(v.plan.indices, c["indices"].get<std::vector<int64_t>>());
    const auto hw = c["resized_hw"].get<std::vector<int>>();
    EXPECT_EQ(v.resized_height, hw[0]);
    EXPECT_EQ(v.resized_width, hw[1]);
    const auto grid = c["grid_thw"].get<std::vector<int64_t>>();
    EXPECT_EQ(v.grid_thw, (std::array<int64_t, 3>{grid[0], grid[1], grid[2]}));
    EXPECT_EQ(v.num_tokens(), c["placeholder_tokens"].get<int64_t>());
    EXPECT_DOUBLE_EQ(v.second_per_grid, c["second_per_grid"].get<double>());
    const int64_t rows = c["rows"].get<int64_t>();
    ASSERT_EQ(v.pixel_values.size(0), rows);
    if (!c.contains("pixel_values")) continue;
    const int64_t step = c.value("row_step", 1);
    const int64_t stored = (rows + step - 1) / step;
    const auto ref = load<float>(c["pixel_values"].get<std::string>(), stored * 1176);
    // MediaReader's decoding (Debian's FFmpeg) and the float resize reproduce torchcodec +
    // torchvision on this clip: float rounding only (the issue allows 3/255 in [0, 1] pixel units).
    const double d = max_diff(v.pixel_values, ref, stored, step, false, true);
    std::printf("[ %s ] max |pixel diff| vs transformers: %.5f (%.2f / 255)\n",
                c["name"].get<std::string>().c_str(), d, d * 255);
    EXPECT_LE(d, 1e-5);
  }
}

TEST(QwenVideoProcessor, BadVideo) {
  QwenVideoOptions o;
  EXPECT_THROW(qwen_video_inputs(kDir + "does_not_exist.mp4", o), InputError);
  EXPECT_THROW(qwen_video_inputs(kFix + "image/photo_a.png", o), InputError);  // 1 frame
  EXPECT_THROW(qwen_video_inputs_from_frames({}, QwenVideoPlan{}, o), InputError);
}

}  // namespace
}  // namespace omni
