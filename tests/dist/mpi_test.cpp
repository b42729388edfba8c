// Manifest runs across MPI ranks, as a user runs them: `mpirun --oversubscribe -n 3` of
// `omnipipe run` (examples/graphs/manifest_work.yaml; the core-only manifest_work program with the
// same graph where omnipipe is not built, and for the kill and skew tests) and of
// `ask_clip --batch`. The output equals a one-process run byte for
// byte; a rank killed with SIGKILL mid-run (a worker, or rank 0 while it writes) takes the job down
// and --resume then completes it to that same output; on a skewed manifest the dynamic handout
// beats a static split, judged by the lines each rank ran and their costs, not by time.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dist_test_util.h"

namespace fs = std::filesystem;

namespace {

const std::string kSrc = OMNI_SOURCE_DIR;

fs::path test_dir(const std::string& name) { return omni::test::fresh_dir("dist_mpi_test", name); }
using omni::test::slurp;

int64_t count_lines(const fs::path& p) {
  const std::string s = slurp(p);
  return std::count(s.begin(), s.end(), '\n');
}

std::string mpirun(int n) {
  std::string cmd = std::string(OMNI_MPIRUN) + " --oversubscribe -n " + std::to_string(n);
  if (::geteuid() == 0) cmd += " --allow-run-as-root";
  return cmd;
}

// The manifest graph program: `omnipipe run manifest_work.yaml` (where built and `omnipipe`), or
// the core-only stand-in with the same graph (starts in milliseconds instead of loading every
// module's libraries: the kill and skew tests run it).
std::string work_cmd(const fs::path& manifest, const fs::path& out, const std::string& extra,
                     bool omnipipe = false) {
#ifdef OMNI_OMNIPIPE
  if (omnipipe)
    return std::string(OMNI_OMNIPIPE) + " run " + kSrc + "/examples/graphs/manifest_work.yaml" +
           " --set lines.path=" + manifest.string() + " --set records.path=" + out.string() +
           " --quiet " + extra;
#else
  (void)omnipipe;
#endif
  return std::string(OMNI_MANIFEST_WORK) + " " + manifest.string() + " " + out.string() +
         " --quiet " + extra;
}

int sh(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0);
}

// `n` lines costing `cost_ms` each, then a line that is not JSON and one naming a missing file.
fs::path write_manifest(const fs::path& dir, int n, int cost_ms) {
  const fs::path m = dir / "manifest.jsonl";
  std::ofstream out(m);
  for (int i = 1; i <= n; ++i) out << "{\"k\": " << i << ", \"cost_ms\": " << cost_ms << "}\n";
  out << "{not json\n{\"file\": \"missing.mp4\"}\n";
  return m;
}

// PIDs of this test's processes running MPI rank `rank` (found by the tag mpirun exported).
std::vector<pid_t> ranks_with_tag(const std::string& tag, int rank) {
  std::vector<pid_t> pids;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string env = slurp(e.path() / "environ");
    if (env.find("OMNI_TEST_TAG=" + tag + '\0') == std::string::npos) continue;
    if (env.find("OMPI_COMM_WORLD_RANK=" + std::to_string(rank) + '\0') == std::string::npos)
      continue;
    pids.push_back(pid_t(std::stol(name)));
  }
  return pids;
}

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(slurp(p)); }

}  // namespace

TEST(Mpi, ThreeRanksWriteWhatOneProcessWrites) {
  const auto dir = test_dir("three");
  const auto m = write_manifest(dir, 30, 20);
  ASSERT_EQ(sh(work_cmd(m, dir / "one.jsonl", "", true)), 0);
  ASSERT_EQ(sh(mpirun(3) + " " +
               work_cmd(m, dir / "three.jsonl", "--summary " + (dir / "s.json").string(), true)),
            0);
  EXPECT_EQ(count_lines(dir / "one.jsonl"), 32);
  EXPECT_EQ(slurp(dir / "three.jsonl"), slurp(dir / "one.jsonl"));
  const auto s = read_json(dir / "s.json");
  EXPECT_EQ(s["ranks"], 3);
  EXPECT_EQ(s["errors"], 2);
  int64_t lines = 0;
  std::set<int64_t> seen;
  for (const auto& r : s["per_rank"]) {
    lines += r["lines"].get<int64_t>();
    for (const auto& l : r["line_numbers"]) EXPECT_TRUE(seen.insert(l.get<int64_t>()).second);
  }
  EXPECT_EQ(lines, 32);
  EXPECT_EQ(seen.size(), 32u);
}

// Kills rank `victim` with SIGKILL once the output holds some records, then resumes.
void kill_and_resume(int victim) {
  const auto dir = test_dir("kill" + std::to_string(victim));
  const auto m = write_manifest(dir, 48, 40);
  ASSERT_EQ(sh(work_cmd(m, dir / "one.jsonl", "")), 0);
  const auto out = dir / "three.jsonl";
  const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(victim);
  const std::string cmd = "OMNI_TEST_TAG=" + tag + " exec " + mpirun(3) + " -x OMNI_TEST_TAG " +
                          work_cmd(m, out, "") + " 2> " + (dir / "killed.log").string();
  const pid_t job = ::fork();
  ASSERT_GE(job, 0);
  if (job == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait for ~15 finished lines, then kill the rank.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool killed = false;
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(out) && count_lines(out) >= 15) {
      for (pid_t p : ranks_with_tag(tag, victim)) killed |= ::kill(p, SIGKILL) == 0;
      if (killed) break;
    }
    int st = 0;
    if (::waitpid(job, &st, WNOHANG) == job) FAIL() << "the job ended before a rank was killed";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(killed) << "no rank " << victim << " found to kill";
  int st = 0;
  ASSERT_EQ(::waitpid(job, &st, 0), job);
  EXPECT_FALSE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "mpirun succeeded although a rank died";
  const int64_t before = count_lines(out);
  EXPECT_LT(before, 50) << "the run finished before the kill took effect";
  // Resume with three ranks again: exactly the single-process output.
  ASSERT_EQ(sh(mpirun(3) + " " +
               work_cmd(m, out, "--resume --summary " + (dir / "resume.json").string())),
            0);
  EXPECT_EQ(slurp(out), slurp(dir / "one.jsonl"));
  const auto s = read_json(dir / "resume.json");
  EXPECT_GT(s["skipped"].get<int64_t>(), 0);
  EXPECT_EQ(s["skipped"].get<int64_t>() + s["ran"].get<int64_t>(), 50);
}

TEST(Mpi, KillAWorkerThenResume) { kill_and_resume(1); }
TEST(Mpi, KillTheCoordinatorThenResume) { kill_and_resume(0); }

TEST(Mpi, DynamicHandoutBeatsAStaticSplitOnASkewedManifest) {
  // 24 lines: the first 4 cost 400 ms, the other 20 cost 20 ms. A static split in 3 blocks gives
  // rank 0 all four long lines (4 x 400 + 4 x 20 = 1680 ms of work); handing out one line at a
  // time to whichever rank asks spreads them.
  const auto dir = test_dir("skew");
  const fs::path m = dir / "manifest.jsonl";
  std::vector<int64_t> cost;
  {
    std::ofstream out(m);
    for (int i = 0; i < 24; ++i) {
      cost.push_back(i < 4 ? 400 : 20);
      out << "{\"k\": " << i + 1 << ", \"cost_ms\": " << cost.back() << "}\n";
    }
  }
  ASSERT_EQ(
      sh(mpirun(3) + " " +
         work_cmd(m, dir / "out.jsonl", "--in-flight 1 --summary " + (dir / "s.json").string())),
      0);
  const auto s = read_json(dir / "s.json");
  int64_t static_max = 0, dynamic_max = 0, total = 0;
  for (int r = 0; r < 3; ++r) {
    int64_t c = 0;
    for (int i = r * 8; i < (r + 1) * 8; ++i) c += cost[size_t(i)];
    static_max = std::max(static_max, c);
  }
  std::vector<int64_t> lines;
  for (const auto& r : s["per_rank"]) {
    int64_t c = 0;
    for (const auto& l : r["line_numbers"]) c += cost[size_t(l.get<int64_t>() - 1)];
    dynamic_max = std::max(dynamic_max, c);
    total += c;
    lines.push_back(r["lines"].get<int64_t>());
  }
  EXPECT_EQ(total, 2000);
  EXPECT_EQ(static_max, 1680);
  // The busiest rank's work (in cost units from the manifest, not measured time).
  EXPECT_LE(dynamic_max, static_max * 3 / 4) << s.dump();
  // And the lines per rank are uneven: ranks with long lines ran fewer.
  EXPECT_NE(*std::min_element(lines.begin(), lines.end()),
            *std::max_element(lines.begin(), lines.end()))
      << s.dump();
}

#ifdef OMNI_ASK_CLIP
TEST(Mpi, AskClipBatchOnThreeRanks) {
  const auto dir = test_dir("ask");
  const std::string sample = kSrc + "/models/shapes_voices/sample.mp4";
  const fs::path m = dir / "manifest.jsonl";
  {
    std::ofstream out(m);
    out << "{\"file\": \"" << sample << "\", \"shape\": \"circle\"}\n"
        << "{\"file\": \"missing.mp4\"}\n"
        << "{not json\n"
        << "{\"file\": \"" << sample << "\", \"question\": \"shape\"}\n"
        << "{\"file\": \"" << sample << "\", \"question\": \"color\"}\n";
  }
  const std::string ask = std::string(OMNI_ASK_CLIP) + " --quiet --workers 1 --batch " + m.string();
  ASSERT_EQ(sh(ask + " --out " + (dir / "one.jsonl").string()), 0);
  ASSERT_EQ(sh(mpirun(3) + " " + ask + " --out " + (dir / "three.jsonl").string() + " --summary " +
               (dir / "s.json").string()),
            0);
  EXPECT_EQ(count_lines(dir / "one.jsonl"), 4 + 4 + 1 + 1 + 1);  // all 4 for the missing file
  EXPECT_EQ(slurp(dir / "three.jsonl"), slurp(dir / "one.jsonl"));
  const auto s = read_json(dir / "s.json");
  EXPECT_EQ(s["ranks"], 3);
  EXPECT_EQ(s["pairs"], 11);
  // As if killed while writing: line 1 whole, two of line 2's four records, half of a third.
  {
    std::istringstream in(slurp(dir / "one.jsonl"));
    std::ofstream out(dir / "three.jsonl", std::ios::binary | std::ios::trunc);
    std::string l;
    for (int i = 0; i < 6 && std::getline(in, l); ++i) out << l << "\n";
    std::getline(in, l);
    out << l.substr(0, 20);
  }
  ASSERT_EQ(sh(mpirun(3) + " " + ask + " --resume --out " + (dir / "three.jsonl").string() +
               " --summary " + (dir / "r.json").string()),
            0);
  EXPECT_EQ(slurp(dir / "three.jsonl"), slurp(dir / "one.jsonl"));
  const auto r = read_json(dir / "r.json");
  EXPECT_EQ(r["skipped"], 1);  // line 1; line 2 is answered again
  EXPECT_EQ(r["resume"]["dropped_records"], 2);
  EXPECT_EQ(r["resume"]["truncated_tail"], true);
}
#endif
