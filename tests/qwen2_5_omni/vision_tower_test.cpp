// Qwen2.5-Omni vision tower against transformers' thinker.visual on the tiny checkpoint
// (references: scripts/fixtures/make_qwen_vision_refs.py).
#include "models/qwen2_5_omni/vision_tower.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "modalities/common/checkpoint.h"
#include "modalities/common/safetensors.h"
#ifdef OMNI_WITH_MEDIA
#include "modalities/image/qwen_vision.h"
#include "modalities/media/image_reader.h"
#endif

namespace omni::qwen {
namespace {

const std::string kFix = std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/";
const std::string kCkpt = kFix + "hf/qwen2_5_omni_tiny";
const std::string kRef = kFix + "hf/qwen2_5_omni_tiny_vision_ref.safetensors";
const std::vector<std::string> kCases = {"pad_window", "video_t2", "two_images"};

// fp32 against transformers' fp32 tower.
constexpr double kTolF32 = 1e-5;
// bf16 (module .to(kBFloat16)): against transformers' own bf16 run, and against the fp32 output
// (outputs are O(0.5); measured: up to 3.9e-3 vs transformers bf16, 2.6e-3 vs fp32, and
// transformers' own bf16 run is 3.5e-3 off its fp32 one).
constexpr double kTolBf16VsHf = 1e-2;
constexpr double kTolBf16VsF32 = 1e-2;
// A deliberately broken tower must fail the fp32 check with a margin (the weights are perturbed
// by about 0.05, so one zeroed bias moves the output by a few 1e-5 only).
constexpr double kBroken = 2 * kTolF32;

const Checkpoint& ckpt() {
  static const std::shared_ptr<Checkpoint> c = Checkpoint::open(kCkpt);
  return *c;
}
const SafeTensorsFile& ref() {
  static const std::shared_ptr<SafeTensorsFile> r = SafeTensorsFile::open(kRef);
  return *r;
}
at::Tensor get(const std::string& name) { return ref().get(name); }

VisionTowerOptions tiny_options() {
  const nlohmann::json* vc = ckpt().tower_config("vision");
  if (vc == nullptr) throw std::runtime_error("tiny checkpoint has no vision config");
  return VisionTowerOptions::from_config(*vc);
}

VisionTower load_tower(const VisionTowerOptions& o) {
  VisionTower t(o);
  const LoadReport r = ckpt().load_into(*t, {"vision."});
  EXPECT_EQ(r.tensors, static_cast<int64_t>(t->parameters().size() + t->buffers().size()));
  t->eval();
  return t;
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1e30;
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

at::Tensor run(VisionTower& t, const std::string& name) {
  c10::NoGradGuard ng;
  return t->forward(get(name + ".pixel_values").to(at::kFloat), get(name + ".grid_thw"));
}

std::vector<int64_t> as_vec(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kLong).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

TEST(QwenVisionTower, OptionsFromTheCheckpointConfig) {
  const VisionTowerOptions o = tiny_options();
  EXPECT_EQ(o.depth, 2);
  EXPECT_EQ(o.hidden_size, 16);
  EXPECT_EQ(o.intermediate_size, 24);
  EXPECT_EQ(o.num_heads, 2);
  EXPECT_EQ(o.out_hidden_size, 32);
  EXPECT_EQ(o.window_size, 56);
  EXPECT_EQ(o.window_cells(), 2);
  EXPECT_EQ(o.fullatt_block_indexes, std::vector<int64_t>{1});
  EXPECT_EQ(o.hidden_act, "silu");
  EXPECT_DOUBLE_EQ(o.rope_theta, 10000.0);
  EXPECT_EQ(o.patch_dim(), 1176);
}

TEST(QwenVisionTower, LoadsEveryTensorOfTheCheckpoint) {
  VisionTower t(tiny_options());
  const LoadReport r = ckpt().load_into(*t, {"vision."});  // throws on missing / unexpected
  int64_t in_ckpt = 0;
  for (const auto& n : ckpt().names()) in_ckpt += n.rfind("vision.", 0) == 0 ? 1 : 0;
  EXPECT_EQ(r.tensors, in_ckpt);
  EXPECT_EQ(in_ckpt, 38);
  EXPECT_EQ(t->named_parameters().size(), 38u);
  EXPECT_EQ(t->named_buffers().size(), 0u);
}

TEST(QwenVisionTower, LayoutEqualsTransformersVisionUtils) {
  const VisionTowerOptions o = tiny_options();
  for (const std::string c : {"pad_window", "video_t2", "two_images", "ident"}) {
    SCOPED_TRACE(c);
    const VisionLayout L = vision_layout(get(c + ".grid_thw"), o);
    EXPECT_EQ(L.window_index, as_vec(get(c + ".window_index")));
    EXPECT_EQ(L.cu_window_seqlens, as_vec(get(c + ".cu_window_seqlens")));
    EXPECT_EQ(L.cu_seqlens, as_vec(get(c + ".cu_seqlens")));
    const std::vector<int64_t> pos = as_vec(get(c + ".position_ids"));
    ASSERT_EQ(pos.size(), 2 * L.position_ids.size());
    for (size_t i = 0; i < L.position_ids.size(); ++i) {
      ASSERT_EQ(L.position_ids[i][0], pos[2 * i]) << i;
      ASSERT_EQ(L.position_ids[i][1], pos[2 * i + 1]) << i;
    }
    for (size_t i = 0; i < L.window_index.size(); ++i)
      ASSERT_EQ(L.reverse_index[static_cast<size_t>(L.window_index[i])], static_cast<int64_t>(i));
  }
  // pad_window: merged grid 5x3 in 2x2 windows -> 3x2 windows, the last row and column partial.
  const VisionLayout pw = vision_layout(get("pad_window.grid_thw"), o);
  EXPECT_EQ(pw.cu_window_seqlens, (std::vector<int64_t>{0, 16, 24, 40, 48, 56, 60}));
}

TEST(QwenVisionTower, Fp32MatchesTransformers) {
  VisionTower t = load_tower(tiny_options());
  for (const std::string& c : kCases) {
    const at::Tensor out = run(t, c);
    const double err = max_abs(out, get(c + ".output"));
    std::printf("fp32 %-10s rows %3lld  max abs error %.3g\n", c.c_str(),
                static_cast<long long>(out.size(0)), err);
    EXPECT_LE(err, kTolF32) << c;
    EXPECT_EQ(out.scalar_type(), at::kFloat);
  }
}

// Every attention q and k weight and bias times 16 (exact), as the generator's sharp tower.
void sharpen_qk(VisionTower& t) {
  c10::NoGradGuard ng;
  for (auto& p : t->named_parameters())
    if (p.key().find(".attn.q.") != std::string::npos ||
        p.key().find(".attn.k.") != std::string::npos)
      p.value().mul_(16.0);
}

TEST(QwenVisionTower, SharpAttentionMatchesTransformers) {
  VisionTower t = load_tower(tiny_options());
  sharpen_qk(t);
  const double err = max_abs(run(t, "pad_window"), get("pad_window.output_qk16"));
  std::printf("fp32 pad_window, q/k x16: max abs error %.3g\n", err);
  EXPECT_LE(err, kTolF32);
}

TEST(QwenVisionTower, BlocksOutputMatchesTransformersInWindowOrder) {
  VisionTower t = load_tower(tiny_options());
  c10::NoGradGuard ng;
  const VisionLayout L = vision_layout(get("pad_window.grid_thw"), t->options());
  const at::Tensor h = t->forward_blocks(get("pad_window.pixel_values").to(at::kFloat), L);
  EXPECT_LE(max_abs(h, get("pad_window.hidden_before_merger")), kTolF32);
}

TEST(QwenVisionTower, SeveralItemsInOneCallEqualOneCallEach) {
  VisionTower t = load_tower(tiny_options());
  c10::NoGradGuard ng;
  const at::Tensor pv = get("two_images.pixel_values").to(at::kFloat);
  const at::Tensor grid = get("two_images.grid_thw");
  const int64_t n0 = grid[0].prod().item<int64_t>();
  const at::Tensor both = t->forward(pv, grid);
  const at::Tensor a = t->forward(pv.slice(0, 0, n0), grid.slice(0, 0, 1));
  const at::Tensor b = t->forward(pv.slice(0, n0), grid.slice(0, 1));
  EXPECT_LE(max_abs(both, at::cat({a, b})), 1e-6);
  // A video and an image together: the video's rows first, then the image's.
  const at::Tensor vpv = get("video_t2.pixel_values").to(at::kFloat);
  const at::Tensor vgrid = get("video_t2.grid_thw");
  const at::Tensor mixed =
      t->forward(at::cat({vpv, pv.slice(0, 0, n0)}), at::cat({vgrid, grid.slice(0, 0, 1)}));
  EXPECT_LE(max_abs(mixed, at::cat({get("video_t2.output"), a})), kTolF32);
}

TEST(QwenVisionTower, Bf16WithinDocumentedTolerance) {
  VisionTower t = load_tower(tiny_options());
  t->to(at::kBFloat16);
  for (const std::string& c : kCases) {
    const at::Tensor out = run(t, c);
    EXPECT_EQ(out.scalar_type(), at::kBFloat16);
    const double vs_hf = max_abs(out.to(at::kFloat), get(c + ".output_bf16"));
    const double vs_f32 = max_abs(out.to(at::kFloat), get(c + ".output"));
    std::printf("bf16 %-10s max abs error vs transformers bf16 %.3g, vs fp32 %.3g\n", c.c_str(),
                vs_hf, vs_f32);
    EXPECT_LE(vs_hf, kTolBf16VsHf) << c;
    EXPECT_LE(vs_f32, kTolBf16VsF32) << c;
  }
}

#ifdef OMNI_WITH_MEDIA
TEST(QwenVisionTower, OurProcessorOnACommittedImageMatchesTransformers) {
  const cv::Mat rgb = load_image_rgb(kFix + "qwen_processor/ident_84x56.png");
  QwenVisionOptions po;
  po.resample = QwenResample::kTorchvision;  // Qwen2_5OmniProcessor's default image processor
  const QwenVisualInputs in =
      qwen_image_inputs(rgb.data, rgb.cols, rgb.rows, static_cast<int64_t>(rgb.step[0]), po);
  const at::Tensor grid =
      at::tensor(std::vector<int64_t>(in.grid_thw.begin(), in.grid_thw.end()), at::kLong)
          .view({1, 3});
  EXPECT_TRUE(at::equal(grid, get("ident.grid_thw")));
  VisionTower t = load_tower(tiny_options());
  c10::NoGradGuard ng;
  const at::Tensor out = t->forward(in.pixel_values, grid);
  const double err = max_abs(out, get("ident.output"));
  std::printf("fp32 ident (our processor) max abs error %.3g\n", err);
  EXPECT_LE(err, kTolF32);
  EXPECT_EQ(out.size(0), in.num_tokens());
}
#endif

// The references must catch a wrong window layout, full-attention list, bias or norm weight.
TEST(QwenVisionTower, ReferencesCatchBrokenTowers) {
  const VisionTowerOptions good = tiny_options();
  auto expect_caught = [&](const char* what, const VisionTowerOptions& o,
                           const std::function<void(VisionTower&)>& edit) {
    VisionTower t = load_tower(o);
    {
      c10::NoGradGuard ng;
      edit(t);
    }
    double worst = 0;
    for (const std::string& c : kCases)
      worst = std::max(worst, max_abs(run(t, c), get(c + ".output")));
    sharpen_qk(t);
    const double sharp = max_abs(run(t, "pad_window"), get("pad_window.output_qk16"));
    std::printf("broken: %-44s max abs error %.3g (q/k x16: %.3g)\n", what, worst, sharp);
    EXPECT_GT(std::max(worst, sharp), kBroken) << what;
  };
  auto none = [](VisionTower&) {};
  auto param = [](VisionTower& t, const std::string& n) { return t->named_parameters()[n]; };
  VisionTowerOptions o = good;
  o.fullatt_block_indexes = {};
  expect_caught("fullatt_block_indexes {} (all windowed)", o, none);
  o.fullatt_block_indexes = {0, 1};
  expect_caught("fullatt_block_indexes {0, 1} (none windowed)", o, none);
  o.fullatt_block_indexes = {0};
  expect_caught("fullatt_block_indexes {0} (wrong block)", o, none);
  o = good;
  o.window_size = 112;
  expect_caught("window_size 112 (4x4-cell windows)", o, none);
  expect_caught("blocks.0.attn.q.bias zeroed", good,
                [&](VisionTower& t) { param(t, "blocks.0.attn.q.bias").zero_(); });
  expect_caught("blocks.1.mlp.up_proj.bias zeroed", good,
                [&](VisionTower& t) { param(t, "blocks.1.mlp.up_proj.bias").zero_(); });
  expect_caught("blocks.0.norm1.weight = 1", good,
                [&](VisionTower& t) { param(t, "blocks.0.norm1.weight").fill_(1); });
  expect_caught("merger.ln_q.weight = 1", good,
                [&](VisionTower& t) { param(t, "merger.ln_q.weight").fill_(1); });
  o = good;
  o.rope_theta = 1000.0;
  expect_caught("rope_theta 1000", o, none);
}

TEST(QwenVisionTower, BadInputsAreInputErrors) {
  VisionTower t = load_tower(tiny_options());
  c10::NoGradGuard ng;
  const at::Tensor pv = get("pad_window.pixel_values").to(at::kFloat);  // 60 rows, grid 1x10x6
  auto message = [&](const at::Tensor& p, const at::Tensor& g) -> std::string {
    try {
      t->forward(p, g);
    } catch (const InputError& e) {
      return e.what();
    }
    return "(no InputError)";
  };
  auto grid = [](std::vector<int64_t> v) {
    const auto n = static_cast<int64_t>(v.size()) / 3;
    return at::tensor(v, at::kLong).view({n, 3});
  };
  EXPECT_NE(message(pv, grid({1, 10, 8})).find("describes 80 patches"), std::string::npos)
      << message(pv, grid({1, 10, 8}));
  EXPECT_NE(message(pv.slice(0, 0, 59), grid({1, 10, 6})).find("pixel_values has 59 rows"),
            std::string::npos);
  EXPECT_NE(message(pv, grid({1, 5, 12})).find("multiples of spatial_merge_size 2"),
            std::string::npos)
      << message(pv, grid({1, 5, 12}));
  EXPECT_NE(message(pv, grid({1, 4, 6, 1, 3, 12})).find("row 1 (1, 3, 12)"), std::string::npos)
      << message(pv, grid({1, 4, 6, 1, 3, 12}));
  EXPECT_NE(message(pv, grid({0, 10, 6})).find("positive"), std::string::npos);
  EXPECT_NE(message(pv, grid({1, -10, -6})).find("positive"), std::string::npos);
  EXPECT_NE(message(pv, at::tensor(std::vector<int64_t>{1, 10, 6})).find("[n, 3]"),
            std::string::npos);
  EXPECT_NE(message(pv, grid({1, 10, 6}).to(at::kFloat)).find("integer"), std::string::npos);
  EXPECT_NE(message(pv.slice(1, 0, 588), grid({1, 10, 6})).find("[N, 1176]"), std::string::npos);
  EXPECT_NE(message(pv.to(at::kInt), grid({1, 10, 6})).find("floating"), std::string::npos);
  // int32 grids (what some processors return) are fine.
  EXPECT_LE(max_abs(t->forward(pv, grid({1, 10, 6}).to(at::kInt)), get("pad_window.output")),
            kTolF32);
}

TEST(QwenVisionTower, BadConfigsAreConfigErrors) {
  nlohmann::json c = *ckpt().tower_config("vision");
  auto bad = [&](const char* key, nlohmann::json v) {
    nlohmann::json x = c;
    x[key] = std::move(v);
    EXPECT_THROW(VisionTowerOptions::from_config(x), ConfigError) << key;
  };
  bad("window_size", 20);           // smaller than one merged cell (28 px)
  bad("num_heads", 3);              // 16 % 3
  bad("hidden_size", 20);           // head dim 10: not a multiple of 4
  bad("fullatt_block_indexes", 1);  // not a list
  bad("hidden_act", "relu6");
  bad("depth", 0);
  bad("patch_size", "14");
  // Qwen2.5-VL's key for the channels and defaults for absent keys.
  nlohmann::json vl = {{"in_chans", 3}, {"depth", 1}, {"hidden_size", 8}, {"num_heads", 2}};
  const VisionTowerOptions o = VisionTowerOptions::from_config(vl);
  EXPECT_EQ(o.in_channels, 3);
  EXPECT_EQ(o.window_size, 112);
  EXPECT_EQ(o.out_hidden_size, 3584);
  EXPECT_DOUBLE_EQ(o.rope_theta, 10000.0);
  // Default full-attention blocks beyond a cut depth are ignored, as transformers does.
  EXPECT_EQ(o.fullatt_block_indexes, (std::vector<int64_t>{7, 15, 23, 31}));
  EXPECT_NO_THROW(VisionTower{o});
}

}  // namespace
}  // namespace omni::qwen
