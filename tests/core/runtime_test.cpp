// The graph runtime: sync/immediate policies with bounds, back-pressure, drops, errors,
// cancellation, deadlock reports, a random-DAG stress test, observers, pollers, stats, trace, DOT.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "tests/core/test_util.h"

namespace omni {
namespace {

using test::W;
using test::Watchdog;

TEST(Runtime, SyncAlignsTwoRatesWithSkippedTimestamps) {
  Watchdog wd;
  const Registry reg = test::test_registry();
  GraphBuilder b("sync");
  b.add("fast", "CountingSource", {{"count", 30}});
  // Every 3 us, and every 4th packet skipped (the source only advances its bound there).
  b.add("slow", "CountingSource", {{"count", 10}, {"ts_step_us", 3}, {"skip_every", 4}});
  b.add("zip", "Zip");
  b.connect("fast.out", "zip.in0", {2, Overflow::kBlock});
  b.connect("slow.out", "zip.in1", {2, Overflow::kBlock});
  auto g = b.build(reg);
  std::vector<Packet> got;
  g->observe("zip.out", [&](const Packet& p) { got.push_back(p); });
  g->run(W(3));
  ASSERT_EQ(got.size(), 30u);
  for (int64_t t = 0; t < 30; ++t) {
    const auto& set = got[t].get<PacketSet>();
    EXPECT_EQ(got[t].timestamp().us(), t);
    ASSERT_EQ(set.packets.size(), 2u);
    EXPECT_FALSE(set.packets[0].empty());
    EXPECT_EQ(set.packets[0].get<int64_t>(), t);
    const bool slow_expected = t % 3 == 0 && ((t / 3) + 1) % 4 != 0;
    EXPECT_EQ(!set.packets[1].empty(), slow_expected) << "t=" << t;
    if (slow_expected) {
      EXPECT_EQ(set.packets[1].get<int64_t>(), t / 3);
    }
  }
}

// A sync node with two inputs where one stream skips timestamps with bounds only: the node must
// still process each timestamp exactly once, in order, even with capacity-1 queues.
class PairRecorder : public Node {
 public:
  static inline std::vector<std::pair<int64_t, int>> seen;  // (ts, inputs present bitmask)
  static constexpr Input<int64_t> kA{"a"}, kB{"b"};
  static Contract contract() { return Contract().input(kA).input(kB); }
  Flow process(Context& ctx) override {
    seen.push_back(
        {ctx.timestamp().us(), (ctx.input(kA).empty() ? 0 : 1) | (ctx.input(kB).empty() ? 0 : 2)});
    return Flow::kContinue;
  }
};

TEST(Runtime, SyncWithCapacityOneAndBoundsNeverStalls) {
  Watchdog wd;
  PairRecorder::seen.clear();
  GraphBuilder b("sync1");
  b.add<CountingSource>("a", {{"count", 200}});
  b.add<CountingSource>("b", {{"count", 100}, {"ts_step_us", 2}, {"skip_every", 2}});
  b.add<PairRecorder>("r");
  b.connect("a.out", "r.a", {1, Overflow::kBlock});
  b.connect("b.out", "r.b", {1, Overflow::kBlock});
  b.build()->run(W(1, 5000));
  ASSERT_EQ(PairRecorder::seen.size(), 200u);
  for (int64_t t = 0; t < 200; ++t) {
    EXPECT_EQ(PairRecorder::seen[t].first, t);
    const bool b_present = t % 2 == 0 && ((t / 2) + 1) % 2 != 0;
    EXPECT_EQ(PairRecorder::seen[t].second, 1 | (b_present ? 2 : 0)) << t;
  }
}

TEST(Runtime, BackPressureDeliversEverythingInOrderWithinCapacity) {
  Watchdog wd;
  const Registry reg = test::test_registry();
  for (int workers : {1, 3}) {
    GraphBuilder b("bp");
    b.add("src", "CountingSource", {{"count", 300}, {"burst", 7}});
    b.add("p", "PassThrough");
    b.add("slow", "PassThrough", {{"sleep_us", 100}});
    b.connect("src.out", "p.in", {3, Overflow::kBlock});
    b.connect("p.out", "slow.in", {2, Overflow::kBlock});
    auto g = b.build(reg);
    std::vector<Packet> got;
    g->observe("slow.out", [&](const Packet& p) { got.push_back(p); });
    g->run(W(workers));
    ASSERT_EQ(got.size(), 300u);
    for (int64_t i = 0; i < 300; ++i) EXPECT_EQ(got[i].get<int64_t>(), i);
    for (const auto& n : g->stats().nodes) {
      EXPECT_EQ(n.dropped, 0);
      if (n.name == "p") {
        EXPECT_GE(n.queue_high_water.at("in"), 1);
        EXPECT_LE(n.queue_high_water.at("in"), 3);
      }
      if (n.name == "slow") {
        EXPECT_LE(n.queue_high_water.at("in"), 2);
        EXPECT_EQ(n.packets_out.at("out"), 300);
      }
    }
  }
}

TEST(Runtime, DropPoliciesCountExactly) {
  Watchdog wd;
  const Registry reg = test::test_registry();
  for (Overflow o : {Overflow::kDropNewest, Overflow::kDropOldest}) {
    // One process() call emits 100 packets at once into a capacity-10 edge: exactly 90 drop.
    GraphBuilder b("drops");
    b.add("src", "CountingSource", {{"count", 100}, {"burst", 100}});
    b.add("p", "PassThrough");
    b.connect("src.out", "p.in", {10, o});
    auto g = b.build(reg);
    std::vector<Packet> got;
    g->observe("p.out", [&](const Packet& p) { got.push_back(p); });
    g->run(W(2));
    ASSERT_EQ(got.size(), 10u);
    const int64_t first = o == Overflow::kDropNewest ? 0 : 90;
    for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(got[i].get<int64_t>(), first + i);
    for (const auto& n : g->stats().nodes) {
      if (n.name == "p") {
        EXPECT_EQ(n.dropped, 90);
        EXPECT_EQ(n.queue_high_water.at("in"), 10);
      }
    }
  }
}

TEST(Runtime, ExceptionStopsGraphPromptlyAndNamesNode) {
  Watchdog wd;
  const Registry reg = test::test_registry();
  // An endless source upstream: the failure must still end run().
  GraphBuilder b("err");
  b.add("src", "CountingSource", {{"count", -1}});
  b.add("bad", "FailAt", {{"fail_at_us", 57}});
  b.add("sink", "Discard");
  b.connect("src.out", "bad.in");
  b.connect("bad.out", "sink.in");
  auto g = b.build(reg);
  try {
    g->run(W(4));
    FAIL() << "run() should throw";
  } catch (const RunError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'bad'"), std::string::npos) << m;
    EXPECT_NE(m.find("FailAt"), std::string::npos) << m;
    EXPECT_NE(m.find("0.000057s"), std::string::npos) << m;
    EXPECT_NE(m.find("boom at the chosen timestamp"), std::string::npos) << m;
  }
}

TEST(Runtime, ExceptionInOpenOrCloseIsReported) {
  Watchdog wd;
  const Registry reg = test::test_registry();
  for (std::string where : {"open", "close"}) {
    GraphBuilder b("err2");
    b.add("src", "CountingSource", {{"count", 5}});
    b.add("bad", "FailAt", {{"where", where}});
    b.connect("src.out", "bad.in");
    try {
      b.build(reg)->run(W(2));
      FAIL() << where;
    } catch (const RunError& e) {
      EXPECT_NE(std::string(e.what()).find("in " + where + "()"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("'bad'"), std::string::npos) << e.what();
    }
  }
}

TEST(Runtime, CancelMidRun) {
  Watchdog wd;
  const Registry reg = test::test_registry();
  GraphBuilder b("cancel");
  b.add("src", "CountingSource", {{"count", -1}, {"interval_us", 1000}});
  b.add("p", "PassThrough");
  b.connect("src.out", "p.in");
  auto g = b.build(reg);
  std::atomic<int> n{0};
  g->observe("p.out", [&](const Packet&) { n++; });
  g->start(W(2));
  while (n.load() < 5) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  g->cancel();
  try {
    g->wait();
    FAIL();
  } catch (const RunError& e) {
    EXPECT_NE(std::string(e.what()).find("cancelled"), std::string::npos) << e.what();
  }
  EXPECT_GE(n.load(), 5);
}

TEST(Runtime, CancelFromCallback) {
  Watchdog wd;
  const Registry reg = test::test_registry();
  GraphBuilder b("cancel2");
  b.add("src", "CountingSource", {{"count", -1}});
  auto g = b.build(reg);
  Graph* raw = g.get();
  g->observe("src.out", [&](const Packet& p) {
    if (p.get<int64_t>() == 100) raw->cancel();
  });
  EXPECT_THROW(g->run(W(1)), RunError);
}

// Emits on `x` at every timestamp but never on `y` (and never advances y's bound).
class Lopsided : public Node {
 public:
  static constexpr Output<int64_t> kX{"x"}, kY{"y"};
  static Contract contract() { return Contract().output(kX).output(kY); }
  Flow process(Context& ctx) override {
    ctx.emit(kX, i_, Timestamp(i_));
    return ++i_ < 100 ? Flow::kContinue : Flow::kDone;
  }

 private:
  int64_t i_ = 0;
};

TEST(Runtime, ForcedDeadlockIsReportedWithQueueStates) {
  Watchdog wd;
  GraphBuilder b("dead");
  b.add<Lopsided>("src");
  b.add<Zip>("zip");
  b.add<Discard>("sink");
  b.connect("src.x", "zip.in0", {2, Overflow::kBlock});
  b.connect("src.y", "zip.in1", {2, Overflow::kBlock});
  b.connect("zip.out", "sink.in");
  auto g = b.build();
  try {
    g->run(W(2, 100));
    FAIL();
  } catch (const RunError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("deadlocked"), std::string::npos) << m;
    EXPECT_NE(m.find("src.x -> zip.in0: 2/2 queued"), std::string::npos) << m;
    EXPECT_NE(m.find("src.y -> zip.in1: 0/2"), std::string::npos) << m;
  }
}

TEST(Runtime, EmittingOutOfOrderIsAnError) {
  // A local class has no static members: its descriptor is a static of the enclosing function.
  static constexpr Output<int64_t> kOut{"out"};
  struct Backwards : Node {
    static Contract contract() { return Contract().output(kOut); }
    Flow process(Context& ctx) override {
      ctx.emit(kOut, 1, Timestamp(10));
      ctx.emit(kOut, 2, Timestamp(10));
      return Flow::kDone;
    }
  };
  Watchdog wd;
  GraphBuilder b("order");
  b.add<Backwards>("bw");
  try {
    b.build()->run(W(1));
    FAIL();
  } catch (const RunError& e) {
    EXPECT_NE(std::string(e.what()).find("must increase"), std::string::npos) << e.what();
  }
}

// Reentrant node: calls overlap, outputs still come out in timestamp order.
class SlowReentrant : public Node {
 public:
  static constexpr Input<int64_t> kIn{"in"};
  static constexpr Output<int64_t> kOut{"out"};
  static Contract contract() { return Contract().input(kIn).output(kOut).reentrant(); }
  Flow process(Context& ctx) override {
    std::this_thread::sleep_for(std::chrono::microseconds((ctx.timestamp().us() * 37) % 300));
    ctx.emit(kOut, ctx.input(kIn).packet());
    return Flow::kContinue;
  }
};

TEST(Runtime, ReentrantNodeKeepsOrder) {
  Watchdog wd;
  GraphBuilder b("re");
  b.add<CountingSource>("src", {{"count", 200}});
  b.add<SlowReentrant>("r");
  b.connect("src.out", "r.in");
  auto g = b.build();
  std::vector<Packet> got;
  g->observe("r.out", [&](const Packet& p) { got.push_back(p); });
  g->run(W(4));
  ASSERT_EQ(got.size(), 200u);
  for (int64_t i = 0; i < 200; ++i) EXPECT_EQ(got[i].get<int64_t>(), i);
}

TEST(Runtime, PollerYieldsEveryPacket) {
  Watchdog wd;
  const Registry reg = test::test_registry();
  GraphBuilder b("poll");
  b.add("src", "CountingSource", {{"count", 500}});
  b.add("p", "PassThrough");
  b.connect("src.out", "p.in");
  auto g = b.build(reg);
  auto poller = g->poller("p.out", 4);
  g->start(W(2));
  Packet p;
  int64_t expect = 0;
  while (poller->next(p)) EXPECT_EQ(p.get<int64_t>(), expect++);
  g->wait();
  EXPECT_EQ(expect, 500);
}

TEST(Runtime, CountersWarningsStatsJsonTraceAndDot) {
  static constexpr Input<int64_t> kIn{"in"};
  struct Counting : Node {
    static Contract contract() { return Contract().input(kIn); }
    Flow process(Context& ctx) override {
      if (ctx.input(kIn).get() % 2) ctx.count("odd");
      ctx.warn("same warning every time");
      return Flow::kContinue;
    }
  };
  Watchdog wd;
  GraphBuilder b("obs");
  b.add("src", "CountingSource", {{"count", 20}});
  b.add<Counting>("c");
  b.connect("src.out", "c.in", {5, Overflow::kBlock});
  auto g = b.build(test::test_registry());
  const std::string trace = std::string(OMNI_BINARY_DIR) + "/core_runtime_trace.json";
  g->run(W(2, 2000, trace));
  const GraphStats s = g->stats();
  ASSERT_EQ(s.nodes.size(), 2u);
  const auto j = nlohmann::json::parse(s.to_json());
  ASSERT_TRUE(j["nodes"].is_array());
  EXPECT_TRUE(j["wall_s"].is_number());
  for (const auto& n : j["nodes"]) {
    for (const char* k : {"name", "type", "outputs", "process_us", "dropped"})
      EXPECT_TRUE(n.contains(k)) << k;
    for (const char* k : {"p50", "p99", "max"}) EXPECT_TRUE(n["process_us"][k].is_number());
    if (n["name"] == "src") {
      EXPECT_EQ(n["type"], "CountingSource");
      EXPECT_EQ(n["outputs"]["out"]["packets"], 20);
    } else {
      EXPECT_EQ(n["counters"]["odd"], 10);
      EXPECT_EQ(n["warnings"].size(), 1u);
      EXPECT_EQ(n["calls"], 20);
      EXPECT_EQ(n["dropped"], 0);
      EXPECT_LE(n["queue_high_water"]["in"].get<int>(), 5);
    }
  }
  std::ifstream f(trace);
  ASSERT_TRUE(f.good());
  const auto t = nlohmann::json::parse(f);
  int process_events = 0;
  for (const auto& ev : t["traceEvents"])
    if (ev["ph"] == "X" && ev["cat"] == "process") process_events++;
  EXPECT_EQ(process_events, 40);
  const std::string dot = g->to_dot();
  EXPECT_NE(dot.find("digraph \"obs\""), std::string::npos);
  EXPECT_NE(dot.find("\"src\" -> \"c\""), std::string::npos);
  EXPECT_NE(dot.find("[5, block]"), std::string::npos);
}

// Random DAGs of sources, pass-throughs and sync merges; checks every observed stream holds
// exactly the union of its upstream sources' timestamps, in order.
TEST(Runtime, RandomDagStress) {
  Watchdog wd(std::chrono::seconds(120));
  const Registry reg = test::test_registry();
  std::mt19937 rng(1234);
  for (int round = 0; round < 4; ++round) {
    GraphBuilder b("stress" + std::to_string(round));
    std::vector<std::string> streams;
    std::vector<std::set<int64_t>> expected;
    const int sources = 3 + static_cast<int>(rng() % 3);
    for (int s = 0; s < sources; ++s) {
      const int64_t count = 300 + rng() % 500, step = 1 + rng() % 4;
      const std::string name = "s" + std::to_string(s);
      b.add(name, "CountingSource",
            {{"count", count}, {"ts_step_us", step}, {"burst", int64_t(1 + rng() % 5)}});
      std::set<int64_t> ts;
      for (int64_t i = 0; i < count; ++i) ts.insert(i * step);
      streams.push_back(name + ".out");
      expected.push_back(std::move(ts));
    }
    const int inner = 25;
    for (int k = 0; k < inner; ++k) {
      const std::string name = std::string("n").append(std::to_string(k));
      auto opts = [&] { return EdgeOptions{1 + static_cast<int>(rng() % 8), Overflow::kBlock}; };
      if (rng() % 2) {
        const size_t from = rng() % streams.size();
        b.add(name, "PassThrough");
        b.connect(streams[from], name + ".in", opts());
        expected.push_back(expected[from]);
      } else {
        b.add(name, "Merge");
        const int fan = 2 + static_cast<int>(rng() % 2);
        std::set<size_t> used;
        std::set<int64_t> ts;
        for (int i = 0; i < fan; ++i) {
          size_t from = rng() % streams.size();
          if (!used.insert(from).second) continue;
          b.connect(streams[from], name + ".in" + std::to_string(i), opts());
          ts.insert(expected[from].begin(), expected[from].end());
        }
        expected.push_back(std::move(ts));
      }
      streams.push_back(name + ".out");
    }
    auto g = b.build(reg);
    std::vector<std::vector<int64_t>> got(streams.size());
    for (size_t i = 0; i < streams.size(); ++i)
      g->observe(streams[i], [&got, i](const Packet& p) { got[i].push_back(p.timestamp().us()); });
    g->run(W(4));
    for (size_t i = 0; i < streams.size(); ++i) {
      std::vector<int64_t> want(expected[i].begin(), expected[i].end());
      EXPECT_EQ(got[i], want) << "stream " << streams[i] << " in round " << round;
    }
  }
}

TEST(Runtime, GraphCanBeDestroyedWhileRunning) {
  Watchdog wd;
  const Registry reg = test::test_registry();
  GraphBuilder b("dtor");
  b.add("src", "CountingSource", {{"count", -1}});
  b.add("p", "PassThrough");
  b.connect("src.out", "p.in");
  auto g = b.build(reg);
  g->start(W(2));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  g.reset();  // cancels and joins
}

}  // namespace
}  // namespace omni

namespace omni::test {
namespace {

// Emits one std::string that is not valid UTF-8.
class BadUtf8Source : public Node {
 public:
  static constexpr Output<std::string> kOut{"out"};
  static Contract contract() { return Contract().output(kOut); }
  Flow process(Context& ctx) override {
    ctx.emit(kOut, std::string("ok\xB0\xFF"), Timestamp(0));
    return Flow::kDone;
  }
};

TEST(JsonlWriter, InvalidUtf8PayloadIsWrittenWithReplacementCharacters) {
  Watchdog guard;
  const std::string path = std::string(OMNI_BINARY_DIR) + "/jsonl_bad_utf8.jsonl";
  GraphBuilder b("utf8");
  b.add<BadUtf8Source>("src");
  b.add("sink", "JsonlWriter", {{"path", path}});
  b.connect("src.out", "sink.in");
  Registry reg;
  register_core_nodes(reg);
  b.build(reg)->run();
  std::ifstream in(path);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_NE(line.find("ok\xEF\xBF\xBD"), std::string::npos) << line;  // U+FFFD
}

// Throws the exception chosen by `kind` at timestamp 3.
class Thrower : public Node {
 public:
  static constexpr Input<int64_t> kIn{"in"};
  static constexpr Param<std::string> kKind{"kind", "input", "input | config | logic | run"};
  static Contract contract() { return Contract().input(kIn).param(kKind); }
  void open(Context& ctx) override { kind_ = ctx.param(kKind); }
  Flow process(Context& ctx) override {
    if (ctx.timestamp().us() != 3) return Flow::kContinue;
    if (kind_ == "input") throw InputError("clip.mp4 is damaged");
    if (kind_ == "config") throw ConfigError("size must be positive");
    if (kind_ == "run") throw RunError("inner graph was cancelled", ErrorKind::kCancelled);
    throw std::logic_error("index out of range");
  }

 private:
  std::string kind_;
};

RunError run_failing(const std::string& kind) {
  GraphBuilder b("kinds");
  b.add<CountingSource>("src", {{"count", int64_t{10}}});
  b.add<Thrower>("bad", {{"kind", kind}});
  b.connect("src.out", "bad.in");
  try {
    b.build()->run(W(2));
  } catch (const RunError& e) {
    return e;
  }
  ADD_FAILURE() << "run() should throw";
  return RunError("");
}

size_t count_of(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

TEST(Runtime, ErrorsKeepTheirKindAndOneContextPrefix) {
  Watchdog wd;
  {
    const RunError e = run_failing("input");
    EXPECT_EQ(e.kind(), ErrorKind::kInput);
    EXPECT_FALSE(e.cancelled());
    EXPECT_EQ(std::string(e.what()),
              "node 'bad' (" + type_id<Thrower>().name +
                  ") failed in process() at timestamp 0.000003s: clip.mp4 is damaged");
    EXPECT_EQ(count_of(e.what(), "'bad'"), 1u);
    ASSERT_TRUE(e.cause());
    EXPECT_THROW(std::rethrow_exception(e.cause()), InputError);  // the node's own exception
  }
  {
    const RunError e = run_failing("config");
    EXPECT_EQ(e.kind(), ErrorKind::kConfig);
    EXPECT_THROW(std::rethrow_exception(e.cause()), ConfigError);
  }
  {
    const RunError e = run_failing("logic");  // a bug, not bad input
    EXPECT_EQ(e.kind(), ErrorKind::kInternal);
    EXPECT_STREQ(error_kind_name(e.kind()), "internal");
    EXPECT_THROW(std::rethrow_exception(e.cause()), std::logic_error);
  }
  {
    const RunError e = run_failing("run");  // a RunError from inside a node keeps its kind
    EXPECT_EQ(e.kind(), ErrorKind::kCancelled);
  }
}

TEST(Runtime, CancellationAndDeadlockHaveTheirKinds) {
  Watchdog wd;
  const Registry reg = test::test_registry();
  GraphBuilder b("cancel3");
  b.add("src", "CountingSource", {{"count", -1}});
  auto g = b.build(reg);
  Graph* raw = g.get();
  g->observe("src.out", [&](const Packet& p) {
    if (p.get<int64_t>() == 10) raw->cancel();
  });
  try {
    g->run(W(1));
    FAIL();
  } catch (const RunError& e) {
    EXPECT_TRUE(e.cancelled());
    EXPECT_EQ(e.kind(), ErrorKind::kCancelled);
    EXPECT_FALSE(e.cause());
  }
  GraphBuilder d("dead2");
  d.add<Lopsided>("src");
  d.add<Zip>("zip");
  d.connect("src.x", "zip.in0", {2, Overflow::kBlock});
  d.connect("src.y", "zip.in1", {2, Overflow::kBlock});
  try {
    d.build()->run(W(2, 100));
    FAIL();
  } catch (const RunError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kDeadlock);
  }
}

}  // namespace
}  // namespace omni::test
