// Ctrl-C on `omnipipe run`: SIGINT to a run of an endless graph cancels it through the
// async-signal-safe path (core/interrupt.h); the program writes its statistics and exits with 130.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Waits for `pid` until `limit` has passed; true (and the status) if it exited.
bool wait_for(pid_t pid, std::chrono::milliseconds limit, int* status) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (::waitpid(pid, status, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(CliSignal, SigintCancelsAnEndlessRunWritesStatsAndExits130) {
  const fs::path dir = fs::temp_directory_path() / ("omni_sigint_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path graph = dir / "endless.yaml", stats = dir / "stats.json", out = dir / "out.jsonl";
  std::ofstream(graph) << "graph:\n"
                          "  name: endless\n"
                          "  nodes:\n"
                          "    - {name: src, type: CountingSource, params: {count: -1}}\n"
                          "    - {name: slow, type: PassThrough, params: {sleep_us: 1000}}\n"
                          "    - {name: sink, type: JsonlWriter, params: {path: \""
                       << out.string()
                       << "\", flush: true}}\n"
                          "  edges:\n"
                          "    - {from: src.out, to: slow.in}\n"
                          "    - {from: slow.out, to: sink.in}\n";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl(OMNIPIPE_BIN, "omnipipe", "run", graph.c_str(), "--stats", stats.c_str(), "--workers",
            "2", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // The run is under way once packets reach the sink (the handler is installed before run()).
  const auto give_up = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < give_up && (!fs::exists(out) || fs::file_size(out) == 0))
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_GT(fs::file_size(out), 0u) << "omnipipe run never started";
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  int status = 0;
  // A generous bound used as a timeout, not a performance assertion.
  if (!wait_for(pid, std::chrono::seconds(2), &status)) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    FAIL() << "omnipipe run did not exit within 2 s of SIGINT";
  }
  ASSERT_TRUE(WIFEXITED(status)) << "ended by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 130);
  ASSERT_TRUE(fs::exists(stats));
  std::stringstream text;
  text << std::ifstream(stats).rdbuf();
  const auto j = nlohmann::json::parse(text.str());
  ASSERT_TRUE(j.contains("nodes")) << text.str();
  EXPECT_EQ(j["nodes"].size(), 3u);
  fs::remove_all(dir);
}

}  // namespace
