// ViT image encoder and the ImageEncoder node: token counts agree with outputs, batch == one at a
// time, positions, weights loading, devices.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/graph.h"
#include "modalities/common/safetensors.h"
#include "modalities/common/tensor_dump.h"
#include "modalities/common/token_chunk.h"
#include "modalities/common/weights.h"
#include "modalities/image/image_nodes.h"
#include "modalities/image/image_tokens.h"
#include "modalities/image/vit.h"
#include "tests/common/fake_context.h"
#if OMNI_WITH_MEDIA
#include "modalities/image/frame_tensor.h"
#endif

namespace omni {
namespace {

ViTOptions small(bool merge, const std::string& pos) {
  return ViTOptions()
      .image_size(32)
      .patch_size(8)
      .width(16)
      .depth(2)
      .heads(2)
      .merge(merge)
      .out_dim(12)
      .positions(pos);
}

TEST(ViT, TokenCountMatchesOutputForManySizes) {
  torch::NoGradGuard ng;
  for (bool merge : {false, true}) {
    for (const char* pos : {"learned", "sinusoidal"}) {
      torch::manual_seed(0);
      ViT vit(small(merge, pos));
      const int unit = merge ? 16 : 8;
      for (int gh = 1; gh <= 4; ++gh) {
        for (int gw : {1, 2, 3, 5}) {
          const int h = gh * unit, w = gw * unit;
          at::Tensor out = vit->forward(torch::randn({1, 3, h, w}));
          SCOPED_TRACE(std::to_string(h) + "x" + std::to_string(w));
          EXPECT_EQ(out.size(1), vit->image_tokens(h, w));
          EXPECT_EQ(out.size(1), image_tokens(h, w, 8, merge));
          EXPECT_EQ(out.size(2), 12);
          const VisualGrid g = vit->grid(h, w);
          EXPECT_EQ(g.h, gh);
          EXPECT_EQ(g.w, gw);
        }
      }
    }
  }
  // Demo geometry: 96x96, patch 16, 2x2 merge -> 3x3 = 9 tokens.
  EXPECT_EQ(image_tokens(96, 96, 16, true), 9);
  EXPECT_EQ(image_tokens(224, 224, 14, false), 256);
}

TEST(ViT, SizesThatDoNotTileAreRejected) {
  ViT vit(small(true, "learned"));
  EXPECT_THROW(image_tokens(24, 32, 8, true), InputError);  // 24 is not a multiple of 16
  EXPECT_THROW(vit->forward(torch::randn({1, 3, 24, 32})), InputError);
  EXPECT_THROW(vit->forward(torch::randn({3, 32, 32})), InputError);
  EXPECT_THROW(ViT(small(false, "rope")), ConfigError);
}

TEST(ViT, BatchEqualsOneAtATime) {
  torch::NoGradGuard ng;
  torch::manual_seed(1);
  ViT vit(small(true, "learned"));
  const at::Tensor x = torch::randn({4, 3, 48, 32});
  const at::Tensor batch = vit->forward(x);
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(at::allclose(batch[i], vit->forward(x.slice(0, i, i + 1))[0], 1e-4, 1e-5)) << i;
}

TEST(ViT, LearnedPositionsInterpolateForOtherGrids) {
  torch::NoGradGuard ng;
  ViT vit(small(false, "learned"));
  EXPECT_TRUE(at::equal(vit->positions(4, 4), vit->pos_embed));
  const at::Tensor p = vit->positions(2, 6);
  EXPECT_EQ(p.sizes().vec(), (std::vector<int64_t>{12, 16}));
  // A constant table interpolates to the same constant.
  vit->pos_embed.fill_(0.25);
  EXPECT_TRUE(at::allclose(vit->positions(3, 7), at::full({21, 16}, 0.25), 1e-5, 1e-6));
  ViT sin(small(false, "sinusoidal"));
  const at::Tensor s = sin->positions(3, 5);
  // Row encoding (first half) is shared along a row, column encoding along a column.
  EXPECT_TRUE(at::equal(s[0].slice(0, 0, 8), s[4].slice(0, 0, 8)));
  EXPECT_TRUE(at::equal(s[1].slice(0, 8, 16), s[6].slice(0, 8, 16)));
  EXPECT_FALSE(at::equal(s[0], s[6]));
}

TEST(ViT, RunsOnCudaInReducedPrecision) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::NoGradGuard ng;
  torch::manual_seed(2);
  ViT vit(small(true, "learned"));
  const at::Tensor x = torch::randn({2, 3, 32, 48});
  const at::Tensor ref = vit->forward(x);
  vit->to(torch::kCUDA);
  const at::Tensor y32 = vit->forward(x.to(torch::kCUDA));
  EXPECT_TRUE(y32.is_cuda());
  EXPECT_TRUE(at::allclose(y32.cpu(), ref, 1e-3, 1e-3));
  vit->to(torch::kCUDA, torch::kBFloat16);
  const at::Tensor y16 = vit->forward(x.to(torch::kCUDA, torch::kBFloat16));
  EXPECT_EQ(y16.scalar_type(), torch::kBFloat16);
  EXPECT_LT((y16.to(torch::kFloat).cpu() - ref).abs().max().item<double>(), 0.2);
}

using testing::FakeContext;

std::map<std::string, ParamValue> node_params(std::map<std::string, ParamValue> extra = {}) {
  std::map<std::string, ParamValue> p = {{"image_size", int64_t{32}}, {"patch_size", int64_t{8}},
                                         {"width", int64_t{16}},      {"depth", int64_t{1}},
                                         {"heads", int64_t{2}},       {"merge", true},
                                         {"out_dim", int64_t{12}},    {"seed", int64_t{7}}};
  for (auto& [k, v] : extra) p[k] = v;
  return p;
}

std::vector<at::Tensor> run_node(ImageEncoder& node, FakeContext& ctx,
                                 const std::vector<at::Tensor>& images) {
  node.open(ctx);
  for (size_t i = 0; i < images.size(); ++i) {
    ctx.feed("image", make_packet<at::Tensor>(images[i], Timestamp(1000 * int64_t(i))));
    node.process(ctx);
  }
  node.close(ctx);
  std::vector<at::Tensor> out;
  for (const Packet& p : ctx.emitted("tokens")) out.push_back(p.get<TokenChunk>().embeddings);
  return out;
}

TEST(ImageEncoderNode, EmitsTokenChunksWithGridAndTimestamps) {
  ImageEncoder node;
  FakeContext ctx(ImageEncoder::contract(), node_params(), "vit");
  node.open(ctx);
  ctx.feed("image", make_packet<at::Tensor>(torch::randn({3, 32, 48}), Timestamp(500)));
  node.process(ctx);
  ASSERT_EQ(ctx.emitted("tokens").size(), 1u);
  const Packet& p = ctx.emitted("tokens")[0];
  const TokenChunk& c = p.get<TokenChunk>();
  EXPECT_EQ(p.timestamp(), Timestamp(500));
  EXPECT_EQ(c.modality, Modality::kImage);
  EXPECT_EQ(c.num_tokens(), node.image_tokens(32, 48));
  EXPECT_EQ(c.num_tokens(), 6);
  EXPECT_EQ(c.embeddings.size(1), 12);
  EXPECT_EQ(c.grid_t * c.grid_h * c.grid_w, c.num_tokens());
  EXPECT_EQ(c.grid_h, 2);
  EXPECT_EQ(c.grid_w, 3);
  EXPECT_EQ(c.start_us, 500);
  EXPECT_EQ(c.stream, "vit/image");
  // A size that does not tile into merged patches is an InputError naming the size (in a graph,
  // the runtime puts the node and the timestamp before it).
  ctx.feed("image", make_packet<at::Tensor>(torch::randn({3, 30, 32}), Timestamp(600)));
  try {
    node.process(ctx);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("30"), std::string::npos) << e.what();
  }
}

TEST(ImageEncoderNode, VideoBatchEqualsOneAtATime) {
  std::vector<at::Tensor> frames;
  for (int i = 0; i < 5; ++i) frames.push_back(torch::randn({3, 32, 32}));
  frames.push_back(torch::randn({3, 48, 32}));  // a size change flushes the pending batch
  ImageEncoder single, batched;
  FakeContext c1(ImageEncoder::contract(), node_params({{"modality", std::string("video")}}));
  FakeContext c3(ImageEncoder::contract(),
                 node_params({{"modality", std::string("video")}, {"batch", int64_t{3}}}));
  const auto a = run_node(single, c1, frames);
  const auto b = run_node(batched, c3, frames);
  ASSERT_EQ(a.size(), frames.size());
  ASSERT_EQ(b.size(), frames.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(at::allclose(a[i], b[i], 1e-4, 1e-5)) << i;
    EXPECT_EQ(c3.emitted("tokens")[i].timestamp(), Timestamp(1000 * int64_t(i)));
    EXPECT_EQ(c3.emitted("tokens")[i].get<TokenChunk>().modality, Modality::kVideo);
  }
  EXPECT_EQ(c1.counter("forwards"), 6);
  EXPECT_EQ(c3.counter("forwards"), 3);  // [0,1,2], [3,4] flushed by the size change, [5]
}

TEST(ImageEncoderNode, SeedAndWeightsFileDecideTheWeights) {
  const std::vector<at::Tensor> img = {torch::randn({3, 32, 32})};
  ImageEncoder a, b, c;
  FakeContext ca(ImageEncoder::contract(), node_params());
  FakeContext cb(ImageEncoder::contract(), node_params());
  FakeContext cc(ImageEncoder::contract(), node_params({{"seed", int64_t{8}}}));
  const auto ya = run_node(a, ca, img), yb = run_node(b, cb, img), yc = run_node(c, cc, img);
  EXPECT_TRUE(at::equal(ya[0], yb[0]));
  EXPECT_FALSE(at::allclose(ya[0], yc[0]));

  // Weights saved from node a (under a prefix) make a node with another seed reproduce a.
  const std::string path =
      (std::filesystem::temp_directory_path() / "omni_vit_weights_test.safetensors").string();
  save_safetensors(path, module_tensors(*a.model(), "vision."));
  ImageEncoder d;
  FakeContext cd(
      ImageEncoder::contract(),
      node_params({{"seed", int64_t{9}}, {"weights", path}, {"prefix", std::string("vision.")}}));
  EXPECT_TRUE(at::allclose(run_node(d, cd, img)[0], ya[0], 1e-5, 1e-6));

  // A file with a missing, an unexpected and a mis-shaped tensor names all three.
  TensorMap t = module_tensors(*a.model(), "vision.");
  t.erase("vision.norm.bias");
  t["vision.extra"] = torch::zeros({2});
  t["vision.merge_fc2.bias"] = torch::zeros({5});
  save_safetensors(path, t);
  ImageEncoder e;
  FakeContext ce(ImageEncoder::contract(),
                 node_params({{"weights", path}, {"prefix", std::string("vision.")}}), "enc");
  try {
    e.open(ce);
    FAIL() << "expected InputError";
  } catch (const InputError& err) {
    const std::string m = err.what();
    // The node's name is not in it: in a graph the runtime's one prefix adds it.
    for (const char* key : {"vision.norm.bias", "vision.extra", "vision.merge_fc2.bias"})
      EXPECT_NE(m.find(key), std::string::npos) << key << " not in: " << m;
  }
  std::filesystem::remove(path);
}

TEST(ImageEncoderNode, DeviceAndDtypeParams) {
  ImageEncoder n;
  FakeContext bad(ImageEncoder::contract(), node_params({{"dtype", std::string("fp16")}}));
  EXPECT_THROW(n.open(bad), ConfigError);  // reduced precision needs CUDA
  FakeContext junk(ImageEncoder::contract(), node_params({{"device", std::string("tpu")}}));
  EXPECT_THROW(n.open(junk), ConfigError);
  if (!torch::cuda::is_available()) {
    FakeContext cuda(ImageEncoder::contract(), node_params({{"device", std::string("cuda")}}));
    EXPECT_THROW(n.open(cuda), ConfigError);
    GTEST_SKIP() << "no CUDA device for the GPU half of this test";
  }
  FakeContext cuda(ImageEncoder::contract(),
                   node_params({{"device", std::string("cuda")}, {"dtype", std::string("bf16")}}));
  const auto y = run_node(n, cuda, {torch::randn({3, 32, 32})});
  EXPECT_TRUE(y[0].is_cuda());
  EXPECT_EQ(y[0].scalar_type(), torch::kBFloat16);
}

// On CUDA, batches reach the GPU through the node's DeviceStager (pinned buffers reused across
// batches, copies on a side stream): every output must still equal the CPU node's (fp32, TF32
// off), including batches whose staging buffer was reused while earlier work was in flight.
TEST(ImageEncoderNode, CudaNodeThroughPinnedStagingMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const bool tf32 = at::globalContext().allowTF32CuDNN();
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  std::vector<at::Tensor> frames;
  for (int i = 0; i < 13; ++i) frames.push_back(torch::randn({3, 32, 48}));
  auto params = [](const std::string& device) {
    return node_params(
        {{"modality", std::string("video")}, {"batch", int64_t{2}}, {"device", device}});
  };
  ImageEncoder cpu, gpu;
  FakeContext ccpu(ImageEncoder::contract(), params("cpu"));
  FakeContext cgpu(ImageEncoder::contract(), params("cuda"));
  const auto want = run_node(cpu, ccpu, frames);
  const auto got = run_node(gpu, cgpu, frames);
  at::globalContext().setAllowTF32CuDNN(tf32);
  ASSERT_EQ(got.size(), frames.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(got[i].is_cuda()) << i;
    EXPECT_LE((got[i].cpu() - want[i]).abs().max().item<double>(), 1e-4) << i;
  }
  EXPECT_EQ(cgpu.counter("staged_copies"), 7);  // batches of 2: 6 full + the one flushed at close
  EXPECT_EQ(ccpu.counter("staged_copies"), 0);
}

TEST(ImageEncoderNode, RunsInAGraphIntoTensorDump) {
  std::vector<Packet> images;
  for (int i = 0; i < 4; ++i)
    images.push_back(make_packet<at::Tensor>(torch::randn({3, 32, 64}), Timestamp(40000 * i)));
  const std::string path =
      (std::filesystem::temp_directory_path() / "omni_image_graph_test.safetensors").string();
  GraphBuilder b("images");
  b.add_instance("src", "VectorSource", testing::VectorSource::contract(),
                 [images] { return std::make_unique<testing::VectorSource>(images); });
  b.add<ImageEncoder>("enc",
                      node_params({{"batch", int64_t{3}}, {"modality", std::string("video")}}));
  b.add<TensorDump>("dump", {{"path", path}});
  b.connect("src.out", "enc.image").connect("enc.tokens", "dump.in").output("enc.tokens");
  auto g = b.build();
  std::vector<Packet> got;
  g->observe("enc.tokens", [&](const Packet& p) { got.push_back(p); });
  g->run();
  ASSERT_EQ(got.size(), 4u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].timestamp(), Timestamp(40000 * int64_t(i)));
    EXPECT_EQ(got[i].get<TokenChunk>().num_tokens(), image_tokens(32, 64, 8, true));
  }
  auto f = SafeTensorsFile::open(path);
  EXPECT_EQ(f->names(), (std::vector<std::string>{"in/0", "in/120000", "in/40000", "in/80000"}));
  EXPECT_TRUE(at::equal(f->get("in/80000"), got[2].get<TokenChunk>().embeddings));
  std::filesystem::remove(path);
}

#if OMNI_WITH_MEDIA
TEST(ImageEncoderNode, FramesArePreprocessedLikeImagePreprocess) {
  Frame f;
  f.rgb = cv::Mat(50, 70, CV_8UC3);
  for (int i = 0; i < 50 * 70 * 3; ++i) f.rgb.data[i] = static_cast<uint8_t>(i * 2654435761u >> 24);
  const Packet fp = make_packet<Frame>(f, Timestamp(40));

  ImagePreprocess pre;
  FakeContext cp(ImagePreprocess::contract(),
                 {{"mode", std::string("siglip")}, {"size", int64_t{32}}});
  pre.open(cp);
  cp.feed("in", fp);
  pre.process(cp);
  ASSERT_EQ(cp.emitted("out").size(), 1u);
  const at::Tensor img = cp.emitted("out")[0].get<at::Tensor>();
  EXPECT_EQ(img.sizes().vec(), (std::vector<int64_t>{3, 32, 32}));

  ImageEncoder a, b;
  FakeContext ca(ImageEncoder::contract(), node_params({{"mode", std::string("siglip")}}));
  FakeContext cb(ImageEncoder::contract(), node_params({{"mode", std::string("siglip")}}));
  a.open(ca);
  ca.feed("frame", fp);
  a.process(ca);
  const auto yb = run_node(b, cb, {img});
  ASSERT_EQ(ca.emitted("tokens").size(), 1u);
  EXPECT_TRUE(at::equal(ca.emitted("tokens")[0].get<TokenChunk>().embeddings, yb[0]));
}
#endif

}  // namespace
}  // namespace omni
