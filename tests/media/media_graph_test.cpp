// MediaSource in a real graph: examples/graphs/decode.yaml loaded through the registry, run to
// completion, checked through its stats and its JSON-lines output.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/graph.h"
#include "core/registry.h"
#include "modalities/media/nodes.h"
#include "tests/media/media_test_util.h"

namespace omni {
namespace {

using omni::testing::sample;

struct DecodeRun {
  GraphStats stats;
  std::vector<nlohmann::json> frames, chunks;
};

std::vector<nlohmann::json> read_lines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

DecodeRun run_decode(const std::string& file, std::vector<std::string> extra = {}) {
  Registry reg;
  register_core_nodes(reg);
  register_media_nodes(reg);
  std::filesystem::path tmp = std::filesystem::path(OMNI_BINARY_DIR) / "test_tmp" / "media_graph";
  std::filesystem::create_directories(tmp);
  std::string fpath = (tmp / "frames.jsonl").string(), cpath = (tmp / "chunks.jsonl").string();
  std::vector<std::string> sets = {"src.path=" + file, "frames.path=" + fpath,
                                   "chunks.path=" + cpath};
  sets.insert(sets.end(), extra.begin(), extra.end());
  auto graph = load_graph(std::string(OMNI_SOURCE_DIR) + "/examples/graphs/decode.yaml", reg, sets);
  graph->run();
  DecodeRun r;
  r.stats = graph->stats();
  r.frames = read_lines(fpath);
  r.chunks = read_lines(cpath);
  return r;
}

const NodeStats& node(const GraphStats& s, const std::string& name) {
  for (const NodeStats& n : s.nodes)
    if (n.name == name) return n;
  throw Error("no node " + name);
}

TEST(MediaGraph, DecodeYamlReportsFramesAndChunks) {
  DecodeRun r = run_decode(sample("h264_aac.mp4"));
  const NodeStats& src = node(r.stats, "src");
  EXPECT_EQ(src.packets_out.at("video"), 75);
  EXPECT_EQ(src.packets_out.at("audio"), 4);
  ASSERT_EQ(r.frames.size(), 75u);
  ASSERT_EQ(r.chunks.size(), 4u);
  EXPECT_EQ(r.frames[1]["ts_us"], 40000);
  EXPECT_EQ(r.frames[1]["payload"]["pts_us"], 40000);
  EXPECT_EQ(r.frames[1]["payload"]["width"], 320);
  EXPECT_EQ(r.chunks[0]["payload"]["sample_rate"], 16000);
  EXPECT_EQ(r.chunks[0]["payload"]["frames"], 16000);
  nlohmann::json stats = nlohmann::json::parse(r.stats.to_json());
  EXPECT_TRUE(stats.contains("nodes"));
}

TEST(MediaGraph, SetOverridesAndDamagedCounts) {
  DecodeRun r = run_decode(sample("corrupt_middle.mp4"), {"src.fps=5", "src.audio=false"});
  const NodeStats& src = node(r.stats, "src");
  EXPECT_GT(src.counters.count("damaged_packets") ? src.counters.at("damaged_packets") : 0, 0);
  EXPECT_LE(r.frames.size(), 15u);
  EXPECT_GT(r.frames.size(), 10u);
  EXPECT_TRUE(r.chunks.empty());
}

TEST(MediaGraph, AudioOnlyFileFinishes) {
  DecodeRun r = run_decode(sample("speech.flac"));
  EXPECT_TRUE(r.frames.empty());
  EXPECT_EQ(r.chunks.size(), 5u);
}

TEST(MediaGraph, BadFileFailsTheRunNamingIt) {
  try {
    run_decode(sample("text.mp4"));
    FAIL() << "expected the run to fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("text.mp4"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace omni
