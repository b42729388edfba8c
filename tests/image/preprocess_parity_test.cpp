// Parity of the image preprocessing with the reference processors (PIL + numpy fixtures made by
// scripts/fixtures/make_image_fixture.py), plus smart_resize rules and stride handling.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/packet.h"
#include "modalities/image/frame_tensor.h"
#include "modalities/image/pil_resize.h"
#include "modalities/image/preprocess.h"

namespace omni {
namespace {

const std::string kDir = std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/image/";

cv::Mat load_rgb(const std::string& name) {
  cv::Mat bgr = cv::imread(kDir + name, cv::IMREAD_COLOR);
  if (bgr.empty()) throw std::runtime_error("cannot read fixture " + kDir + name);
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

at::Tensor load_f32(const std::string& name, const std::vector<int64_t>& shape) {
  at::Tensor t = at::empty(shape, at::kFloat);
  std::ifstream in(kDir + name, std::ios::binary);
  in.read(reinterpret_cast<char*>(t.data_ptr<float>()), t.numel() * 4);
  if (!in || in.gcount() != t.numel() * 4) throw std::runtime_error("short fixture " + name);
  return t;
}

at::Tensor denormalise(const at::Tensor& x, const PreprocessOptions& o) {
  at::Tensor mean = at::tensor(std::vector<float>(o.mean.begin(), o.mean.end())).view({3, 1, 1});
  at::Tensor std = at::tensor(std::vector<float>(o.std.begin(), o.std.end())).view({3, 1, 1});
  return x * std + mean;
}

PreprocessOptions options_for(const nlohmann::json& c) {
  PreprocessOptions o =
      PreprocessOptions::defaults_for(preprocess_mode_from_name(c["mode"].get<std::string>()));
  const auto& p = c["params"];
  if (p.contains("size")) o.size = p["size"].get<int>();
  if (p.contains("min_pixels")) o.min_pixels = p["min_pixels"].get<int64_t>();
  if (p.contains("max_pixels")) o.max_pixels = p["max_pixels"].get<int64_t>();
  return o;
}

TEST(PreprocessParity, MatchesReferenceProcessors) {
  std::ifstream f(kDir + "manifest.json");
  ASSERT_TRUE(f) << "missing " << kDir << "manifest.json";
  const nlohmann::json manifest = nlohmann::json::parse(f);
  ASSERT_GE(manifest.size(), 8u);
  for (const auto& c : manifest) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const cv::Mat rgb = load_rgb(c["input"]);
    const PreprocessOptions o = options_for(c);
    const auto shape = c["shape"].get<std::vector<int64_t>>();
    const at::Tensor got = preprocess_rgb(rgb.ptr<uint8_t>(), rgb.cols, rgb.rows,
                                          static_cast<int64_t>(rgb.step[0]), o);
    ASSERT_EQ(got.sizes().vec(), shape);
    const auto [oh, ow] = preprocess_output_size(rgb.rows, rgb.cols, o);
    EXPECT_EQ(oh, shape[1]);
    EXPECT_EQ(ow, shape[2]);
    const at::Tensor want = load_f32(name + ".f32", shape);
    const at::Tensor diff = (denormalise(got, o) - denormalise(want, o)).abs();
    const double max_diff = diff.max().item<double>() * 255.0;
    const double mean_diff = diff.mean().item<double>() * 255.0;
    std::printf("%-20s max |diff| = %.4f/255, mean = %.5f/255\n", name.c_str(), max_diff,
                mean_diff);
    EXPECT_LE(max_diff, 3.0);
    EXPECT_LE(mean_diff, 0.5);
    // The resampler is Pillow's integer arithmetic, so the pixels should agree exactly; only
    // float rounding of the normalisation remains.
    EXPECT_LT(max_diff, 0.01) << "PIL-exact resampling drifted from Pillow";
  }
}

TEST(PreprocessParity, FrameEntryPointMatchesRawBuffer) {
  Frame fr;
  fr.rgb = load_rgb("photo_b.png");
  const PreprocessOptions o = PreprocessOptions::defaults_for(PreprocessMode::kSiglip);
  const at::Tensor a = preprocess_frame(fr, o);
  const at::Tensor b = preprocess_rgb(fr.rgb.ptr<uint8_t>(), fr.rgb.cols, fr.rgb.rows,
                                      static_cast<int64_t>(fr.rgb.step[0]), o);
  EXPECT_TRUE(at::equal(a, b));
  Frame gray;
  gray.rgb = cv::Mat(10, 10, CV_8UC1, cv::Scalar(0));
  EXPECT_THROW(preprocess_frame(gray, o), InputError);
}

TEST(Preprocess, RowStrideIsHonoured) {
  const cv::Mat rgb = load_rgb("edges.png");
  // Same pixels inside a wider buffer (padded rows).
  cv::Mat wide(rgb.rows, rgb.cols + 7, CV_8UC3, cv::Scalar(255, 0, 255));
  rgb.copyTo(wide(cv::Rect(0, 0, rgb.cols, rgb.rows)));
  const cv::Mat view = wide(cv::Rect(0, 0, rgb.cols, rgb.rows));
  for (auto mode : {PreprocessMode::kClip, PreprocessMode::kSiglip, PreprocessMode::kQwen}) {
    PreprocessOptions o = PreprocessOptions::defaults_for(mode);
    o.size = 33;
    const at::Tensor a = preprocess_rgb(rgb.ptr<uint8_t>(), rgb.cols, rgb.rows,
                                        static_cast<int64_t>(rgb.step[0]), o);
    const at::Tensor b = preprocess_rgb(view.ptr<uint8_t>(), view.cols, view.rows,
                                        static_cast<int64_t>(view.step[0]), o);
    EXPECT_TRUE(at::equal(a, b)) << preprocess_mode_name(mode);
  }
}

TEST(PilResize, IdentityAndOneAxisResizes) {
  std::vector<uint8_t> img(5 * 4 * 3);
  for (size_t i = 0; i < img.size(); ++i) img[i] = static_cast<uint8_t>(i * 37 % 251);
  EXPECT_EQ(resize_bicubic_pil(img.data(), 5, 4, 15, 3, 5, 4), img);
  // A constant image stays constant under any resize (coefficients sum to one).
  std::vector<uint8_t> flat(9 * 7 * 3, 200);
  for (auto [w, h] : {std::pair{9, 3}, {4, 7}, {17, 13}, {2, 1}}) {
    const auto out = resize_bicubic_pil(flat.data(), 9, 7, 27, 3, w, h);
    ASSERT_EQ(out.size(), static_cast<size_t>(w * h * 3));
    for (uint8_t v : out) ASSERT_EQ(v, 200);
  }
  EXPECT_THROW(resize_bicubic_pil(img.data(), 5, 4, 10, 3, 2, 2), InputError);
}

TEST(SmartResize, FollowsQwen2VLRules) {
  // round() is half-to-even: 42/28 = 1.5 -> 2, 70/28 = 2.5 -> 2.
  EXPECT_EQ(smart_resize(42, 70, 28, 0, 1 << 30), (std::pair{56, 56}));
  EXPECT_EQ(smart_resize(98, 126, 28, 0, 1 << 30), (std::pair{112, 112}));  // 3.5->4, 4.5->4
  // min_pixels branch (ceil) and max_pixels branch (floor), as in the fixtures.
  EXPECT_EQ(smart_resize(40, 64, 28, 70 * 70, 1003520), (std::pair{56, 112}));
  EXPECT_EQ(smart_resize(160, 240, 28, 3136, 28 * 28 * 16), (std::pair{84, 112}));
  EXPECT_EQ(smart_resize(1080, 1920, 28, 3136, 1003520), (std::pair{728, 1316}));
  EXPECT_THROW(smart_resize(20, 100, 28, 3136, 1003520), InputError);
  EXPECT_THROW(smart_resize(28, 28 * 201, 28, 3136, 1 << 30), InputError);
  EXPECT_THROW(preprocess_mode_from_name("bilinear"), ConfigError);
}

}  // namespace
}  // namespace omni
