// Runs the shipped example graphs on the shipped sample clip with the full node catalogue.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/graph.h"
#include "modalities/audio/audio_tokens.h"
#include "modalities/common/token_chunk.h"
#include "modalities/image/image_tokens.h"
#include "nodes/all_nodes.h"

namespace omni {
namespace {

const std::string kSrc = OMNI_SOURCE_DIR;
const std::string kClip = kSrc + "/models/shapes_voices/sample.mp4";  // 3.0 s, 10 fps

// encode.yaml: every TokenChunk's size equals the encoders' own token-count functions.
TEST(ExampleGraphs, EncodeGraphTokenCountsMatchTheTokenCountFunctions) {
  Registry reg;
  register_all_nodes(reg);
  auto g = load_graph(
      kSrc + "/examples/graphs/encode.yaml", reg,
      {"src.path=" + kClip, "video_tokens.path=/dev/null", "audio_tokens.path=/dev/null"});
  std::vector<TokenChunk> video, audio;
  g->observe("venc.tokens", [&](const Packet& p) { video.push_back(p.get<TokenChunk>()); });
  g->observe("aenc.tokens", [&](const Packet& p) { audio.push_back(p.get<TokenChunk>()); });
  g->run();

  ASSERT_EQ(video.size(), 6u);  // 3 s sampled at fps 2
  for (const auto& c : video) {
    EXPECT_EQ(c.modality, Modality::kVideo);
    EXPECT_EQ(c.num_tokens(), image_tokens(224, 224, 16, true));
    EXPECT_EQ(c.grid_t * c.grid_h * c.grid_w, c.num_tokens());
  }
  ASSERT_EQ(audio.size(), 1u);
  EXPECT_EQ(audio[0].modality, Modality::kAudio);
  EXPECT_EQ(audio[0].num_tokens(), audio_tokens(3 * 16000));
}

// fuse.yaml: the fused sequence holds every modality's tokens plus the boundary tokens, and
// generation produces text (random weights).
TEST(ExampleGraphs, FuseGraphRunsToGeneratedText) {
  Registry reg;
  register_all_nodes(reg);
  const std::string out = std::string(OMNI_BINARY_DIR) + "/fuse_example";
  auto g = load_graph(kSrc + "/examples/graphs/fuse.yaml", reg,
                      {"src.path=" + kClip, "dump.path=" + out + "_sequence.jsonl",
                       "answer.path=" + out + "_answer.jsonl"});
  std::vector<std::string> answers;
  g->observe("gen.text", [&](const Packet& p) { answers.push_back(p.get<std::string>()); });
  g->run();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_FALSE(answers[0].empty());
}

}  // namespace
}  // namespace omni
