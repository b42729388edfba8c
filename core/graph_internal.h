// Internal to core/: the resolved graph that GraphBuilder::build() produces and Graph runs.
#pragma once

#include <string>
#include <vector>

#include "core/graph.h"

namespace omni::detail {

// One node after validation: its type, contract, resolved params and wiring.
struct ResolvedNode {
  std::string name, type, where;
  Contract contract;
  Params params;
  InputPolicy policy = InputPolicy::kSync;
  std::function<std::unique_ptr<Node>()> factory;
  bool internal = false;  // hidden observer/poller sinks (not in stats or DOT)
};

struct ResolvedEdge {
  int from_node = -1, from_port = -1, to_node = -1, to_port = -1;
  EdgeOptions options;
};

struct ResolvedGraph {
  GraphSpec spec;
  std::vector<ResolvedNode> nodes;
  std::vector<ResolvedEdge> edges;
};

// Resolves "node.port" to (node index, port index) for an output; throws ConfigError.
std::pair<int, int> find_output(const ResolvedGraph& g, const std::string& stream);
// "known: a (int64), b (string)" or "it takes no parameters" (for config error messages).
std::string known_params(const Contract& c);

}  // namespace omni::detail
