// Graph-level tests of the text nodes: TextSource -> TextEncoder (ids and embeddings), YAML,
// errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/graph.h"
#include "core/json_codec.h"
#include "core/registry.h"
#include "modalities/common/safetensors.h"
#include "modalities/common/token_chunk.h"
#include "modalities/text/nodes.h"
#include "modalities/text/tokenizer.h"

namespace omni {
namespace {

const std::string kQwen =
    std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/text/qwen2_tokenizer.json";
const std::string kText = "<|im_start|>user\nWhat colour is 한국어 😀?<|im_end|>";

Registry text_registry() {
  Registry r;
  register_text_nodes(r);
  return r;
}

std::vector<TokenChunk> run_and_collect(Graph& g, const std::string& stream) {
  std::vector<TokenChunk> out;
  std::mutex mu;
  g.observe(stream, [&](const Packet& p) {
    std::lock_guard<std::mutex> lock(mu);
    out.push_back(p.get<TokenChunk>());
    EXPECT_EQ(p.timestamp().us(), out.back().start_us);
  });
  g.run();
  return out;
}

std::vector<int64_t> ids_of(const TokenChunk& c) {
  const at::Tensor t = c.ids.contiguous();
  return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel()};
}

TEST(TextNodes, SourceToEncoderGivesTokenizerIds) {
  const Registry r = text_registry();
  for (const std::string& tok : {kQwen, std::string("byte")}) {
    auto g = GraphBuilder("text")
                 .add("src", "TextSource", {{"text", kText}, {"timestamp_us", int64_t{1500}}})
                 .add("enc", "TextEncoder", {{"tokenizer", tok}})
                 .connect("src.text", "enc.text")
                 .output("enc.tokens")
                 .build(r);
    const auto chunks = run_and_collect(*g, "enc.tokens");
    ASSERT_EQ(chunks.size(), 1u) << tok;
    const TokenChunk& c = chunks[0];
    EXPECT_EQ(c.modality, Modality::kText);
    EXPECT_FALSE(c.embeddings.defined());
    EXPECT_EQ(c.start_us, 1500);
    EXPECT_EQ(c.stream, "enc");
    EXPECT_EQ(ids_of(c), load_tokenizer(tok)->encode(kText)) << tok;
    EXPECT_EQ(load_tokenizer(tok)->decode(ids_of(c)), kText);
    EXPECT_EQ(c.num_tokens(), c.grid_t * c.grid_h * c.grid_w);
    const auto stats = g->stats();
    bool counted = false;
    for (const auto& n : stats.nodes)
      if (n.name == "enc") counted = n.counters.at("tokens") == c.num_tokens();
    EXPECT_TRUE(counted);
  }
}

TEST(TextNodes, SourceEmitsEachOfSeveralTexts) {
  const Registry r = text_registry();
  const StringList texts = {"what shape is it?", "which colour?"};
  auto g = GraphBuilder("texts")
               .add("src", "TextSource", {{"texts", texts}, {"timestamp_us", int64_t{10}}})
               .add("enc", "TextEncoder", {{"tokenizer", std::string("byte")}})
               .connect("src.text", "enc.text")
               .output("enc.tokens")
               .build(r);
  const auto chunks = run_and_collect(*g, "enc.tokens");
  ASSERT_EQ(chunks.size(), 2u);  // an empty `text` is skipped when `texts` are given
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(chunks[i].start_us, 10 + int64_t(i));
    EXPECT_EQ(load_tokenizer("byte")->decode(ids_of(chunks[i])), texts[i]);
  }
}

TEST(TextNodes, EmbeddingsFromSafetensors) {
  const auto tok = Tokenizer::from_file(kQwen);
  at::manual_seed(0);
  const at::Tensor table = at::randn({tok->vocab_size(), 16});
  const std::string path = std::string(OMNI_BINARY_DIR) + "/text_nodes_test_embed.safetensors";
  save_safetensors(path, {{"model.embed_tokens.weight", table}});
  const Registry r = text_registry();
  auto g = GraphBuilder("text")
               .add("src", "TextSource", {{"text", kText}})
               .add("enc", "TextEncoder",
                    {{"tokenizer", kQwen},
                     {"weights", path},
                     {"tensor", std::string("model.embed_tokens.weight")},
                     {"stream", std::string("question")}})
               .connect("src.text", "enc.text")
               .output("enc.tokens")
               .build(r);
  const auto chunks = run_and_collect(*g, "enc.tokens");
  ASSERT_EQ(chunks.size(), 1u);
  const auto ids = tok->encode(kText);
  const at::Tensor expected =
      table.index_select(0, at::tensor(std::vector<int64_t>(ids), at::kLong));
  ASSERT_TRUE(chunks[0].embeddings.defined());
  EXPECT_FALSE(chunks[0].ids.defined());
  EXPECT_EQ(chunks[0].stream, "question");
  EXPECT_TRUE(at::equal(chunks[0].embeddings, expected));
  std::remove(path.c_str());
}

TEST(TextNodes, YamlGraphAndJson) {
  const Registry r = text_registry();
  auto g = load_graph_string(R"(
graph:
  nodes:
    - {name: src, type: TextSource, params: {text: "hi <|eos|>"}}
    - {name: enc, type: TextEncoder}
  edges:
    - {from: src.text, to: enc.text}
  outputs: [enc.tokens]
)",
                             r);
  std::vector<Packet> out;
  g->observe("enc.tokens", [&](const Packet& p) { out.push_back(p); });
  g->run();
  ASSERT_EQ(out.size(), 1u);
  nlohmann::json j;
  packet_to_json(out[0], j);
  EXPECT_EQ(j["modality"], "text");
  EXPECT_EQ(j["ids"], (std::vector<int64_t>{'h', 'i', ' ', ByteTokenizer::kEos}));
}

TEST(TextNodes, BadConfigFailsTheRunWithContext) {
  const Registry r = text_registry();
  auto g = GraphBuilder("text")
               .add("src", "TextSource", {{"text", std::string("x")}})
               .add("enc", "TextEncoder", {{"tokenizer", std::string("/nonexistent/tok.json")}})
               .connect("src.text", "enc.text")
               .build(r);
  try {
    g->run();
    ADD_FAILURE() << "expected RunError";
  } catch (const RunError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("enc"), std::string::npos) << msg;
    EXPECT_NE(msg.find("/nonexistent/tok.json"), std::string::npos) << msg;
  }
}

TEST(TextNodes, CudaDevice) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA in this libtorch/machine";
  const auto tok = std::make_shared<ByteTokenizer>();
  const at::Tensor table = at::randn({tok->vocab_size(), 8});
  const std::string path = std::string(OMNI_BINARY_DIR) + "/text_nodes_test_cuda.safetensors";
  save_safetensors(path, {{"embed_tokens.weight", table}});
  const Registry r = text_registry();
  auto g = GraphBuilder("text")
               .add("src", "TextSource", {{"text", std::string("abc")}})
               .add("enc", "TextEncoder", {{"weights", path}, {"device", std::string("cuda")}})
               .connect("src.text", "enc.text")
               .output("enc.tokens")
               .build(r);
  const auto chunks = run_and_collect(*g, "enc.tokens");
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_TRUE(chunks[0].embeddings.is_cuda());
  EXPECT_TRUE(
      at::equal(chunks[0].embeddings.cpu(), table.index_select(0, at::tensor({97, 98, 99}))));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace omni
