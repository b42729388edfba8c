// `omnipipe inspect DIR [--json]` on the tiny Qwen2.5-Omni checkpoint, run as a user runs it; the
// JSON (schema in docs/ARCHITECTURE.md 2a) is checked against the facts transformers recorded.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "modalities/common/checkpoint_inspect.h"

namespace omni {
namespace {

namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(OMNI_SOURCE_DIR) / "tests/fixtures/hf";

nlohmann::json facts() {
  std::ifstream f(kFixtures / "qwen2_5_omni_tiny_reference.json");
  return nlohmann::json::parse(f);
}

struct CliResult {
  int status = -1;
  std::string out;
};

#ifdef OMNIPIPE_BIN
CliResult run_cli(const std::string& args) {
  CliResult r;
  const std::string cmd = std::string(OMNIPIPE_BIN) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}
#endif

int64_t elem_size(const std::string& dtype) {
  static const std::map<std::string, int64_t> sizes = {{"F32", 4}, {"BF16", 2}, {"F16", 2}};
  return sizes.at(dtype);
}

// Checks an inspect summary of the fixture against transformers' facts.
void check_summary(const nlohmann::json& j) {
  const auto f = facts();
  EXPECT_EQ(j["architecture"], f["architecture"]);
  EXPECT_EQ(j["model_type"], "qwen2_5_omni");
  EXPECT_EQ(j["family"], "qwen2_5_omni");
  EXPECT_EQ(j["tensors"], f["tensors"].size());
  std::map<std::string, std::pair<int64_t, int64_t>> dtypes, shards, groups;
  int64_t total = 0;
  for (const auto& [name, t] : f["tensors"].items()) {
    int64_t b = elem_size(t["dtype"]);
    for (const auto& d : t["shape"]) b *= d.get<int64_t>();
    total += b;
    auto add = [&](std::pair<int64_t, int64_t>& p) { p.first += 1, p.second += b; };
    add(dtypes[t["dtype"]]);
    add(shards[t["shard"]]);
    add(groups[name.substr(0, name.find('.') + 1)]);
  }
  EXPECT_EQ(j["total_bytes"], total);
  EXPECT_EQ(j["index_total_size"], f["index_total_size"]);
  EXPECT_TRUE(j["index"].get<bool>());
  ASSERT_EQ(j["dtypes"].size(), dtypes.size());
  for (const auto& [k, v] : dtypes) {
    EXPECT_EQ(j["dtypes"][k]["tensors"], v.first) << k;
    EXPECT_EQ(j["dtypes"][k]["bytes"], v.second) << k;
  }
  ASSERT_EQ(j["shards"].size(), shards.size());
  for (const auto& s : j["shards"]) {
    const auto& v = shards.at(s["file"]);
    EXPECT_EQ(s["tensors"], v.first);
    EXPECT_EQ(s["bytes"], v.second);
  }
  ASSERT_EQ(j["groups"].size(), 3u);
  for (const auto& g : j["groups"]) {
    const std::string prefix = g["prefix"];
    EXPECT_EQ(g["tensors"], groups.at(prefix).first);
    EXPECT_EQ(g["bytes"], groups.at(prefix).second);
    EXPECT_EQ(g["used"], prefix == "thinker.") << prefix;
  }
  EXPECT_EQ(j["unused_groups"], nlohmann::json({"talker.", "token2wav."}));
  EXPECT_EQ(j["unused_tensors"], groups["talker."].first + groups["token2wav."].first);
  EXPECT_EQ(j["unused_bytes"], groups["talker."].second + groups["token2wav."].second);
  for (const char* tower : {"text", "vision", "audio"}) {
    const auto& t = j["towers"][tower];
    EXPECT_TRUE(t["used"].get<bool>()) << tower;
    for (const char* k : {"layers", "hidden", "heads", "intermediate"})
      EXPECT_EQ(t[k], f[tower][k]) << tower << " " << k;
  }
  EXPECT_EQ(j["towers"]["text"]["kv_heads"], f["text"]["kv_heads"]);
  EXPECT_EQ(j["towers"]["text"]["vocab"], f["text"]["vocab"]);
  EXPECT_EQ(j["towers"]["text"]["rope_theta"], f["text"]["rope_theta"]);
  EXPECT_EQ(j["towers"]["text"]["mrope_section"], f["text"]["mrope_section"]);
  EXPECT_FALSE(j["towers"]["talker"]["used"].get<bool>());
  EXPECT_EQ(j["generation"]["eos_token_ids"], f["eos_token_ids"]);
  EXPECT_EQ(j["generation"]["pad_token_id"], f["pad_token_id"]);
}

TEST(CheckpointInspect, SummaryMatchesTransformersFacts) {
  check_summary(inspect_checkpoint((kFixtures / "qwen2_5_omni_tiny").string()));
}

TEST(CheckpointInspect, CliJsonAndText) {
#ifndef OMNIPIPE_BIN
  GTEST_SKIP() << "omnipipe is not built in this configuration";
#else
  const std::string dir = (kFixtures / "qwen2_5_omni_tiny").string();
  CliResult r = run_cli("inspect " + dir + " --json");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  check_summary(j);
  EXPECT_EQ(j["path"], dir);
  r = run_cli("inspect " + dir);
  ASSERT_EQ(r.status, 0) << r.out;
  for (const char* needle : {"Qwen2_5OmniForConditionalGeneration", "model-00001-of-00003",
                             "talker.  17 tensors", "(not used by omnipipe)", "layers=2"})
    EXPECT_NE(r.out.find(needle), std::string::npos) << needle << "\n" << r.out;
  r = run_cli("inspect " + (kFixtures / "no_such_dir").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("omnipipe: error: checkpoint '"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("not a directory"), std::string::npos) << r.out;
#endif
}

}  // namespace
}  // namespace omni
