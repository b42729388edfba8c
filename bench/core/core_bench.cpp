// Per-packet cost of the graph runtime: a chain of pass-through nodes (1 and 2 workers), a
// fan-out/fan-in, and the floor: a plain loop making the same node calls without a scheduler.
#include <benchmark/benchmark.h>

#include "core/core_nodes.h"
#include "core/graph.h"

namespace omni {
namespace {

constexpr int64_t kPackets = 20000;

// Minimal Context for the floor: one input slot, one output slot, no queues or locks.
class LoopContext final : public Context {
 public:
  Packet in, out;
  Params params_;
  std::string name_ = "loop";
  const std::string& node_name() const override { return name_; }
  const Params& params() const override { return params_; }
  Timestamp timestamp() const override { return in.timestamp(); }
  const Packet& input(int) const override { return in; }
  bool input_done(int) const override { return false; }
  void emit(int, Packet p) override { out = std::move(p); }
  void set_bound(int, Timestamp) override {}
  void close_output(int) override {}
  void count(std::string_view, int64_t) override {}
  void warn(std::string_view) override {}
  bool stop_requested() const override { return false; }
  int input_port(std::string_view) const override { return 0; }
  int output_port(std::string_view) const override { return 0; }
};

void set_hop_counters(benchmark::State& state, int64_t hops) {
  state.counters["time_per_packet_hop"] = benchmark::Counter(
      static_cast<double>(kPackets * hops),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.SetItemsProcessed(state.iterations() * kPackets * hops);
}

// The floor: make each packet and pass it through `hops` pass-through nodes by direct calls.
void BM_PlainLoop(benchmark::State& state) {
  const int hops = static_cast<int>(state.range(0));
  std::vector<PassThrough> nodes(hops);
  LoopContext ctx;
  ctx.params_.set(std::string(PassThrough::kSleep.name), int64_t{0});
  for (auto& n : nodes) n.open(ctx);
  for (auto _ : state) {
    for (int64_t i = 0; i < kPackets; ++i) {
      ctx.out = make_packet<int64_t>(i, Timestamp(i));
      for (auto& n : nodes) {
        ctx.in = std::move(ctx.out);
        n.process(ctx);
      }
      benchmark::DoNotOptimize(ctx.out);
    }
  }
  set_hop_counters(state, hops);
}
BENCHMARK(BM_PlainLoop)->Arg(8)->Unit(benchmark::kMillisecond);

// source -> `hops-1` PassThrough -> Discard: `hops` edges per packet.
void BM_Chain(benchmark::State& state) {
  const int hops = static_cast<int>(state.range(0));
  const int workers = static_cast<int>(state.range(1));
  Registry reg;
  register_core_nodes(reg);
  for (auto _ : state) {
    state.PauseTiming();
    GraphBuilder b("chain");
    b.add("src", "CountingSource", {{"count", kPackets}});
    std::string prev = "src.out";
    for (int i = 0; i + 1 < hops; ++i) {
      const std::string n = std::string("p").append(std::to_string(i));
      b.add(n, "PassThrough");
      b.connect(prev, n + ".in");
      prev = n + ".out";
    }
    b.add("sink", "Discard");
    b.connect(prev, "sink.in");
    auto g = b.build(reg);
    RunOptions o;
    o.workers = workers;
    state.ResumeTiming();
    g->run(o);
  }
  set_hop_counters(state, hops);
}
BENCHMARK(BM_Chain)
    ->Args({8, 1})
    ->Args({8, 2})
    ->ArgNames({"hops", "workers"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// source -> 4 PassThrough (fan-out) -> Merge (sync fan-in) -> Discard: 9 edges per packet.
void BM_FanOutFanIn(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  Registry reg;
  register_core_nodes(reg);
  for (auto _ : state) {
    state.PauseTiming();
    GraphBuilder b("fan");
    b.add("src", "CountingSource", {{"count", kPackets}});
    b.add("merge", "Merge");
    for (int i = 0; i < 4; ++i) {
      const std::string n = std::string("p").append(std::to_string(i));
      b.add(n, "PassThrough");
      b.connect("src.out", n + ".in");
      b.connect(n + ".out", "merge.in" + std::to_string(i));
    }
    b.add("sink", "Discard");
    b.connect("merge.out", "sink.in");
    auto g = b.build(reg);
    RunOptions o;
    o.workers = workers;
    state.ResumeTiming();
    g->run(o);
  }
  set_hop_counters(state, 9);
}
BENCHMARK(BM_FanOutFanIn)
    ->Arg(1)
    ->Arg(2)
    ->ArgName("workers")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace omni

BENCHMARK_MAIN();
