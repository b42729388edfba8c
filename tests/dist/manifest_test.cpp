// Manifest runs in one process: the ManifestSource / RecordWriter / ItemWork nodes, the crash-safe
// RecordFile (resume after a truncated write, partial groups, another manifest's output, streams
// that are not regular files) and dist::run_manifest (exactly one record per line, in manifest
// order; --resume redoes exactly the unfinished lines; lines the graph drops get error records).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/core_nodes.h"
#include "core/error.h"
#include "core/graph.h"
#include "core/manifest.h"
#include "core/record_file.h"
#include "core/registry.h"
#include "dist/manifest_run.h"
#include "dist_test_util.h"

namespace fs = std::filesystem;
using namespace omni;

namespace {

fs::path test_dir(const std::string& name) { return test::fresh_dir("dist_manifest_test", name); }
using test::slurp;

std::vector<nlohmann::json> records(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream in(p);
  for (std::string l; std::getline(in, l);) out.push_back(nlohmann::json::parse(l));
  return out;
}

// 1-based lines: 1..n good ({"k": i}), then "{oops" (not JSON), a blank line, {"file": missing}.
fs::path write_manifest(const fs::path& dir, int n) {
  const fs::path m = dir / "manifest.jsonl";
  std::ofstream out(m);
  for (int i = 1; i <= n; ++i) out << "{\"k\": " << i << "}\n";
  out << "{oops\n\n{\"file\": \"no-such-file.mp4\"}\n";
  return m;
}

std::unique_ptr<Graph> work_graph(const fs::path& manifest, const fs::path& out,
                                  int64_t sleep_us = 0) {
  Registry reg;
  register_core_nodes(reg);
  GraphBuilder b("manifest_work");
  b.add("lines", "ManifestSource", {{"path", manifest.string()}});
  b.add("work", "ItemWork", {{"sleep_us", sleep_us}});
  b.add("records", "RecordWriter", {{"path", out.string()}});
  b.connect("lines.out", "work.in").connect("work.out", "records.in");
  return b.build(reg);
}

dist::ManifestRunSummary run(const fs::path& manifest, const fs::path& out, bool resume,
                             int in_flight = 2) {
  auto g = work_graph(manifest, out);
  dist::ManifestRunOptions o;
  o.manifest = manifest.string();
  o.out = out.string();
  o.resume = resume;
  o.in_flight = in_flight;
  o.quiet = true;
  return dist::run_manifest(o, [&] { g->run(); });
}

}  // namespace

TEST(Manifest, LinesKeepTheirIndexAndBadLinesBecomeErrors) {
  const auto dir = test_dir("lines");
  const auto lines = read_manifest_lines(write_manifest(dir, 2).string());
  ASSERT_EQ(lines.size(), 4u);  // the blank line is skipped but counted
  EXPECT_EQ(lines[2].index, 2);
  EXPECT_EQ(lines[3].index, 4);
  EXPECT_NE(parse_manifest_item(2, lines[2].text).error.find("line 3 is not JSON"),
            std::string::npos);
  EXPECT_NE(parse_manifest_item(0, "[1, 2]").error.find("not a JSON object"), std::string::npos);
  EXPECT_EQ(parse_manifest_item(0, lines[0].text).value["k"], 1);
  EXPECT_THROW(read_manifest_lines((dir / "absent.jsonl").string()), InputError);
}

// Found by fuzz_manifest: a line that is not JSON because of an invalid UTF-8 byte gave an error
// message quoting that byte, and writing its error record threw nlohmann's type_error.
TEST(Manifest, ErrorRecordsOfInvalidUtf8LinesAreValidJson) {
  const ManifestItem item = parse_manifest_item(2,
                                                "{\"k\": \xab"
                                                "3, \"cost_ms\": 5}");
  EXPECT_NE(item.error.find("line 3 is not JSON"), std::string::npos) << item.error;
  EXPECT_NE(item.error.find("\\xab"), std::string::npos) << item.error;
  std::string dumped;
  EXPECT_NO_THROW(dumped = error_record(item.index, item.error).dump());
  EXPECT_NO_THROW(error_record(0, "bad \xff\xfe bytes \xe2\x82").dump());
  EXPECT_EQ(error_record(0, "caf\xc3\xa9 \xf0\x9f\x99\x82")["error"],
            "caf\xc3\xa9 \xf0\x9f\x99\x82");
}

TEST(Manifest, OverlongLineIsRefusedWithoutBufferingIt) {
  std::istringstream ok("{\"a\": 1}\r\n\n   \n{\"b\": 2}");
  const auto lines = read_manifest_lines(ok, "mem");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].text, "{\"a\": 1}");
  EXPECT_EQ(lines[1].index, 3);
  std::istringstream big("{}\n" + std::string(kMaxManifestLineBytes + 1, 'x') + "\n{}\n");
  try {
    read_manifest_lines(big, "mem");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("line 2 is longer than the limit"), std::string::npos)
        << e.what();
  }
}

TEST(Manifest, NodesWithoutAFeedWriteOneRecordPerLine) {
  const auto dir = test_dir("nodes");
  const auto m = write_manifest(dir, 3);
  work_graph(m, dir / "out.jsonl")->run();
  const auto r = records(dir / "out.jsonl");
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0], nlohmann::json::parse(R"({"line": 1, "value": {"k": 1}})"));
  EXPECT_EQ(r[3]["line"], 4);
  EXPECT_TRUE(r[3].contains("error"));
  EXPECT_EQ(r[4]["line"], 6);
  EXPECT_NE(r[4]["error"].get<std::string>().find("does not exist"), std::string::npos);
}

TEST(RecordFile, FinishWritesManifestOrder) {
  const auto dir = test_dir("order");
  const auto p = (dir / "out.jsonl").string();
  RecordFile f(p, {0, 1, 2}, false);
  f.append(2, {{{"line", 3}}});
  f.append(0, {{{"line", 1}}});
  EXPECT_THROW(f.append(0, {{{"line", 1}}}), RunError);  // twice
  EXPECT_THROW(f.append(7, {{{"line", 8}}}), RunError);  // not in the manifest
  EXPECT_THROW(f.finish(), RunError);                    // line 2 missing
  f.append(1, {{{"line", 2}, {"x", "y"}}});
  f.finish();
  EXPECT_EQ(slurp(p), "{\"line\":1}\n{\"line\":2,\"x\":\"y\"}\n{\"line\":3}\n");
}

TEST(RecordFile, ResumeKeepsWholeGroupsAndDropsATruncatedTail) {
  const auto dir = test_dir("resume");
  const auto p = (dir / "out.jsonl").string();
  // Two records per line. Line 1 whole, line 3 whole, line 2 partial (one of two), line 4 torn.
  {
    std::ofstream out(p, std::ios::binary);
    out << "{\"line\":1,\"q\":0}\n{\"line\":1,\"q\":1}\n"
        << "{\"line\":3,\"q\":0}\n{\"line\":3,\"q\":1}\n"
        << "{\"line\":2,\"q\":0}\n"
        << "{\"line\":4,\"q\":0}\n{\"line\":4,\"q";
  }
  RecordFile f(p, {0, 1, 2, 3}, true, [](int64_t) { return int64_t{2}; });
  EXPECT_EQ(f.finished(), (std::set<int64_t>{0, 2}));
  EXPECT_TRUE(f.resume_report().truncated_tail);
  EXPECT_EQ(f.resume_report().kept_records, 4);
  EXPECT_EQ(f.resume_report().dropped_records, 2);
  // The file now holds only whole groups, so a crash right now would still resume correctly.
  EXPECT_EQ(slurp(p),
            "{\"line\":1,\"q\":0}\n{\"line\":1,\"q\":1}\n{\"line\":3,\"q\":0}\n"
            "{\"line\":3,\"q\":1}\n");
  f.append(3, {{{"line", 4}, {"q", 0}}, {{"line", 4}, {"q", 1}}});
  f.append(1, {{{"line", 2}, {"q", 0}}, {{"line", 2}, {"q", 1}}});
  f.finish();
  const auto r = records(p);
  ASSERT_EQ(r.size(), 8u);
  for (size_t i = 0; i < r.size(); ++i) {
    EXPECT_EQ(r[i]["line"], int(i / 2) + 1);
    EXPECT_EQ(r[i]["q"], int(i % 2));
  }
}

TEST(RecordFile, ResumeRefusesAnotherManifestsOutput) {
  const auto dir = test_dir("other");
  const auto p = (dir / "out.jsonl").string();
  std::ofstream(p) << "{\"line\":9}\n";
  EXPECT_THROW(RecordFile(p, {0, 1}, true), InputError);
  EXPECT_THROW(RecordFile("-", {0, 1}, true), InputError);
}

TEST(RecordFile, DevNullIsWrittenNotReplaced) {
  {
    RecordFile f("/dev/null", {0}, false);
    f.append(0, {{{"line", 1}}});
    f.finish();
  }
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST(ManifestRun, OneRecordPerLineAndResumeRedoesOnlyTheRest) {
  const auto dir = test_dir("run");
  const auto m = write_manifest(dir, 20);
  const auto full = dir / "full.jsonl";
  const auto s = run(m, full, false);
  EXPECT_EQ(s.lines, 22);
  EXPECT_EQ(s.ran, 22);
  EXPECT_EQ(s.errors, 2);
  const std::string expected = slurp(full);
  ASSERT_EQ(records(full).size(), 22u);

  // An interrupted run: the first 9 lines, then half of a record.
  const auto part = dir / "part.jsonl";
  {
    std::ofstream out(part, std::ios::binary);
    std::istringstream in(expected);
    std::string l;
    for (int i = 0; i < 9 && std::getline(in, l); ++i) out << l << "\n";
    std::getline(in, l);
    out << l.substr(0, l.size() / 2);
  }
  const auto r = run(m, part, true);
  EXPECT_EQ(r.skipped, 9);
  EXPECT_EQ(r.ran, 13);
  EXPECT_TRUE(r.resume.truncated_tail);
  EXPECT_EQ(slurp(part), expected);
  // Resuming a finished run runs nothing and changes nothing.
  const auto again = run(m, part, true);
  EXPECT_EQ(again.ran, 0);
  EXPECT_EQ(slurp(part), expected);
}

namespace {
// Drops line index 1 (emits nothing for it): the run must still give that line a record.
class DropSecond : public Node {
 public:
  static constexpr Input<ManifestItem> kIn{"in"};
  static constexpr Output<ManifestItem> kOut{"out"};
  static Contract contract() {
    return Contract().input(kIn).output(kOut).policy(InputPolicy::kImmediate);
  }
  Flow process(Context& ctx) override {
    if (ctx.timestamp().us() != 1) ctx.emit(kOut, ctx.input(kIn).packet());
    return Flow::kContinue;
  }
};
}  // namespace

TEST(ManifestRun, ALineTheGraphDropsGetsAnErrorRecord) {
  const auto dir = test_dir("drop");
  const auto m = write_manifest(dir, 3);
  const auto out = dir / "out.jsonl";
  Registry reg;
  register_core_nodes(reg);
  GraphBuilder b("drop");
  b.add("lines", "ManifestSource", {{"path", m.string()}});
  b.add<DropSecond>("drop");
  b.add("records", "RecordWriter", {{"path", out.string()}});
  b.connect("lines.out", "drop.in").connect("drop.out", "records.in");
  auto g = b.build(reg);
  dist::ManifestRunOptions o;
  o.manifest = m.string();
  o.out = out.string();
  o.quiet = true;
  dist::run_manifest(o, [&] { g->run(); });
  const auto r = records(out);
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[1]["line"], 2);
  EXPECT_NE(r[1]["error"].get<std::string>().find("dropped"), std::string::npos);
  EXPECT_EQ(r[2]["line"], 3);
  EXPECT_FALSE(r[2].contains("error"));
  EXPECT_TRUE(r[3].contains("error"));  // "{oops"
}

TEST(ManifestRun, GraphsWithoutOneOfEachAreRejected) {
  GraphSpec spec;
  spec.name = "two";
  spec.nodes.push_back({"a", "ManifestSource", {{"path", std::string("m.jsonl")}}, {}, ""});
  EXPECT_EQ(dist::manifest_of(spec)->out, "-");
  spec.nodes.push_back({"b", "ManifestSource", {{"path", std::string("m.jsonl")}}, {}, ""});
  EXPECT_THROW(dist::manifest_of(spec), ConfigError);
  spec.nodes.clear();
  EXPECT_FALSE(dist::manifest_of(spec).has_value());
}

TEST(ManifestRun, GpuFollowsTheLocalRank) {
  // Only under an MPI launcher with several GPUs; emulate one.
  ::setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
  ::setenv("OMPI_COMM_WORLD_LOCAL_RANK", "3", 1);
  ::unsetenv("CUDA_VISIBLE_DEVICES");
  EXPECT_EQ(dist::assign_gpu_by_local_rank(2), "1");
  EXPECT_STREQ(std::getenv("CUDA_VISIBLE_DEVICES"), "1");
  ::setenv("CUDA_VISIBLE_DEVICES", "4,5,6", 1);
  EXPECT_EQ(dist::assign_gpu_by_local_rank(), "4");  // 3 mod 3 = 0
  ::setenv("CUDA_VISIBLE_DEVICES", "7", 1);
  EXPECT_EQ(dist::assign_gpu_by_local_rank(), "");  // one GPU: nothing to choose
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
  ::unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
  ::unsetenv("CUDA_VISIBLE_DEVICES");
}
