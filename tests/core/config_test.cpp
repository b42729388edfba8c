// Graph construction errors (builder and YAML), subgraphs and --set overrides.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/core/test_util.h"

namespace omni {
namespace {

namespace fs = std::filesystem;
using test::W;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no ConfigError)";
}

std::string yaml_error(const std::string& text, std::vector<std::string> sets = {}) {
  const Registry reg = test::test_registry();
  return error_of([&] { load_graph_string(text, reg, sets); });
}

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "in: " << (haystack)

const char* kGood = R"(
graph:
  name: good
  nodes:
    - name: src
      type: CountingSource
      params: {count: 12, ts_step_us: 10}
    - name: pass
      type: PassThrough
  edges:
    - from: src.out
      to: pass.in
      capacity: 3
      overflow: block
  outputs: [pass.out]
)";

TEST(Yaml, LoadsAndRuns) {
  test::Watchdog wd;
  const Registry reg = test::test_registry();
  auto g = load_graph_string(kGood, reg);
  std::vector<int64_t> ts;
  g->observe("pass.out", [&](const Packet& p) { ts.push_back(p.timestamp().us()); });
  g->run(W(2));
  ASSERT_EQ(ts.size(), 12u);
  EXPECT_EQ(ts.back(), 110);
  EXPECT_EQ(g->spec().name, "good");
}

TEST(Yaml, SetOverridesParams) {
  test::Watchdog wd;
  const Registry reg = test::test_registry();
  auto g = load_graph_string(kGood, reg, {"src.count=4", "src.ts_step_us=0x10"});
  int n = 0;
  int64_t last = -1;
  g->observe("pass.out", [&](const Packet& p) {
    n++;
    last = p.timestamp().us();
  });
  g->run(W(1));
  EXPECT_EQ(n, 4);
  EXPECT_EQ(last, 48);
  EXPECT_HAS(yaml_error(kGood, {"src.count=many"}), "expects int64");
  EXPECT_HAS(yaml_error(kGood, {"nosuch.count=1"}), "no node named 'nosuch'");
  EXPECT_HAS(yaml_error(kGood, {"src.cnt=1"}), "has no parameter 'cnt'");
  EXPECT_HAS(yaml_error(kGood, {"src.count"}), "NODE.PARAM=VALUE");
}

// Limits instead of trust: a graph of 10^6 nodes is refused by the size cap before YAML parses it;
// one that reaches many nodes in few bytes (YAML aliases) by the node cap before any is built.
// A regression would spend gigabytes in yaml-cpp and the builder (ctest's timeout catches it).
TEST(Yaml, MillionNodeGraphIsRefused) {
  std::string big = "graph:\n  nodes:\n";
  for (int i = 0; i < 1'000'000; ++i)
    big += "    - {name: n" + std::to_string(i) + ", type: PassThrough}\n";
  EXPECT_HAS(yaml_error(big), "more than the limit");
  std::string aliases = "graph:\n  nodes:\n    - &n {name: a, type: PassThrough}\n";
  for (size_t i = 0; i < kMaxGraphNodes + 1; ++i) aliases += "    - *n\n";
  ASSERT_LT(aliases.size(), kMaxGraphFileBytes);
  const std::string m = yaml_error(aliases);
  EXPECT_HAS(m, "nodes, more than the limit of " + std::to_string(kMaxGraphNodes));
}

TEST(Yaml, SyntaxErrorHasLineAndColumn) {
  const std::string m = yaml_error("graph:\n  nodes:\n    - name: a\n      type: [oops\n");
  EXPECT_HAS(m, "YAML syntax error");
  // "<string>:LINE:COL: ..."
  const size_t at = m.find("<string>:");
  ASSERT_NE(at, std::string::npos) << m;
  size_t line = 0, col = 0;
  ASSERT_EQ(std::sscanf(m.c_str() + at, "<string>:%zu:%zu:", &line, &col), 2) << m;
  EXPECT_GE(line, 4u) << m;
  EXPECT_GE(col, 1u) << m;
}

TEST(Yaml, UnknownNodeTypeListsKnownOnesWithLocation) {
  const std::string m = yaml_error("graph:\n  nodes:\n    - name: a\n      type: CountingSauce\n");
  EXPECT_HAS(m, "<string>:4:13");
  EXPECT_HAS(m, "unknown node type 'CountingSauce'");
  EXPECT_HAS(m, "CountingSource");
  EXPECT_HAS(m, "PassThrough");
}

TEST(Yaml, UnknownAndMistypedParams) {
  std::string m = yaml_error(
      "graph:\n  nodes:\n    - name: a\n      type: CountingSource\n      params: {cuont: 3}\n");
  EXPECT_HAS(m, "unknown parameter 'cuont'");
  EXPECT_HAS(m, "count (int64)");
  EXPECT_HAS(m, "<string>:5:");
  m = yaml_error(
      "graph:\n  nodes:\n    - name: a\n      type: CountingSource\n      params: {count: "
      "lots}\n");
  EXPECT_HAS(m, "parameter 'count' expects int64, got 'lots'");
  m = yaml_error(
      "graph:\n  nodes:\n    - name: a\n      type: CountingSource\n      params: {count: [1]}\n");
  EXPECT_HAS(m, "expects int64, got a list");
}

TEST(Yaml, PortTypeMismatchNamesBothPortsAndTypes) {
  const std::string m = yaml_error(R"(
graph:
  nodes:
    - {name: src, type: CountingSource}
    - {name: s, type: StringSink}
  edges:
    - {from: src.out, to: s.in}
)");
  EXPECT_HAS(m, "src.out (int64)");
  EXPECT_HAS(m, "s.in (string)");
  EXPECT_HAS(m, "<string>:7:");
}

TEST(Yaml, CycleNamesTheNodes) {
  const std::string m = yaml_error(R"(
graph:
  nodes:
    - {name: src, type: CountingSource}
    - {name: a, type: Merge}
    - {name: b, type: PassThrough}
  edges:
    - {from: src.out, to: a.in0}
    - {from: a.out, to: b.in}
    - {from: b.out, to: a.in1}
)");
  EXPECT_HAS(m, "cycle");
  EXPECT_HAS(m, "a, b");
}

TEST(Yaml, UnconnectedRequiredInputNamesTheNode) {
  const std::string m = yaml_error("graph:\n  nodes:\n    - {name: lonely, type: PassThrough}\n");
  EXPECT_HAS(m, "required input lonely.in");
  EXPECT_HAS(m, "not connected");
}

TEST(Yaml, OtherStructuralErrors) {
  EXPECT_HAS(yaml_error("graph:\n  nodes:\n    - {name: a, type: CountingSource, parms: {}}\n"),
             "unknown key 'parms'");
  EXPECT_HAS(yaml_error("graph:\n  nodes:\n    - {name: a, type: CountingSource}\n    - {name: "
                        "a, type: CountingSource}\n"),
             "used twice");
  EXPECT_HAS(yaml_error(R"(
graph:
  nodes:
    - {name: src, type: CountingSource}
    - {name: p, type: PassThrough}
  edges:
    - {from: src.output, to: p.in}
)"),
             "has no output port 'output'; outputs: out (int64)");
  EXPECT_HAS(yaml_error(R"(
graph:
  nodes:
    - {name: src, type: CountingSource}
    - {name: p, type: PassThrough}
  edges:
    - {from: src.out, to: p.in, overflow: drop_some}
)"),
             "not one of: block, drop_oldest, drop_newest");
  EXPECT_HAS(yaml_error(R"(
graph:
  nodes:
    - {name: src, type: CountingSource}
    - {name: p, type: PassThrough}
  edges:
    - {from: src.out, to: p.in, capacity: 0}
)"),
             "capacity must be >= 1");
  EXPECT_HAS(yaml_error(R"(
graph:
  nodes:
    - {name: src, type: CountingSource}
    - {name: p, type: PassThrough}
  edges:
    - {from: src.out, to: p.in}
    - {from: src.out, to: p.in}
)"),
             "connected twice");
  EXPECT_HAS(yaml_error(R"(
graph:
  nodes:
    - {name: src, type: CountingSource}
    - {name: p, type: PassThrough}
  edges:
    - {from: src.out, to: q.in}
)"),
             "unknown node 'q'");
  EXPECT_HAS(yaml_error("graph:\n  nodes:\n    - {name: p, type: PassThrough, policy: eager}\n"),
             "not one of: sync, immediate");
  EXPECT_HAS(yaml_error(""), "empty");
}

TEST(Builder, ParamTypeErrorsNameTheExpectedType) {
  const Registry reg = test::test_registry();
  GraphBuilder b("b");
  b.add("src", "CountingSource", {{"count", std::string("ten")}});
  std::string m = error_of([&] { b.build(reg); });
  EXPECT_HAS(m, "parameter 'count' expects int64");
  GraphBuilder b2("b2");
  b2.add("src", "CountingSource", {{"count", 2.5}});
  m = error_of([&] { b2.build(reg); });
  EXPECT_HAS(m, "expects int64, got double 2.5");
  GraphBuilder b3("b3");
  b3.add("src", "CountingSource", {{"count", std::string("7")}});  // strings convert
  EXPECT_NO_THROW(b3.build(reg));
  GraphBuilder b4("b4");
  b4.add("src", "NoSuchNode");
  EXPECT_HAS(error_of([&] { b4.build(reg); }), "known types: ");
}

class TempDir {
 public:
  TempDir() : path_(fs::path(OMNI_BINARY_DIR) / "core_config_test_tmp") {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name) << text;
    return path_ / name;
  }

 private:
  fs::path path_;
};

TEST(Yaml, SubgraphsAndOverridesInside) {
  test::Watchdog wd;
  TempDir dir;
  dir.write("chain.yaml", R"(
graph:
  name: chain
  nodes:
    - {name: p1, type: PassThrough}
    - {name: p2, type: PassThrough}
  edges:
    - {from: p1.out, to: p2.in}
  inputs: [p1.in]
  outputs: [{name: result, port: p2.out}]
)");
  const fs::path main = dir.write("main.yaml", R"(
graph:
  name: main
  nodes:
    - {name: src, type: CountingSource, params: {count: 9}}
    - name: sub
      type: chain.yaml
      params: {p1.sleep_us: 1}
    - {name: sink, type: Discard}
  edges:
    - {from: src.out, to: sub.in}
    - {from: sub.result, to: sink.in}
  outputs: [sub.result]
)");
  const Registry reg = test::test_registry();
  auto g = load_graph(main.string(), reg, {"sub/p2.sleep_us=2"});
  int n = 0;
  g->observe("sub/p2.out", [&](const Packet&) { n++; });
  g->run(W(2));
  EXPECT_EQ(n, 9);
  EXPECT_EQ(g->spec().outputs, std::vector<std::string>{"sub/p2.out"});
  bool found = false;
  for (const auto& ns : g->spec().nodes) {
    if (ns.name == "sub/p1") {
      found = true;
      EXPECT_EQ(std::get<int64_t>(ns.params.at("sleep_us")), 1);
    }
    if (ns.name == "sub/p2") {
      EXPECT_EQ(std::get<int64_t>(ns.params.at("sleep_us")), 2);
    }
  }
  EXPECT_TRUE(found);

  // Errors inside a subgraph name it and the file location.
  dir.write("broken.yaml", "graph:\n  nodes:\n    - {name: x, type: Nope}\n");
  const fs::path bad = dir.write("bad.yaml", R"(
graph:
  nodes:
    - {name: s, type: broken.yaml}
)");
  const std::string m = error_of([&] { load_graph(bad.string(), reg); });
  EXPECT_HAS(m, "in subgraph 's'");
  EXPECT_HAS(m, "broken.yaml:3:");
  EXPECT_HAS(m, "unknown node type 'Nope'");
  const fs::path badport = dir.write("badport.yaml", R"(
graph:
  nodes:
    - {name: src, type: CountingSource}
    - {name: sub, type: chain.yaml}
  edges:
    - {from: src.out, to: sub.input}
)");
  EXPECT_HAS(error_of([&] { load_graph(badport.string(), reg); }),
             "exposes no input 'input'; inputs: in");
  EXPECT_HAS(error_of([&] {
               load_graph((dir.write("x", "").parent_path() / "missing.yaml").string(), reg);
             }),
             "cannot open graph file");
}

TEST(Yaml, ExampleGraphsLoad) {
  const Registry reg = test::test_registry();
  for (const auto& e : fs::directory_iterator(fs::path(OMNI_SOURCE_DIR) / "examples/graphs")) {
    if (e.path().extension() != ".yaml") continue;
    // Core-only example graphs must load with the core registry; others may need modules.
    std::ifstream f(e.path());
    std::string text((std::istreambuf_iterator<char>(f)), {});
    if (text.find("# core-only example") == std::string::npos) continue;
    EXPECT_NO_THROW(load_graph(e.path().string(), reg)) << e.path();
  }
}

}  // namespace
}  // namespace omni
