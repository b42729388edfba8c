// Building and running graphs: the C++ builder API (primary interface for researchers), the
// runnable Graph, observation (callbacks and pollers), statistics, traces and DOT output.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/node.h"
#include "core/registry.h"

namespace omni {

enum class Overflow { kBlock, kDropOldest, kDropNewest };
const char* overflow_name(Overflow o);

struct EdgeOptions {
  int capacity = 8;
  Overflow overflow = Overflow::kBlock;
};

// Declarative description of a graph; what YAML loads into and what the builder fills.
struct GraphSpec {
  struct NodeSpec {
    std::string name;
    std::string type;                          // registered type name
    std::map<std::string, ParamValue> params;  // only the ones set explicitly
    std::optional<InputPolicy> policy;
    std::string where;  // "file.yaml:12:5" for error messages, empty when built in C++
  };
  struct EdgeSpec {
    std::string from;  // "node.port"
    std::string to;    // "node.port"
    EdgeOptions options;
    std::string where;
  };
  std::string name;
  std::vector<NodeSpec> nodes;
  std::vector<EdgeSpec> edges;
  std::vector<std::string> outputs;  // "node.port" streams a program can observe
};

// Statistics of one node after (or during) a run.
struct NodeStats {
  std::string name, type;
  std::map<std::string, int64_t> packets_out;  // per output port
  int64_t calls = 0;
  double p50_us = 0, p99_us = 0, max_us = 0;        // process() time
  int64_t dropped = 0;                              // drops on this node's input edges
  std::map<std::string, int64_t> queue_high_water;  // per input port
  std::map<std::string, int64_t> counters;          // Context::count()
  std::vector<std::string> warnings;
};
struct GraphStats {
  std::vector<NodeStats> nodes;
  double wall_s = 0;
  std::string to_json() const;  // the --stats format of DESIGN.md section 2a
};

struct RunOptions {
  int workers = 0;                                 // 0: hardware concurrency
  std::string trace_path;                          // Chrome-trace JSON written here when non-empty
  std::chrono::milliseconds deadlock_grace{2000};  // all-blocked time before reporting deadlock
};

// Parses "node.port" (node names may contain '/', ports may not contain '.'); throws ConfigError.
std::pair<std::string, std::string> split_stream(const std::string& stream);

class Graph;
namespace detail {
struct GraphAccess;
}

// C++ builder. Nodes are added by registered type name or directly as a C++ class.
class GraphBuilder {
 public:
  explicit GraphBuilder(std::string name = "graph");
  // Starts from a declarative spec (what load_graph uses; keeps the file:line of each entry).
  explicit GraphBuilder(GraphSpec spec);
  // By registered type; params are checked against the contract in build().
  GraphBuilder& add(const std::string& name, const std::string& type,
                    std::map<std::string, ParamValue> params = {});
  // By C++ class with `static Contract contract()` (no registry needed).
  template <class N>
  GraphBuilder& add(const std::string& name, std::map<std::string, ParamValue> params = {}) {
    return add_type(name,
                    NodeType{demangle(typeid(N).name()), N::contract(),
                             [] { return std::unique_ptr<Node>(new N()); }},
                    std::move(params));
  }
  // A node instance made by the caller (for tests and programs that hold state in a node).
  GraphBuilder& add_instance(const std::string& name, std::string type, Contract contract,
                             std::function<std::unique_ptr<Node>()> factory,
                             std::map<std::string, ParamValue> params = {});
  GraphBuilder& policy(const std::string& node, InputPolicy p);
  GraphBuilder& connect(const std::string& from, const std::string& to, EdgeOptions o = {});
  GraphBuilder& output(const std::string& stream);
  // Validates everything (types, params, cycles, required inputs) and throws ConfigError.
  std::unique_ptr<Graph> build(const Registry& registry) const;
  std::unique_ptr<Graph> build() const;  // only for graphs whose nodes were added as classes

  GraphBuilder& add_type(const std::string& name, NodeType type,
                         std::map<std::string, ParamValue> params);
  const GraphSpec& spec() const;

 private:
  friend class Graph;
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Loads a YAML graph (DESIGN.md section 2a), resolving subgraphs relative to the file.
// `overrides` are "NODE.PARAM=VALUE" strings (--set). Errors carry file:line:column.
// Limits (a ConfigError when exceeded, checked before the YAML is parsed or the nodes built): each
// graph file (or string) at most kMaxGraphFileBytes, at most kMaxGraphNodes nodes in the flattened
// graph, at most kMaxGraphFiles graph files read for one graph (subgraphs included).
inline constexpr size_t kMaxGraphFileBytes = size_t{4} << 20;
inline constexpr size_t kMaxGraphNodes = 10000;
inline constexpr size_t kMaxGraphFiles = 1000;
std::unique_ptr<Graph> load_graph(const std::string& yaml_path, const Registry& registry,
                                  const std::vector<std::string>& overrides = {});
std::unique_ptr<Graph> load_graph_string(const std::string& yaml_text, const Registry& registry,
                                         const std::vector<std::string>& overrides = {},
                                         const std::string& base_dir = ".");

class OutputPoller;

class Graph {
 public:
  ~Graph();
  // Observation; call before run()/start(). Callbacks run on worker threads, in timestamp order.
  void observe(const std::string& stream, std::function<void(const Packet&)> callback);
  // Pull-style: the returned poller yields the stream's packets; next() returns false at the end.
  std::shared_ptr<OutputPoller> poller(const std::string& stream, int capacity = 64);

  // Blocking run to completion. On failure throws RunError: what() is the node, its type, the call
  // and timestamp, then the node's message; kind() tells bad input (ErrorKind::kInput) from a bug
  // (kInternal), a cancellation (kCancelled), ...; cause() is the exception the node threw.
  void run(const RunOptions& options = {});
  void start(const RunOptions& options = {});
  void wait();  // rethrows like run()
  // Safe from any thread, including callbacks; wait() then throws RunError (kind kCancelled). Not
  // async-signal-safe (it locks): from a signal handler use CancelOnSignal (core/interrupt.h).
  void cancel();

  GraphStats stats() const;
  std::string to_dot() const;
  const GraphSpec& spec() const;

 private:
  friend class GraphBuilder;
  friend struct detail::GraphAccess;
  Graph();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class OutputPoller {
 public:
  virtual ~OutputPoller() = default;
  // Blocks until a packet or the end of the stream; false at the end (or after an error).
  virtual bool next(Packet& out) = 0;
};

}  // namespace omni
