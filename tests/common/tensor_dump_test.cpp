// TensorDump writes one safetensors entry per packet, named <port>/<timestamp_us>.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "modalities/common/safetensors.h"
#include "modalities/common/tensor_dump.h"
#include "modalities/common/token_chunk.h"
#include "tests/common/fake_context.h"

namespace omni {
namespace {

TEST(TensorDump, WritesEveryTensorAtClose) {
  const std::string path =
      (std::filesystem::temp_directory_path() / "omni_tensor_dump_test.safetensors").string();
  std::filesystem::remove(path);
  TensorDump node;
  testing::FakeContext ctx(TensorDump::contract(), {{"path", path}}, "dump");
  node.open(ctx);
  const at::Tensor mel = at::randn({80, 30});
  ctx.feed("in", make_packet<at::Tensor>(mel, Timestamp(0)));
  node.process(ctx);
  ctx.feed("in", make_packet<at::Tensor>(mel * 2, Timestamp(300000)));
  node.process(ctx);
  TokenChunk tc;
  tc.modality = Modality::kVideo;
  tc.embeddings = at::randn({9, 16});
  tc.start_us = tc.end_us = 40000;
  tc.grid_h = tc.grid_w = 3;
  ctx.feed("in1", make_packet<TokenChunk>(tc, Timestamp(40000)));
  node.process(ctx);
  TokenChunk text;
  text.ids = at::arange(5, at::kLong);
  ctx.feed("in2", make_packet<TokenChunk>(text, Timestamp(1)));
  node.process(ctx);
  EXPECT_FALSE(std::filesystem::exists(path));  // written at close
  node.close(ctx);

  auto f = SafeTensorsFile::open(path);
  EXPECT_EQ(f->names(), (std::vector<std::string>{"in/0", "in/300000", "in1/40000", "in2/1"}));
  EXPECT_TRUE(at::equal(f->get("in/0"), mel));
  EXPECT_TRUE(at::equal(f->get("in/300000"), mel * 2));
  EXPECT_TRUE(at::equal(f->get("in1/40000"), tc.embeddings));
  EXPECT_TRUE(at::equal(f->get("in2/1"), text.ids));
  const auto meta = nlohmann::json::parse(f->metadata().at("in1/40000"));
  EXPECT_EQ(meta["modality"].get<std::string>(), "video");
  EXPECT_EQ(meta["grid"].get<std::vector<int64_t>>(), (std::vector<int64_t>{1, 3, 3}));
  EXPECT_EQ(nlohmann::json::parse(f->metadata().at("in2/1"))["field"].get<std::string>(), "ids");
  EXPECT_EQ(ctx.counter("tensors"), 4);
  std::filesystem::remove(path);
}

TEST(TensorDump, RejectsOtherPayloadsAndMissingPath) {
  TensorDump node;
  testing::FakeContext no_path(TensorDump::contract(), {});
  EXPECT_THROW(node.open(no_path), ConfigError);
  testing::FakeContext ctx(TensorDump::contract(), {{"path", std::string("/tmp/x.st")}});
  node.open(ctx);
  ctx.feed("in", make_packet<std::string>("hello", Timestamp(0)));
  EXPECT_THROW(node.process(ctx), TypeError);
}

}  // namespace
}  // namespace omni
