// YAML graph files (DESIGN.md section 2a): parsing with file:line:column errors, subgraphs
// (a node whose type is a path to another graph file) and --set NODE.PARAM=VALUE overrides.
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/graph.h"
#include "core/graph_internal.h"

namespace omni {
namespace {

namespace fs = std::filesystem;

// What one load_graph call has read so far, against the limits in graph.h.
struct LoadState {
  std::vector<std::string> stack;  // canonical paths of the files being loaded (cycle check)
  size_t files = 0;
  size_t nodes = 0;
};

// Reads a graph file, refusing it once it outgrows kMaxGraphFileBytes (a FIFO or a device such as
// /dev/zero never ends, so its size is not known beforehand).
std::string read_graph_file(std::ifstream& f, const std::string& shown) {
  std::string text;
  char buf[1 << 16];
  while (f.read(buf, sizeof(buf)) || f.gcount() > 0) {
    text.append(buf, static_cast<size_t>(f.gcount()));
    if (text.size() > kMaxGraphFileBytes)
      throw ConfigError("graph file '" + shown + "' is larger than the limit of " +
                        std::to_string(kMaxGraphFileBytes) + " bytes");
  }
  if (f.bad()) throw ConfigError("cannot read graph file '" + shown + "'");
  return text;
}

struct Loaded {
  GraphSpec spec;
  std::map<std::string, std::vector<std::string>> inputs;  // exposed name -> inner "node.port"s
  std::map<std::string, std::string> outputs;              // exposed name -> inner "node.port"
};

std::string mark_str(const std::string& file, const YAML::Mark& m) {
  if (m.line < 0) return file;
  return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

[[noreturn]] void fail_at(const std::string& file, const YAML::Node& n, const std::string& msg) {
  throw ConfigError(mark_str(file, n.Mark()) + ": " + msg);
}

void check_keys(const std::string& file, const YAML::Node& map, const std::string& what,
                const std::set<std::string>& allowed) {
  for (const auto& kv : map) {
    const std::string k = kv.first.as<std::string>();
    if (!allowed.count(k)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail_at(file, kv.first, "unknown key '" + k + "' in " + what + "; expected one of: " + list);
    }
  }
}

std::string scalar(const std::string& file, const YAML::Node& n, const std::string& what) {
  if (!n || !n.IsScalar()) fail_at(file, n, what + " must be a string");
  return n.Scalar();
}

bool is_subgraph_type(const std::string& type) {
  auto ends = [&](const char* suf) {
    std::string s(suf);
    return type.size() >= s.size() && type.compare(type.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".yaml") || ends(".yml");
}

ParamValue yaml_param(const std::string& file, const YAML::Node& v, const ParamSpec* spec,
                      const std::string& ctx) {
  if (v.IsSequence()) {
    StringList l;
    for (const auto& item : v) l.push_back(scalar(file, item, "a list item"));
    if (spec && spec->type != ParamType::kStringList) {
      fail_at(file, v,
              ctx + "parameter '" + spec->name + "' expects " + param_type_name(spec->type) +
                  ", got a list");
    }
    return l;
  }
  if (!v.IsScalar()) fail_at(file, v, ctx + "parameter values must be scalars or lists");
  if (!spec) return v.Scalar();
  try {
    return parse_param(spec->type, v.Scalar());
  } catch (const ConfigError&) {
    fail_at(file, v,
            ctx + "parameter '" + spec->name + "' expects " + param_type_name(spec->type) +
                ", got '" + v.Scalar() + "'");
  }
}

Loaded load_yaml(const YAML::Node& doc_in, const std::string& file, const fs::path& base_dir,
                 const Registry& registry, const std::string& prefix, LoadState& st);

Loaded load_file(const fs::path& path, const std::string& shown, const Registry& registry,
                 const std::string& prefix, LoadState& st) {
  std::error_code ec;
  const std::string canon = fs::weakly_canonical(path, ec).string();
  if (ec) throw ConfigError("cannot open graph file '" + shown + "': " + ec.message());
  for (const auto& s : st.stack) {
    if (s == canon) throw ConfigError(shown + ": subgraph file includes itself (" + canon + ")");
  }
  if (++st.files > kMaxGraphFiles)
    throw ConfigError(shown + ": the graph reads more than " + std::to_string(kMaxGraphFiles) +
                      " graph files (subgraphs included)");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ConfigError("cannot open graph file '" + shown + "'");
  const std::string text = read_graph_file(f, shown);
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(mark_str(shown, e.mark) + ": YAML syntax error: " + e.msg);
  }
  st.stack.push_back(canon);
  Loaded l;
  try {
    l = load_yaml(doc, shown, path.parent_path(), registry, prefix, st);
  } catch (const YAML::Exception& e) {
    throw ConfigError(mark_str(shown, e.mark) + ": " + e.msg);
  }
  st.stack.pop_back();
  return l;
}

Loaded load_yaml(const YAML::Node& doc_in, const std::string& file, const fs::path& base_dir,
                 const Registry& registry, const std::string& prefix, LoadState& st) {
  Loaded out;
  if (!doc_in || doc_in.IsNull()) throw ConfigError(file + ": the graph file is empty");
  if (!doc_in.IsMap()) fail_at(file, doc_in, "expected a map with a 'graph:' key");
  YAML::Node g = doc_in["graph"] ? doc_in["graph"] : doc_in;
  if (doc_in["graph"]) check_keys(file, doc_in, "the top level", {"graph"});
  if (!g.IsMap()) fail_at(file, g, "'graph' must be a map with 'nodes' and 'edges'");
  check_keys(file, g, "graph", {"name", "nodes", "edges", "outputs", "inputs"});
  out.spec.name = g["name"] ? scalar(file, g["name"], "graph name") : "graph";
  if (!g["nodes"] || !g["nodes"].IsSequence())
    fail_at(file, g["nodes"] ? g["nodes"] : g, "the graph needs a 'nodes:' list");
  if (g["nodes"].size() > kMaxGraphNodes)
    fail_at(file, g["nodes"],
            "the graph has " + std::to_string(g["nodes"].size()) +
                " nodes, more than the limit of " + std::to_string(kMaxGraphNodes));

  std::map<std::string, Loaded> subgraphs;  // by (unprefixed) node name
  std::set<std::string> names;
  for (const auto& n : g["nodes"]) {
    if (!n.IsMap()) fail_at(file, n, "each node must be a map with 'name' and 'type'");
    check_keys(file, n, "a node", {"name", "type", "params", "policy"});
    if (!n["name"]) fail_at(file, n, "node without a 'name'");
    if (!n["type"]) fail_at(file, n, "node without a 'type'");
    const std::string name = scalar(file, n["name"], "node name");
    const std::string type = scalar(file, n["type"], "node type");
    const std::string where = mark_str(file, n.Mark());
    if (name.find('.') != std::string::npos)
      fail_at(file, n["name"], "node name '" + name + "' must not contain '.'");
    if (!names.insert(name).second)
      fail_at(file, n["name"], "node name '" + name + "' is used twice");
    const YAML::Node params = n["params"];
    if (params && !params.IsMap() && !params.IsNull())
      fail_at(file, params, "'params' must be a map");

    if (is_subgraph_type(type)) {
      fs::path p = fs::path(type).is_absolute() ? fs::path(type) : base_dir / type;
      if (n["policy"]) fail_at(file, n["policy"], "a subgraph node cannot have a policy");
      Loaded sub;
      try {
        sub = load_file(p, p.string(), registry, prefix + name + "/", st);
      } catch (const ConfigError& e) {
        throw ConfigError(where + ": in subgraph '" + name + "': " + e.what());
      }
      // params of a subgraph node: {inner_node.param: value}
      if (params && params.IsMap()) {
        for (const auto& kv : params) {
          const std::string key = kv.first.as<std::string>();
          const size_t dot = key.rfind('.');
          if (dot == std::string::npos)
            fail_at(file, kv.first,
                    "parameters of subgraph node '" + name + "' are written INNER_NODE.PARAM");
          const std::string inner = prefix + name + "/" + key.substr(0, dot);
          const std::string pname = key.substr(dot + 1);
          bool found = false;
          for (auto& ns : sub.spec.nodes) {
            if (ns.name != inner) continue;
            found = true;
            const Contract& c = registry.get(ns.type).contract;
            const ParamSpec* ps = c.find_param(pname);
            const std::string ctx = "node '" + ns.name + "' (" + ns.type + "): ";
            if (!ps)
              fail_at(file, kv.first,
                      ctx + "unknown parameter '" + pname + "'; " + detail::known_params(c));
            ns.params[pname] = yaml_param(file, kv.second, ps, ctx);
          }
          if (!found)
            fail_at(file, kv.first,
                    "subgraph '" + name + "' has no node '" + key.substr(0, dot) + "'");
        }
      }
      for (auto& ns : sub.spec.nodes) out.spec.nodes.push_back(std::move(ns));
      for (auto& es : sub.spec.edges) out.spec.edges.push_back(std::move(es));
      subgraphs[name] = std::move(sub);
      continue;
    }

    const NodeType* nt = nullptr;
    try {
      nt = &registry.get(type);
    } catch (const ConfigError& e) {
      fail_at(file, n["type"], "node '" + name + "': " + e.what());
    }
    GraphSpec::NodeSpec ns;
    ns.name = prefix + name;
    ns.type = type;
    ns.where = where;
    const std::string ctx = "node '" + name + "' (" + type + "): ";
    if (params && params.IsMap()) {
      for (const auto& kv : params) {
        const std::string key = kv.first.as<std::string>();
        const ParamSpec* ps = nt->contract.find_param(key);
        if (!ps)
          fail_at(file, kv.first,
                  ctx + "unknown parameter '" + key + "'; " + detail::known_params(nt->contract));
        ns.params[key] = yaml_param(file, kv.second, ps, ctx);
      }
    }
    if (n["policy"]) {
      const std::string pol = scalar(file, n["policy"], "policy");
      if (pol == "sync")
        ns.policy = InputPolicy::kSync;
      else if (pol == "immediate")
        ns.policy = InputPolicy::kImmediate;
      else
        fail_at(file, n["policy"], "policy '" + pol + "' is not one of: sync, immediate");
    }
    if (++st.nodes > kMaxGraphNodes)
      fail_at(file, n,
              "the graph has more than " + std::to_string(kMaxGraphNodes) +
                  " nodes (subgraphs included)");
    out.spec.nodes.push_back(std::move(ns));
  }

  // Rewrites "node.port" of this file into the flattened names (through subgraphs).
  auto rewrite = [&](const YAML::Node& at, const std::string& stream,
                     bool output) -> std::vector<std::string> {
    std::pair<std::string, std::string> np;
    try {
      np = split_stream(stream);
    } catch (const ConfigError& e) {
      fail_at(file, at, e.what());
    }
    auto sg = subgraphs.find(np.first);
    if (sg == subgraphs.end()) return {prefix + stream};
    if (output) {
      auto it = sg->second.outputs.find(np.second);
      if (it == sg->second.outputs.end()) {
        std::string known;
        for (const auto& [k, v] : sg->second.outputs) known += (known.empty() ? "" : ", ") + k;
        fail_at(file, at,
                "subgraph '" + np.first + "' exposes no output '" + np.second +
                    "'; outputs: " + (known.empty() ? "none" : known));
      }
      return {it->second};
    }
    auto it = sg->second.inputs.find(np.second);
    if (it == sg->second.inputs.end()) {
      std::string known;
      for (const auto& [k, v] : sg->second.inputs) known += (known.empty() ? "" : ", ") + k;
      fail_at(file, at,
              "subgraph '" + np.first + "' exposes no input '" + np.second +
                  "'; inputs: " + (known.empty() ? "none" : known));
    }
    return it->second;
  };

  if (g["edges"]) {
    if (!g["edges"].IsSequence()) fail_at(file, g["edges"], "'edges' must be a list");
    for (const auto& e : g["edges"]) {
      if (!e.IsMap()) fail_at(file, e, "each edge must be a map with 'from' and 'to'");
      check_keys(file, e, "an edge", {"from", "to", "capacity", "overflow"});
      if (!e["from"] || !e["to"]) fail_at(file, e, "an edge needs both 'from' and 'to'");
      EdgeOptions o;
      if (e["capacity"]) {
        try {
          o.capacity = static_cast<int>(std::get<int64_t>(
              parse_param(ParamType::kInt, scalar(file, e["capacity"], "capacity"))));
        } catch (const ConfigError&) {
          fail_at(file, e["capacity"],
                  "capacity expects a positive integer, got '" + e["capacity"].Scalar() + "'");
        }
        if (o.capacity < 1)
          fail_at(file, e["capacity"], "capacity must be >= 1, got " + std::to_string(o.capacity));
      }
      if (e["overflow"]) {
        const std::string ov = scalar(file, e["overflow"], "overflow");
        if (ov == "block")
          o.overflow = Overflow::kBlock;
        else if (ov == "drop_oldest")
          o.overflow = Overflow::kDropOldest;
        else if (ov == "drop_newest")
          o.overflow = Overflow::kDropNewest;
        else
          fail_at(file, e["overflow"],
                  "overflow '" + ov + "' is not one of: block, drop_oldest, drop_newest");
      }
      auto froms = rewrite(e["from"], scalar(file, e["from"], "'from'"), true);
      auto tos = rewrite(e["to"], scalar(file, e["to"], "'to'"), false);
      for (const auto& t : tos)
        out.spec.edges.push_back({froms.at(0), t, o, mark_str(file, e.Mark())});
    }
  }
  if (g["outputs"]) {
    if (!g["outputs"].IsSequence()) fail_at(file, g["outputs"], "'outputs' must be a list");
    for (const auto& o : g["outputs"]) {
      // Plain "node.port", or {name: exposed, port: node.port} to rename in a subgraph.
      std::string stream, exposed;
      if (o.IsMap()) {
        check_keys(file, o, "an output", {"name", "port"});
        stream = scalar(file, o["port"], "'port'");
        exposed = scalar(file, o["name"], "'name'");
      } else {
        stream = scalar(file, o, "an output");
        exposed = split_stream(stream).second;
      }
      const std::string inner = rewrite(o, stream, true).at(0);
      out.spec.outputs.push_back(inner);
      if (out.outputs.count(exposed))
        fail_at(file, o, "output name '" + exposed + "' is exposed twice");
      out.outputs[exposed] = inner;
    }
  }
  if (g["inputs"]) {
    if (!g["inputs"].IsSequence()) fail_at(file, g["inputs"], "'inputs' must be a list");
    for (const auto& i : g["inputs"]) {
      std::string stream, exposed;
      if (i.IsMap()) {
        check_keys(file, i, "an input", {"name", "port"});
        stream = scalar(file, i["port"], "'port'");
        exposed = scalar(file, i["name"], "'name'");
      } else {
        stream = scalar(file, i, "an input");
        exposed = split_stream(stream).second;
      }
      for (const auto& t : rewrite(i, stream, false)) out.inputs[exposed].push_back(t);
    }
  }
  return out;
}

void apply_overrides(GraphSpec& spec, const Registry& registry,
                     const std::vector<std::string>& overrides) {
  for (const auto& ov : overrides) {
    const size_t eq = ov.find('=');
    if (eq == std::string::npos) throw ConfigError("--set '" + ov + "': expected NODE.PARAM=VALUE");
    const std::string lhs = ov.substr(0, eq), value = ov.substr(eq + 1);
    const size_t dot = lhs.rfind('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == lhs.size())
      throw ConfigError("--set '" + ov + "': expected NODE.PARAM=VALUE");
    const std::string node = lhs.substr(0, dot), param = lhs.substr(dot + 1);
    GraphSpec::NodeSpec* target = nullptr;
    for (auto& ns : spec.nodes)
      if (ns.name == node) target = &ns;
    if (!target) {
      std::string known;
      for (const auto& ns : spec.nodes) known += (known.empty() ? "" : ", ") + ns.name;
      throw ConfigError("--set '" + ov + "': no node named '" + node + "'; nodes: " + known);
    }
    const Contract& c = registry.get(target->type).contract;
    const ParamSpec* ps = c.find_param(param);
    if (!ps)
      throw ConfigError("--set '" + ov + "': node '" + node + "' (" + target->type +
                        ") has no parameter '" + param + "'; " + detail::known_params(c));
    try {
      target->params[param] = parse_param(ps->type, value);
    } catch (const ConfigError&) {
      throw ConfigError("--set '" + ov + "': parameter '" + param + "' of node '" + node +
                        "' expects " + param_type_name(ps->type) + ", got '" + value + "'");
    }
  }
}

}  // namespace

std::unique_ptr<Graph> load_graph(const std::string& yaml_path, const Registry& registry,
                                  const std::vector<std::string>& overrides) {
  LoadState st;
  Loaded l = load_file(yaml_path, yaml_path, registry, "", st);
  apply_overrides(l.spec, registry, overrides);
  return GraphBuilder(std::move(l.spec)).build(registry);
}

std::unique_ptr<Graph> load_graph_string(const std::string& yaml_text, const Registry& registry,
                                         const std::vector<std::string>& overrides,
                                         const std::string& base_dir) {
  YAML::Node doc;
  const std::string file = "<string>";
  if (yaml_text.size() > kMaxGraphFileBytes)
    throw ConfigError(file + ": the graph text is " + std::to_string(yaml_text.size()) +
                      " bytes, more than the limit of " + std::to_string(kMaxGraphFileBytes));
  try {
    doc = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(mark_str(file, e.mark) + ": YAML syntax error: " + e.msg);
  }
  LoadState st;
  Loaded l;
  try {
    l = load_yaml(doc, file, base_dir, registry, "", st);
  } catch (const YAML::Exception& e) {
    throw ConfigError(mark_str(file, e.mark) + ": " + e.msg);
  }
  apply_overrides(l.spec, registry, overrides);
  return GraphBuilder(std::move(l.spec)).build(registry);
}

}  // namespace omni
