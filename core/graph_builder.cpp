// GraphBuilder: collects a GraphSpec and validates it (types, params, wiring, cycles) into a
// runnable Graph. Every ConfigError names the node/ports involved and, for YAML, file:line:col.
#include <algorithm>
#include <set>

#include "core/graph.h"
#include "core/graph_internal.h"

namespace omni {

std::pair<std::string, std::string> split_stream(const std::string& stream) {
  const size_t dot = stream.rfind('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == stream.size()) {
    throw ConfigError("'" + stream + "' is not a stream name; expected NODE.PORT");
  }
  return {stream.substr(0, dot), stream.substr(dot + 1)};
}

struct GraphBuilder::Impl {
  GraphSpec spec;
  std::map<std::string, NodeType> local_types;  // node name -> type added as a C++ class
};

namespace {

std::string at(const std::string& where) { return where.empty() ? "" : where + ": "; }

std::string port_list(const std::vector<PortSpec>& ports) {
  if (ports.empty()) return "none";
  std::string s;
  for (const auto& p : ports) s += (s.empty() ? "" : ", ") + p.name + " (" + p.type.name + ")";
  return s;
}

bool types_match(const TypeId& a, const TypeId& b) {
  return a == b || a == type_id<AnyType>() || b == type_id<AnyType>();
}

// Converts a value given in C++ or YAML to the declared type where that is lossless.
ParamValue coerce(const ParamSpec& spec, const ParamValue& v, const std::string& ctx) {
  const ParamType have = param_type_of(v);
  if (have == spec.type) return v;
  if (spec.type == ParamType::kDouble && have == ParamType::kInt)
    return static_cast<double>(std::get<int64_t>(v));
  if (have == ParamType::kString) {
    try {
      return parse_param(spec.type, std::get<std::string>(v));
    } catch (const ConfigError& e) {
      throw ConfigError(ctx + "parameter '" + spec.name + "' expects " +
                        param_type_name(spec.type) + ", got " + param_to_string(v));
    }
  }
  if (spec.type == ParamType::kStringList && have == ParamType::kString)
    return StringList{std::get<std::string>(v)};
  throw ConfigError(ctx + "parameter '" + spec.name + "' expects " + param_type_name(spec.type) +
                    ", got " + param_type_name(have) + " " + param_to_string(v));
}

}  // namespace

namespace detail {

std::string known_params(const Contract& c) {
  if (c.params().empty()) return "it takes no parameters";
  std::string s = "known: ";
  bool first = true;
  for (const auto& p : c.params()) {
    s += (first ? "" : ", ") + p.name + " (" + param_type_name(p.type) + ")";
    first = false;
  }
  return s;
}
std::pair<int, int> find_output(const ResolvedGraph& g, const std::string& stream) {
  auto [node, port] = split_stream(stream);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i].name != node) continue;
    int p = g.nodes[i].contract.output_index(port);
    if (p < 0) {
      throw ConfigError("node '" + node + "' (" + g.nodes[i].type + ") has no output '" + port +
                        "'; outputs: " + port_list(g.nodes[i].contract.outputs()));
    }
    return {static_cast<int>(i), p};
  }
  throw ConfigError("stream '" + stream + "' names unknown node '" + node + "'");
}
}  // namespace detail

GraphBuilder::GraphBuilder(std::string name) : impl_(std::make_shared<Impl>()) {
  impl_->spec.name = std::move(name);
}
GraphBuilder::GraphBuilder(GraphSpec spec) : impl_(std::make_shared<Impl>()) {
  impl_->spec = std::move(spec);
}

const GraphSpec& GraphBuilder::spec() const { return impl_->spec; }

GraphBuilder& GraphBuilder::add(const std::string& name, const std::string& type,
                                std::map<std::string, ParamValue> params) {
  impl_->spec.nodes.push_back({name, type, std::move(params), std::nullopt, ""});
  return *this;
}

GraphBuilder& GraphBuilder::add_type(const std::string& name, NodeType type,
                                     std::map<std::string, ParamValue> params) {
  impl_->spec.nodes.push_back({name, type.name, std::move(params), std::nullopt, ""});
  impl_->local_types[name] = std::move(type);
  return *this;
}

GraphBuilder& GraphBuilder::add_instance(const std::string& name, std::string type,
                                         Contract contract,
                                         std::function<std::unique_ptr<Node>()> factory,
                                         std::map<std::string, ParamValue> params) {
  return add_type(name, NodeType{std::move(type), std::move(contract), std::move(factory)},
                  std::move(params));
}

GraphBuilder& GraphBuilder::policy(const std::string& node, InputPolicy p) {
  for (auto& n : impl_->spec.nodes) {
    if (n.name == node) {
      n.policy = p;
      return *this;
    }
  }
  throw ConfigError("policy(): unknown node '" + node + "'");
}

GraphBuilder& GraphBuilder::connect(const std::string& from, const std::string& to, EdgeOptions o) {
  impl_->spec.edges.push_back({from, to, o, ""});
  return *this;
}

GraphBuilder& GraphBuilder::output(const std::string& stream) {
  impl_->spec.outputs.push_back(stream);
  return *this;
}

std::unique_ptr<Graph> GraphBuilder::build() const {
  static const Registry empty;
  return build(empty);
}

// Defined in graph.cpp: wraps a validated graph.
std::unique_ptr<Graph> make_graph(detail::ResolvedGraph g);

std::unique_ptr<Graph> GraphBuilder::build(const Registry& registry) const {
  detail::ResolvedGraph g;
  g.spec = impl_->spec;
  const GraphSpec& spec = g.spec;
  const std::string gname = spec.name.empty() ? "graph" : spec.name;

  std::map<std::string, int> index;
  for (const auto& ns : spec.nodes) {
    const std::string w = at(ns.where);
    if (ns.name.empty()) throw ConfigError(w + "a node in graph '" + gname + "' has no name");
    if (ns.name.find('.') != std::string::npos)
      throw ConfigError(w + "node name '" + ns.name + "' must not contain '.'");
    if (index.count(ns.name))
      throw ConfigError(w + "node name '" + ns.name + "' is used twice in graph '" + gname + "'");
    const NodeType* type = nullptr;
    auto local = impl_->local_types.find(ns.name);
    if (local != impl_->local_types.end()) {
      type = &local->second;
    } else {
      try {
        type = &registry.get(ns.type);
      } catch (const ConfigError& e) {
        throw ConfigError(w + "node '" + ns.name + "': " + e.what());
      }
    }
    detail::ResolvedNode rn;
    rn.name = ns.name;
    rn.type = ns.type;
    rn.where = ns.where;
    rn.contract = type->contract;
    rn.factory = type->factory;
    rn.policy = ns.policy.value_or(type->contract.policy());
    const std::string ctx = w + "node '" + ns.name + "' (" + ns.type + "): ";
    for (const auto& [k, v] : ns.params) {
      const ParamSpec* ps = rn.contract.find_param(k);
      if (!ps)
        throw ConfigError(ctx + "unknown parameter '" + k + "'; " +
                          detail::known_params(rn.contract));
    }
    for (const auto& ps : rn.contract.params()) {
      auto it = ns.params.find(ps.name);
      rn.params.set(ps.name,
                    it == ns.params.end() ? ps.default_value : coerce(ps, it->second, ctx));
    }
    index[ns.name] = static_cast<int>(g.nodes.size());
    g.nodes.push_back(std::move(rn));
  }

  auto resolve = [&](const std::string& stream, bool output, const std::string& w) {
    std::pair<std::string, std::string> np;
    try {
      np = split_stream(stream);
    } catch (const ConfigError& e) {
      throw ConfigError(w + e.what());
    }
    auto it = index.find(np.first);
    if (it == index.end()) {
      std::string known;
      for (const auto& n : g.nodes) known += (known.empty() ? "" : ", ") + n.name;
      throw ConfigError(w + "edge endpoint '" + stream + "' names unknown node '" + np.first +
                        "'; nodes: " + known);
    }
    const auto& n = g.nodes[it->second];
    int p = output ? n.contract.output_index(np.second) : n.contract.input_index(np.second);
    if (p < 0) {
      throw ConfigError(w + "node '" + n.name + "' (" + n.type + ") has no " +
                        (output ? "output" : "input") + " port '" + np.second + "'; " +
                        (output ? "outputs: " + port_list(n.contract.outputs())
                                : "inputs: " + port_list(n.contract.inputs())));
    }
    return std::pair<int, int>{it->second, p};
  };

  std::map<std::pair<int, int>, std::string> connected_inputs;
  for (const auto& es : spec.edges) {
    const std::string w = at(es.where);
    auto [fn, fp] = resolve(es.from, true, w);
    auto [tn, tp] = resolve(es.to, false, w);
    const PortSpec& out = g.nodes[fn].contract.outputs()[fp];
    const PortSpec& in = g.nodes[tn].contract.inputs()[tp];
    if (!types_match(out.type, in.type)) {
      throw ConfigError(w + "cannot connect " + es.from + " (" + out.type.name + ") to " + es.to +
                        " (" + in.type.name + "): the port types differ");
    }
    if (es.options.capacity < 1) {
      throw ConfigError(w + "edge " + es.from + " -> " + es.to + ": capacity must be >= 1, got " +
                        std::to_string(es.options.capacity));
    }
    auto key = std::make_pair(tn, tp);
    if (connected_inputs.count(key)) {
      throw ConfigError(w + "input " + es.to + " is connected twice (from " +
                        connected_inputs[key] + " and " + es.from + ")");
    }
    connected_inputs[key] = es.from;
    g.edges.push_back({fn, fp, tn, tp, es.options});
  }

  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const auto& n = g.nodes[i];
    const auto& ins = n.contract.inputs();
    for (size_t p = 0; p < ins.size(); ++p) {
      if (!ins[p].optional && !connected_inputs.count({static_cast<int>(i), static_cast<int>(p)})) {
        throw ConfigError(at(n.where) + "required input " + n.name + "." + ins[p].name + " (" +
                          ins[p].type.name + ") of node '" + n.name + "' (" + n.type +
                          ") is not connected");
      }
    }
  }

  // Cycle check (Kahn); the nodes left over are on or behind a cycle.
  {
    std::vector<int> indeg(g.nodes.size(), 0);
    std::vector<std::vector<int>> succ(g.nodes.size());
    for (const auto& e : g.edges) {
      succ[e.from_node].push_back(e.to_node);
      indeg[e.to_node]++;
    }
    std::vector<int> todo;
    for (size_t i = 0; i < indeg.size(); ++i)
      if (indeg[i] == 0) todo.push_back(static_cast<int>(i));
    size_t seen = 0;
    while (!todo.empty()) {
      int n = todo.back();
      todo.pop_back();
      ++seen;
      for (int s : succ[n])
        if (--indeg[s] == 0) todo.push_back(s);
    }
    if (seen != g.nodes.size()) {
      std::string names;
      for (size_t i = 0; i < indeg.size(); ++i)
        if (indeg[i] > 0) names += (names.empty() ? "" : ", ") + g.nodes[i].name;
      throw ConfigError("graph '" + gname + "' has a cycle through nodes: " + names +
                        " (graphs must be acyclic)");
    }
  }

  for (const auto& o : spec.outputs) detail::find_output(g, o);
  return make_graph(std::move(g));
}

}  // namespace omni
