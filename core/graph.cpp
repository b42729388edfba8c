// The graph runtime: bounded edges, sync/immediate input policies with timestamp bounds, a
// worker-pool scheduler, error/cancel handling, deadlock detection, observers and pollers.
//
// Concurrency model: one graph-wide mutex guards every queue and node state; process() runs
// outside it. A call's emits are buffered in its Context and committed (under the lock) when the
// call returns, so process() never blocks on a full queue. A block edge that is full keeps the
// producer's extra packets in a per-edge overflow list and the producer is not scheduled again
// until that list is empty: queues never exceed their capacity and a single worker cannot
// deadlock on back-pressure.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <set>
#include <thread>

#include "core/graph.h"
#include "core/graph_internal.h"

namespace omni {

const char* overflow_name(Overflow o) {
  switch (o) {
    case Overflow::kBlock:
      return "block";
    case Overflow::kDropOldest:
      return "drop_oldest";
    case Overflow::kDropNewest:
      return "drop_newest";
  }
  return "?";
}

class Runtime;

namespace {

using Clock = std::chrono::steady_clock;

enum class CallKind { kOpen, kProcess, kClose };

struct Emit {
  enum Kind { kPacket, kBound, kClose } kind;
  int port;
  Packet packet;
  Timestamp bound;
};

struct NodeState;
struct EdgeState;

// The Context of one call. Non-reentrant nodes reuse one per node.
class Call final : public Context {
 public:
  Runtime* rt = nullptr;
  NodeState* node = nullptr;
  CallKind kind = CallKind::kProcess;
  Timestamp ts;
  std::vector<Packet> inputs;
  std::vector<Emit> emits;
  std::vector<std::pair<std::string, int64_t>> counts;
  std::vector<std::string> warnings;
  uint64_t seq = 0;
  Flow flow = Flow::kContinue;

  const std::string& node_name() const override;
  const Params& params() const override;
  Timestamp timestamp() const override { return ts; }
  const Packet& input(int port) const override;
  bool input_done(int port) const override;
  std::string input_stream(int port) const override;
  void emit(int port, Packet p) override;
  void set_bound(int port, Timestamp t) override;
  void close_output(int port) override;
  void count(std::string_view counter, int64_t delta) override {
    counts.emplace_back(std::string(counter), delta);
  }
  void warn(std::string_view message) override { warnings.emplace_back(message); }
  bool stop_requested() const override;
  int input_port(std::string_view name) const override;
  int output_port(std::string_view name) const override;
  void check_output(int port) const;
};

struct EdgeState {
  detail::ResolvedEdge def;
  std::deque<Packet> queue;
  std::deque<Packet> overflow;  // block edges only: packets waiting for room
  bool consumer_gone = false;   // consumer closed: further packets are discarded
  int64_t high_water = 0;
  int64_t dropped = 0;
};

enum class Life { kUnopened, kOpen, kClosed };

struct NodeState {
  detail::ResolvedNode def;
  int index = 0;
  int depth = 0;
  std::unique_ptr<Node> node;
  std::vector<std::vector<int>> out_edges;  // per output port
  std::vector<int> in_edge;                 // per input port, -1 if unconnected
  std::vector<Timestamp> out_next;          // per output: smallest timestamp still allowed
  std::vector<std::string> in_stream;       // "node.port" feeding each input
  Life life = Life::kUnopened;
  int running = 0;
  bool queued = false;
  bool done_requested = false;  // process() returned kDone
  Call call;                    // reused by non-reentrant nodes
  uint64_t next_seq = 0, next_commit = 0;
  std::map<uint64_t, std::unique_ptr<Call>> finished;  // reentrant calls waiting to commit
  Timestamp last_ts;                                   // last input timestamp dispatched
  // stats
  int64_t calls = 0;
  std::vector<int64_t> packets_out;
  std::vector<float> durations_us;
  double max_us = 0;
  std::map<std::string, int64_t> counters;
  std::vector<std::string> warnings;
};

struct TraceEvent {
  int node;
  int tid;
  int64_t start_us, dur_us;
  Timestamp ts;
  CallKind kind;
};

constexpr size_t kMaxDurationSamples = 1 << 16;

}  // namespace

// Shared state of one run (and of observers/pollers registered before it).
class Runtime {
 public:
  detail::ResolvedGraph graph;
  std::vector<std::unique_ptr<NodeState>> nodes;
  std::vector<EdgeState> edges;

  std::mutex mu;
  std::condition_variable cv;
  struct Ready {
    int depth;
    uint64_t order;
    int node;
    bool operator<(const Ready& o) const {
      return depth != o.depth ? depth < o.depth : order > o.order;
    }
  };
  std::priority_queue<Ready> ready;
  uint64_t ready_order = 0;
  int running_total = 0;
  int idle = 0;
  int closed_count = 0;
  uint64_t progress = 0;
  std::atomic<bool> stopping{false};
  bool finished = false;
  bool started = false;
  std::string error;  // first error; empty on success
  ErrorKind error_kind = ErrorKind::kInternal;
  std::exception_ptr error_cause;  // what the failing node threw, if a node threw
  std::vector<std::thread> threads;
  std::vector<std::function<void()>> on_stop;  // wakes pollers
  RunOptions options;
  Clock::time_point t0, t1;
  bool tracing = false;
  std::vector<TraceEvent> trace;

  void setup();
  void worker(int tid);
  void mark(NodeState& n);
  enum class Action { kNone, kOpen, kProcess, kClose };
  Action next_action(NodeState& n, Timestamp* ts);
  Timestamp edge_next(const EdgeState& e) const;
  Packet pop(EdgeState& e);
  void push(EdgeState& e, const Packet& p);
  void commit(NodeState& n, Call& c);
  void close_node(NodeState& n);
  void fail(const std::string& message, ErrorKind kind, std::exception_ptr cause = nullptr);
  void fail_call(const NodeState& n, const Call& c, const std::exception_ptr& e);
  std::string queue_report();
  std::string describe_failure(const NodeState& n, const Call& c, const std::string& what);
  void finish_trace();
};

namespace {

const std::string& Call_node_name(const Call& c) { return c.node->def.name; }

}  // namespace

const std::string& Call::node_name() const { return Call_node_name(*this); }
const Params& Call::params() const { return node->def.params; }
const Packet& Call::input(int port) const {
  if (port < 0 || port >= static_cast<int>(inputs.size())) {
    static const Packet kEmpty;
    if (port >= 0 && port < static_cast<int>(node->def.contract.inputs().size())) return kEmpty;
    throw Error("node '" + node->def.name + "': input port index " + std::to_string(port) +
                " out of range");
  }
  return inputs[port];
}
bool Call::input_done(int port) const {
  std::lock_guard<std::mutex> lock(rt->mu);
  int e = node->in_edge.at(port);
  if (e < 0) return true;
  return rt->edge_next(rt->edges[e]) == Timestamp::post_stream();
}
std::string Call::input_stream(int port) const { return node->in_stream.at(port); }
void Call::check_output(int port) const {
  if (port < 0 || port >= static_cast<int>(node->def.contract.outputs().size())) {
    throw Error("node '" + node->def.name + "': output port index " + std::to_string(port) +
                " out of range");
  }
}
void Call::emit(int port, Packet p) {
  check_output(port);
  if (p.empty()) {
    throw Error("node '" + node->def.name + "' emitted an empty packet on '" +
                node->def.contract.outputs()[port].name + "'");
  }
  if (!p.timestamp().is_range_value()) {
    throw Error("node '" + node->def.name + "' emitted a packet with invalid timestamp " +
                p.timestamp().to_string() + " on '" + node->def.contract.outputs()[port].name +
                "'");
  }
  const TypeId& want = node->def.contract.outputs()[port].type;
  if (!(want == type_id<AnyType>()) && !(p.type() == want)) {
    throw TypeError("node '" + node->def.name + "' emitted " + p.type().name + " on output '" +
                    node->def.contract.outputs()[port].name + "', which is declared as " +
                    want.name);
  }
  emits.push_back({Emit::kPacket, port, std::move(p), Timestamp()});
}
void Call::set_bound(int port, Timestamp t) {
  check_output(port);
  emits.push_back({Emit::kBound, port, Packet(), t});
}
void Call::close_output(int port) {
  check_output(port);
  emits.push_back({Emit::kClose, port, Packet(), Timestamp()});
}
bool Call::stop_requested() const { return rt->stopping.load(std::memory_order_relaxed); }
namespace {
// A descriptor's port is found by the address of its name text; other names by comparison.
int find_port(const std::vector<PortSpec>& ports, std::string_view name) {
  for (size_t i = 0; i < ports.size(); ++i)
    if (ports[i].key == name.data() && ports[i].name.size() == name.size())
      return static_cast<int>(i);
  for (size_t i = 0; i < ports.size(); ++i)
    if (ports[i].name == name) return static_cast<int>(i);
  return -1;
}
}  // namespace

int Call::input_port(std::string_view name) const {
  const auto& ins = node->def.contract.inputs();
  if (const int i = find_port(ins, name); i >= 0) return i;
  std::string known;
  for (const auto& p : ins) known += (known.empty() ? "" : ", ") + p.name;
  throw Error("node '" + node->def.name + "' (" + node->def.type + ") has no input '" +
              std::string(name) + "'; inputs: " + (known.empty() ? "none" : known));
}
int Call::output_port(std::string_view name) const {
  const auto& outs = node->def.contract.outputs();
  if (const int i = find_port(outs, name); i >= 0) return i;
  std::string known;
  for (const auto& p : outs) known += (known.empty() ? "" : ", ") + p.name;
  throw Error("node '" + node->def.name + "' (" + node->def.type + ") has no output '" +
              std::string(name) + "'; outputs: " + (known.empty() ? "none" : known));
}

void Runtime::setup() {
  const size_t n = graph.nodes.size();
  nodes.clear();
  edges.clear();
  for (size_t i = 0; i < n; ++i) {
    auto ns = std::make_unique<NodeState>();
    ns->def = graph.nodes[i];
    ns->index = static_cast<int>(i);
    ns->out_edges.resize(ns->def.contract.outputs().size());
    ns->in_edge.assign(ns->def.contract.inputs().size(), -1);
    ns->in_stream.assign(ns->def.contract.inputs().size(), "");
    ns->out_next.assign(ns->def.contract.outputs().size(), Timestamp::min());
    ns->packets_out.assign(ns->def.contract.outputs().size(), 0);
    ns->call.rt = this;
    ns->call.node = ns.get();
    ns->call.inputs.resize(ns->def.contract.inputs().size());
    nodes.push_back(std::move(ns));
  }
  for (size_t i = 0; i < graph.edges.size(); ++i) {
    EdgeState e;
    e.def = graph.edges[i];
    edges.push_back(std::move(e));
    const auto& d = graph.edges[i];
    nodes[d.from_node]->out_edges[d.from_port].push_back(static_cast<int>(i));
    nodes[d.to_node]->in_edge[d.to_port] = static_cast<int>(i);
    nodes[d.to_node]->in_stream[d.to_port] =
        nodes[d.from_node]->def.name + "." +
        nodes[d.from_node]->def.contract.outputs()[d.from_port].name;
  }
  // Depth = longest path from a source; deeper nodes are scheduled first to drain queues.
  std::vector<int> indeg(n, 0);
  for (const auto& e : graph.edges) indeg[e.to_node]++;
  std::vector<int> order;
  for (size_t i = 0; i < n; ++i)
    if (indeg[i] == 0) order.push_back(static_cast<int>(i));
  for (size_t k = 0; k < order.size(); ++k) {
    NodeState& ns = *nodes[order[k]];
    for (const auto& pe : ns.out_edges) {
      for (int ei : pe) {
        NodeState& to = *nodes[edges[ei].def.to_node];
        to.depth = std::max(to.depth, ns.depth + 1);
        if (--indeg[to.index] == 0) order.push_back(to.index);
      }
    }
  }
}

Timestamp Runtime::edge_next(const EdgeState& e) const {
  if (!e.queue.empty()) return e.queue.front().timestamp();
  if (!e.overflow.empty()) return e.overflow.front().timestamp();
  return nodes[e.def.from_node]->out_next[e.def.from_port];
}

Packet Runtime::pop(EdgeState& e) {
  Packet p = std::move(e.queue.front());
  e.queue.pop_front();
  if (!e.overflow.empty()) {
    e.queue.push_back(std::move(e.overflow.front()));
    e.overflow.pop_front();
    if (e.overflow.empty()) mark(*nodes[e.def.from_node]);
  }
  return p;
}

void Runtime::push(EdgeState& e, const Packet& p) {
  if (e.consumer_gone) return;
  const size_t cap = static_cast<size_t>(e.def.options.capacity);
  if (e.queue.size() < cap && e.overflow.empty()) {
    e.queue.push_back(p);
  } else {
    switch (e.def.options.overflow) {
      case Overflow::kBlock:
        e.overflow.push_back(p);
        break;
      case Overflow::kDropOldest:
        e.queue.pop_front();
        e.queue.push_back(p);
        e.dropped++;
        break;
      case Overflow::kDropNewest:
        e.dropped++;
        break;
    }
  }
  e.high_water = std::max<int64_t>(e.high_water, static_cast<int64_t>(e.queue.size()));
}

Runtime::Action Runtime::next_action(NodeState& n, Timestamp* ts) {
  if (stopping.load(std::memory_order_relaxed) || n.life == Life::kClosed) return Action::kNone;
  if (n.life == Life::kUnopened) return n.running ? Action::kNone : Action::kOpen;
  if (n.running && !n.def.contract.is_reentrant()) return Action::kNone;
  for (const auto& pe : n.out_edges)
    for (int ei : pe)
      if (!edges[ei].overflow.empty()) return Action::kNone;
  const bool can_close = n.running == 0 && n.finished.empty();
  if (n.done_requested) return can_close ? Action::kClose : Action::kNone;
  if (n.in_edge.empty()) return Action::kProcess;  // source
  if (n.def.policy == InputPolicy::kSync) {
    Timestamp t = Timestamp::post_stream();
    for (int ei : n.in_edge)
      if (ei >= 0) t = std::min(t, edge_next(edges[ei]));
    if (t >= Timestamp::post_stream()) return can_close ? Action::kClose : Action::kNone;
    bool any = false;
    for (int ei : n.in_edge) {
      if (ei < 0) continue;
      const EdgeState& e = edges[ei];
      if (e.queue.empty()) {
        if (edge_next(e) <= t) return Action::kNone;  // a packet at t may still come
      } else if (e.queue.front().timestamp() == t) {
        any = true;
      }
    }
    if (!any) return Action::kNone;
    *ts = t;
    return Action::kProcess;
  }
  // Immediate: the oldest packet on any input.
  Timestamp best = Timestamp::post_stream();
  bool all_done = true;
  for (int ei : n.in_edge) {
    if (ei < 0) continue;
    const EdgeState& e = edges[ei];
    if (!e.queue.empty()) best = std::min(best, e.queue.front().timestamp());
    if (edge_next(e) != Timestamp::post_stream()) all_done = false;
  }
  if (best < Timestamp::post_stream()) {
    *ts = best;
    return Action::kProcess;
  }
  return all_done && can_close ? Action::kClose : Action::kNone;
}

void Runtime::mark(NodeState& n) {
  if (n.queued) return;
  Timestamp ts;
  if (next_action(n, &ts) == Action::kNone) return;
  n.queued = true;
  ready.push({n.depth, ready_order++, n.index});
  if (idle > 0) cv.notify_one();
}

void Runtime::fail(const std::string& message, ErrorKind kind, std::exception_ptr cause) {
  if (error.empty()) {
    error = message;
    error_kind = kind;
    error_cause = std::move(cause);
  }
  if (!stopping.exchange(true)) {
    for (auto& f : on_stop) f();
  }
  while (!ready.empty()) {
    nodes[ready.top().node]->queued = false;
    ready.pop();
  }
  cv.notify_all();
}

// A node's open/process/close (or the commit of its outputs) threw: keep the exception and its
// kind, and put the one context prefix (node, type, call, timestamp) before its message.
void Runtime::fail_call(const NodeState& n, const Call& c, const std::exception_ptr& e) {
  ErrorKind kind = ErrorKind::kInternal;
  std::exception_ptr cause = e;
  std::string what;
  try {
    std::rethrow_exception(e);
  } catch (const InputError& x) {
    kind = ErrorKind::kInput;
    what = x.what();
  } catch (const ConfigError& x) {
    kind = ErrorKind::kConfig;
    what = x.what();
  } catch (const RunError& x) {  // e.g. a graph run inside a node: keep what it found
    kind = x.kind();
    if (x.cause()) cause = x.cause();
    what = x.what();
  } catch (const std::exception& x) {
    what = x.what();
  } catch (...) {
    what = "unknown exception";
  }
  fail(describe_failure(n, c, what), kind, std::move(cause));
}

std::string Runtime::describe_failure(const NodeState& n, const Call& c, const std::string& what) {
  std::string where;
  switch (c.kind) {
    case CallKind::kOpen:
      where = "in open()";
      break;
    case CallKind::kClose:
      where = "in close()";
      break;
    case CallKind::kProcess:
      where = c.ts.is_set() ? "in process() at timestamp " + c.ts.to_string()
                            : "in process() (source; last emitted timestamp " +
                                  (n.out_next.empty() || n.out_next[0] == Timestamp::min()
                                       ? std::string("none")
                                       : Timestamp(n.out_next[0].us() - 1).to_string()) +
                                  ")";
      break;
  }
  return "node '" + n.def.name + "' (" + n.def.type + ") failed " + where + ": " + what;
}

void Runtime::commit(NodeState& n, Call& c) {
  for (auto& em : c.emits) {
    Timestamp& next = n.out_next[em.port];
    const std::string& port = n.def.contract.outputs()[em.port].name;
    if (em.kind == Emit::kPacket) {
      const Timestamp t = em.packet.timestamp();
      if (t < next) {
        throw Error("emitted on '" + port + "' at " + t.to_string() +
                    ", but timestamps on a stream must increase and the stream is already at " +
                    (next == Timestamp::post_stream() ? std::string("its end (closed)")
                                                      : "bound " + next.to_string()));
      }
      next = t.next();
      n.packets_out[em.port]++;
      for (int ei : n.out_edges[em.port]) push(edges[ei], em.packet);
    } else if (em.kind == Emit::kBound) {
      if (em.bound > next) next = std::min(em.bound, Timestamp::post_stream());
    } else {
      next = Timestamp::post_stream();
    }
    for (int ei : n.out_edges[em.port]) mark(*nodes[edges[ei].def.to_node]);
  }
  for (auto& [k, v] : c.counts) n.counters[k] += v;
  for (auto& w : c.warnings) {
    if (std::find(n.warnings.begin(), n.warnings.end(), w) == n.warnings.end()) {
      n.warnings.push_back(w);
      std::fprintf(stderr, "omnipipe: warning: node '%s': %s\n", n.def.name.c_str(), w.c_str());
    }
  }
  c.emits.clear();
  c.counts.clear();
  c.warnings.clear();
}

void Runtime::close_node(NodeState& n) {
  n.life = Life::kClosed;
  closed_count++;
  for (size_t p = 0; p < n.out_edges.size(); ++p) {
    n.out_next[p] = Timestamp::post_stream();
    for (int ei : n.out_edges[p]) mark(*nodes[edges[ei].def.to_node]);
  }
  for (int ei : n.in_edge) {
    if (ei < 0) continue;
    EdgeState& e = edges[ei];
    e.consumer_gone = true;
    const bool had_overflow = !e.overflow.empty();
    e.queue.clear();
    e.overflow.clear();
    if (had_overflow) mark(*nodes[e.def.from_node]);
  }
  if (closed_count == static_cast<int>(nodes.size())) {
    finished = true;
    cv.notify_all();
  }
}

std::string Runtime::queue_report() {
  std::string s;
  for (const auto& e : edges) {
    const NodeState& from = *nodes[e.def.from_node];
    const NodeState& to = *nodes[e.def.to_node];
    s += "\n  " + from.def.name + "." + from.def.contract.outputs()[e.def.from_port].name + " -> " +
         to.def.name + "." + to.def.contract.inputs()[e.def.to_port].name + ": " +
         std::to_string(e.queue.size()) + "/" + std::to_string(e.def.options.capacity) +
         " queued (" + overflow_name(e.def.options.overflow) + ")";
    if (!e.queue.empty()) s += ", oldest " + e.queue.front().timestamp().to_string();
    if (!e.overflow.empty())
      s += ", " + std::to_string(e.overflow.size()) + " more waiting in the producer";
    Timestamp b = from.out_next[e.def.from_port];
    s += ", producer bound " + b.to_string();
    if (to.life == Life::kClosed) s += ", consumer finished";
  }
  s += "\n  node states:";
  for (const auto& n : nodes) {
    if (n->life == Life::kClosed) continue;
    s += " " + n->def.name + "=" + (n->life == Life::kUnopened ? "unopened" : "waiting");
  }
  return s;
}

void Runtime::worker(int tid) {
  std::unique_lock<std::mutex> lock(mu);
  while (true) {
    if (stopping.load(std::memory_order_relaxed) || finished) break;
    if (ready.empty()) {
      if (running_total == 0) {
        // Nothing runs and nothing can run: wait out the grace period, then report.
        const uint64_t seen = progress;
        const auto deadline = Clock::now() + options.deadlock_grace;
        idle++;
        while (!stopping && !finished && progress == seen && ready.empty() &&
               cv.wait_until(lock, deadline) != std::cv_status::timeout) {
        }
        idle--;
        if (!stopping && !finished && ready.empty() && running_total == 0 && progress == seen) {
          fail(
              "graph '" + (graph.spec.name.empty() ? std::string("graph") : graph.spec.name) +
                  "' is deadlocked: no node can run and the graph is not finished. Queue states:" +
                  queue_report() +
                  "\nA sync node is probably waiting for a stream that skipped a timestamp without "
                  "advancing its bound (Context::set_bound), while another of its inputs is full.",
              ErrorKind::kDeadlock);
        }
      } else {
        idle++;
        cv.wait(lock);
        idle--;
      }
      continue;
    }
    NodeState& n = *nodes[ready.top().node];
    ready.pop();
    n.queued = false;
    Timestamp ts;
    Action a = next_action(n, &ts);
    if (a == Action::kNone) continue;

    Call* c = &n.call;
    std::unique_ptr<Call> owned;
    if (n.running > 0) {  // a second concurrent call of a reentrant node
      owned = std::make_unique<Call>();
      owned->rt = this;
      owned->node = &n;
      owned->inputs.resize(n.in_edge.size());
      c = owned.get();
    }
    c->kind = a == Action::kOpen    ? CallKind::kOpen
              : a == Action::kClose ? CallKind::kClose
                                    : CallKind::kProcess;
    c->ts = a == Action::kProcess && !n.in_edge.empty() ? ts : Timestamp::unset();
    c->seq = n.next_seq++;
    if (a == Action::kProcess && !n.in_edge.empty()) {
      for (size_t p = 0; p < n.in_edge.size(); ++p) {
        c->inputs[p] = Packet();
        int ei = n.in_edge[p];
        if (ei < 0) continue;
        EdgeState& e = edges[ei];
        if (!e.queue.empty() && e.queue.front().timestamp() == ts) {
          c->inputs[p] = pop(e);
          if (n.def.policy == InputPolicy::kImmediate) break;
        }
      }
      n.last_ts = ts;
    }
    n.running++;
    running_total++;
    progress++;
    if (n.def.contract.is_reentrant()) mark(n);  // let another worker take the next input set
    lock.unlock();

    std::exception_ptr err;
    const auto start = Clock::now();
    try {
      if (a == Action::kOpen) {
        n.node = n.def.factory();
        n.node->open(*c);
      } else if (a == Action::kClose) {
        n.node->close(*c);
      } else {
        c->flow = n.node->process(*c);
      }
    } catch (...) {
      err = std::current_exception();
    }
    const auto end = Clock::now();
    const double us = std::chrono::duration<double, std::micro>(end - start).count();
    if (a == Action::kProcess)
      for (auto& p : c->inputs) p = Packet();

    lock.lock();
    n.running--;
    running_total--;
    progress++;
    if (a == Action::kProcess) {
      n.calls++;
      if (n.durations_us.size() < kMaxDurationSamples) {
        n.durations_us.push_back(static_cast<float>(us));
      } else {
        n.durations_us[(n.calls * 2654435761u) % kMaxDurationSamples] = static_cast<float>(us);
      }
      n.max_us = std::max(n.max_us, us);
    }
    if (tracing) {
      trace.push_back({n.index, tid,
                       std::chrono::duration_cast<std::chrono::microseconds>(start - t0).count(),
                       std::max<int64_t>(1, static_cast<int64_t>(us)), c->ts, c->kind});
    }
    if (err) {
      fail_call(n, *c, err);
      break;
    }
    if (stopping) break;
    try {
      if (owned || !n.finished.empty()) {
        // Reentrant: commit calls in dispatch order so outputs stay ordered.
        if (!owned) {
          owned = std::make_unique<Call>();
          std::swap(owned->emits, c->emits);
          std::swap(owned->counts, c->counts);
          std::swap(owned->warnings, c->warnings);
          owned->flow = c->flow;
          owned->kind = c->kind;
          owned->seq = c->seq;
        }
        const uint64_t seq = owned->seq;
        n.finished[seq] = std::move(owned);
        while (!n.finished.empty() && n.finished.begin()->first == n.next_commit) {
          Call& fc = *n.finished.begin()->second;
          commit(n, fc);
          if (fc.kind == CallKind::kProcess && fc.flow == Flow::kDone) n.done_requested = true;
          n.finished.erase(n.finished.begin());
          n.next_commit++;
        }
      } else {
        commit(n, *c);
        n.next_commit++;
        if (a == Action::kProcess && c->flow == Flow::kDone) n.done_requested = true;
      }
    } catch (...) {
      fail_call(n, *c, std::current_exception());
      break;
    }
    if (a == Action::kOpen) n.life = Life::kOpen;
    if (a == Action::kClose) {
      // Release the node's resources (files, models) now, outside the lock.
      std::unique_ptr<Node> dead = std::move(n.node);
      close_node(n);
      lock.unlock();
      dead.reset();
      lock.lock();
      continue;
    }
    mark(n);
  }
  cv.notify_all();
}

namespace {

double percentile(std::vector<float> v, double q) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

// The one input of the internal sinks below.
constexpr Input<AnyType> kSinkIn{"in"};

// Internal sink that hands packets to a callback (Graph::observe).
class CallbackSink : public Node {
 public:
  explicit CallbackSink(std::function<void(const Packet&)> cb) : cb_(std::move(cb)) {}
  Flow process(Context& ctx) override {
    cb_(ctx.input(kSinkIn));
    return Flow::kContinue;
  }

 private:
  std::function<void(const Packet&)> cb_;
};

// The shared queue between a poller sink node and the program calling next().
class PollerQueue final : public OutputPoller {
 public:
  explicit PollerQueue(size_t capacity) : capacity_(capacity) {}
  bool next(Packet& out) override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !q_.empty() || ended_; });
    if (q_.empty()) return false;
    out = std::move(q_.front());
    q_.pop_front();
    cv_.notify_all();
    return true;
  }
  // Called by the sink; waits for room unless the graph stops.
  void put(const Packet& p, const Context& ctx) {
    std::unique_lock<std::mutex> lock(mu_);
    while (q_.size() >= capacity_ && !ended_ && !ctx.stop_requested())
      cv_.wait_for(lock, std::chrono::milliseconds(20));
    if (ended_ || ctx.stop_requested()) return;
    q_.push_back(p);
    cv_.notify_all();
  }
  void end(bool discard) {
    std::lock_guard<std::mutex> lock(mu_);
    ended_ = true;
    if (discard) q_.clear();
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Packet> q_;
  size_t capacity_;
  bool ended_ = false;
};

class PollerSink : public Node {
 public:
  explicit PollerSink(std::shared_ptr<PollerQueue> q) : q_(std::move(q)) {}
  Flow process(Context& ctx) override {
    q_->put(ctx.input(kSinkIn), ctx);
    return Flow::kContinue;
  }
  void close(Context&) override { q_->end(false); }

 private:
  std::shared_ptr<PollerQueue> q_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------

struct Graph::Impl {
  std::unique_ptr<Runtime> rt = std::make_unique<Runtime>();
  std::vector<std::shared_ptr<PollerQueue>> pollers;
  bool waited = false;

  void add_sink(const std::string& stream, const std::string& label,
                std::function<std::unique_ptr<Node>()> factory, int capacity) {
    if (rt->started) throw ConfigError("observe()/poller() must be called before run()/start()");
    auto& g = rt->graph;
    auto [node, port] = detail::find_output(g, stream);
    detail::ResolvedNode rn;
    rn.name = label + "(" + stream + ")#" + std::to_string(g.nodes.size());
    rn.type = label;
    rn.contract = Contract().input(kSinkIn).policy(InputPolicy::kImmediate);
    rn.policy = InputPolicy::kImmediate;
    rn.factory = std::move(factory);
    rn.internal = true;
    g.nodes.push_back(std::move(rn));
    g.edges.push_back({node, port, static_cast<int>(g.nodes.size()) - 1, 0,
                       EdgeOptions{std::max(1, capacity), Overflow::kBlock}});
  }
};

struct detail::GraphAccess {
  static std::unique_ptr<Graph> make(detail::ResolvedGraph g) {
    std::unique_ptr<Graph> out(new Graph());
    out->impl_->rt->graph = std::move(g);
    return out;
  }
};

std::unique_ptr<Graph> make_graph(detail::ResolvedGraph g) {
  return detail::GraphAccess::make(std::move(g));
}

Graph::Graph() : impl_(std::make_unique<Impl>()) {}

Graph::~Graph() {
  Runtime& rt = *impl_->rt;
  if (rt.started && !impl_->waited) {
    cancel();
    try {
      wait();
    } catch (...) {
    }
  }
}

void Graph::observe(const std::string& stream, std::function<void(const Packet&)> callback) {
  auto cb = std::make_shared<std::function<void(const Packet&)>>(std::move(callback));
  impl_->add_sink(
      stream, "observe", [cb] { return std::make_unique<CallbackSink>(*cb); }, 8);
}

std::shared_ptr<OutputPoller> Graph::poller(const std::string& stream, int capacity) {
  auto q = std::make_shared<PollerQueue>(static_cast<size_t>(std::max(1, capacity)));
  impl_->add_sink(
      stream, "poller", [q] { return std::make_unique<PollerSink>(q); }, 8);
  impl_->pollers.push_back(q);
  return q;
}

void Graph::start(const RunOptions& options) {
  Runtime& rt = *impl_->rt;
  if (rt.started) throw RunError("graph '" + rt.graph.spec.name + "' was already started");
  rt.started = true;
  rt.options = options;
  rt.tracing = !options.trace_path.empty();
  rt.setup();
  for (auto& q : impl_->pollers) {
    std::weak_ptr<PollerQueue> w = q;
    rt.on_stop.push_back([w] {
      if (auto p = w.lock()) p->end(true);
    });
  }
  int workers = options.workers;
  if (workers <= 0) workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  rt.t0 = Clock::now();
  {
    std::lock_guard<std::mutex> lock(rt.mu);
    if (rt.nodes.empty()) rt.finished = true;
    for (auto& n : rt.nodes) rt.mark(*n);
  }
  for (int i = 0; i < workers; ++i) rt.threads.emplace_back([&rt, i] { rt.worker(i); });
}

void Graph::wait() {
  Runtime& rt = *impl_->rt;
  if (!rt.started) throw RunError("wait(): graph was not started");
  if (!impl_->waited) {
    for (auto& t : rt.threads) t.join();
    rt.threads.clear();
    impl_->waited = true;
    rt.t1 = Clock::now();
    for (auto& q : impl_->pollers) q->end(!rt.error.empty());
    if (rt.tracing) rt.finish_trace();
    // Release node instances on the caller's thread once every worker is gone.
    for (auto& n : rt.nodes) n->node.reset();
  }
  if (!rt.error.empty()) throw RunError(rt.error, rt.error_kind, rt.error_cause);
}

void Graph::run(const RunOptions& options) {
  start(options);
  wait();
}

void Graph::cancel() {
  Runtime& rt = *impl_->rt;
  std::lock_guard<std::mutex> lock(rt.mu);
  if (rt.finished || !rt.error.empty()) return;
  rt.fail("graph '" + (rt.graph.spec.name.empty() ? std::string("graph") : rt.graph.spec.name) +
              "' was cancelled",
          ErrorKind::kCancelled);
}

const GraphSpec& Graph::spec() const { return impl_->rt->graph.spec; }

void Runtime::finish_trace() {
  nlohmann::json events = nlohmann::json::array();
  events.push_back({{"name", "process_name"},
                    {"ph", "M"},
                    {"pid", 1},
                    {"args", {{"name", "omnipipe " + graph.spec.name}}}});
  for (const auto& ev : trace) {
    const NodeState& n = *nodes[ev.node];
    nlohmann::json args = {{"type", n.def.type}};
    if (ev.ts.is_set()) args["timestamp_us"] = ev.ts.us();
    const char* kind = ev.kind == CallKind::kOpen    ? "open"
                       : ev.kind == CallKind::kClose ? "close"
                                                     : "process";
    events.push_back({{"name", n.def.name},
                      {"cat", kind},
                      {"ph", "X"},
                      {"ts", ev.start_us},
                      {"dur", ev.dur_us},
                      {"pid", 1},
                      {"tid", ev.tid},
                      {"args", args}});
  }
  std::ofstream f(options.trace_path);
  if (!f) {
    std::fprintf(stderr, "omnipipe: cannot write trace file %s\n", options.trace_path.c_str());
    return;
  }
  f << nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump() << "\n";
}

GraphStats Graph::stats() const {
  Runtime& rt = *impl_->rt;
  GraphStats s;
  std::lock_guard<std::mutex> lock(rt.mu);
  if (!rt.started) {
    for (const auto& n : rt.graph.nodes) {
      if (n.internal) continue;
      NodeStats ns;
      ns.name = n.name;
      ns.type = n.type;
      for (const auto& o : n.contract.outputs()) ns.packets_out[o.name] = 0;
      for (const auto& i : n.contract.inputs()) ns.queue_high_water[i.name] = 0;
      s.nodes.push_back(std::move(ns));
    }
    return s;
  }
  for (const auto& np : rt.nodes) {
    const NodeState& n = *np;
    if (n.def.internal) continue;
    NodeStats ns;
    ns.name = n.def.name;
    ns.type = n.def.type;
    for (size_t p = 0; p < n.packets_out.size(); ++p)
      ns.packets_out[n.def.contract.outputs()[p].name] = n.packets_out[p];
    ns.calls = n.calls;
    ns.p50_us = percentile(n.durations_us, 0.5);
    ns.p99_us = percentile(n.durations_us, 0.99);
    ns.max_us = n.max_us;
    for (size_t p = 0; p < n.in_edge.size(); ++p) {
      int64_t hw = 0;
      if (n.in_edge[p] >= 0) {
        hw = rt.edges[n.in_edge[p]].high_water;
        ns.dropped += rt.edges[n.in_edge[p]].dropped;
      }
      ns.queue_high_water[n.def.contract.inputs()[p].name] = hw;
    }
    ns.counters = n.counters;
    ns.warnings = n.warnings;
    s.nodes.push_back(std::move(ns));
  }
  const auto end = impl_->waited ? rt.t1 : Clock::now();
  s.wall_s = std::chrono::duration<double>(end - rt.t0).count();
  return s;
}

std::string GraphStats::to_json() const {
  nlohmann::json j;
  j["nodes"] = nlohmann::json::array();
  for (const auto& n : nodes) {
    nlohmann::json o;
    o["name"] = n.name;
    o["type"] = n.type;
    o["outputs"] = nlohmann::json::object();
    for (const auto& [port, count] : n.packets_out) o["outputs"][port] = {{"packets", count}};
    o["calls"] = n.calls;
    auto r3 = [](double v) { return std::round(v * 1000.0) / 1000.0; };
    o["process_us"] = {{"p50", r3(n.p50_us)}, {"p99", r3(n.p99_us)}, {"max", r3(n.max_us)}};
    o["dropped"] = n.dropped;
    o["queue_high_water"] = n.queue_high_water;
    o["counters"] = n.counters;
    o["warnings"] = n.warnings;
    j["nodes"].push_back(std::move(o));
  }
  j["wall_s"] = wall_s;
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Graph::to_dot() const {
  const auto& g = impl_->rt->graph;
  auto esc = [](const std::string& s) {
    std::string o;
    for (char c : s) {
      if (c == '"' || c == '\\') o += '\\';
      o += c;
    }
    return o;
  };
  std::string s = "digraph \"" + esc(g.spec.name.empty() ? "graph" : g.spec.name) + "\" {\n";
  s += "  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n";
  s += "  edge [fontname=\"Helvetica\", fontsize=10];\n";
  for (const auto& n : g.nodes) {
    if (n.internal) continue;
    std::string label = n.name + "\\n" + esc(n.type);
    if (n.policy != InputPolicy::kSync) label += "\\n(" + std::string(policy_name(n.policy)) + ")";
    s += "  \"" + esc(n.name) + "\" [label=\"" + label + "\"" +
         (n.contract.is_source() ? ", shape=box, style=\"rounded,bold\"" : "") + "];\n";
  }
  for (const auto& e : g.edges) {
    const auto& from = g.nodes[e.from_node];
    const auto& to = g.nodes[e.to_node];
    if (to.internal) continue;
    const auto& op = from.contract.outputs()[e.from_port];
    std::string label =
        op.name + " -> " + to.contract.inputs()[e.to_port].name + "\\n" + esc(op.type.name);
    if (e.options.capacity != EdgeOptions{}.capacity || e.options.overflow != Overflow::kBlock)
      label += "\\n[" + std::to_string(e.options.capacity) + ", " +
               overflow_name(e.options.overflow) + "]";
    s += "  \"" + esc(from.name) + "\" -> \"" + esc(to.name) + "\" [label=\"" + label + "\"];\n";
  }
  for (const auto& o : g.spec.outputs) {
    auto [node, port] = split_stream(o);
    s += "  \"out:" + esc(o) + "\" [shape=plaintext, label=\"" + esc(o) + "\"];\n";
    s += "  \"" + esc(node) + "\" -> \"out:" + esc(o) + "\" [style=dashed];\n";
  }
  return s + "}\n";
}

}  // namespace omni
