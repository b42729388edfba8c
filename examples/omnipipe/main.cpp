// The `omnipipe` command line: run a YAML graph, print the node catalogue, render a graph as DOT,
// describe a media file or a Hugging Face checkpoint directory.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/graph.h"
#include "core/interrupt.h"
#include "dist/cli_flags.h"
#include "dist/manifest_run.h"
#include "nodes/all_nodes.h"
#ifdef OMNI_WITH_MEDIA
#include "modalities/media/probe.h"
#endif
#ifdef OMNI_HAVE_COMMON
#include "modalities/common/checkpoint_inspect.h"
#endif

namespace {

using omni::Registry;

// One subcommand: how it declares its options, and what it runs once they are parsed.
struct Subcommand {
  std::function<CLI::App*(CLI::App&)> define;
  std::function<int()> run;
  CLI::App* app = nullptr;
};

struct RunArgs {
  std::string graph;
  std::vector<std::string> sets;
  std::string stats, trace;
  int workers = 0;
  // Manifest graphs (a ManifestSource): see dist/manifest_run.h.
  omni::dist::ManifestRunFlags flags;  // --resume, --in-flight, --coordinator-only, --quiet
  std::string summary;
} g_run;

int run_manifest_graph(omni::Graph& graph, const omni::dist::ManifestGraph& m);

int cmd_run(const Registry& reg) {
  auto graph = omni::load_graph(g_run.graph, reg, g_run.sets);
  if (auto m = omni::dist::manifest_of(graph->spec())) return run_manifest_graph(*graph, *m);
  if (g_run.flags.resume)
    throw omni::ConfigError("--resume: graph '" + g_run.graph +
                            "' has no ManifestSource, so there is nothing to resume");
  omni::RunOptions opt;
  opt.workers = g_run.workers;
  opt.trace_path = g_run.trace;
  std::exception_ptr error;
  int signal = 0;
  {
    // Ctrl-C (SIGINT) or SIGTERM cancels the run; the statistics are still written.
    omni::CancelOnSignal on_signal(*graph);
    try {
      graph->run(opt);
    } catch (const omni::Error&) {
      error = std::current_exception();
    }
    signal = on_signal.received();
  }
  if (!g_run.stats.empty()) {
    std::ofstream f(g_run.stats);
    if (!f) throw omni::InputError("cannot write stats file '" + g_run.stats + "'");
    f << graph->stats().to_json() << "\n";
  }
  if (signal != 0) {
    std::cerr << "omnipipe: interrupted (signal " << signal << "), run cancelled\n";
    return 128 + signal;  // the shell's convention: 130 for Ctrl-C
  }
  if (error) std::rethrow_exception(error);
  return 0;
}

// Under mpirun every rank runs the graph over the lines handed to it; rank 0 writes the output.
int run_manifest_graph(omni::Graph& graph, const omni::dist::ManifestGraph& m) {
  omni::dist::ManifestRunOptions o;
  o.manifest = m.manifest;
  o.out = m.out;
  g_run.flags.apply(o);
  const int ranks = omni::dist::launched_world_size();
  const std::string suffix =
      ranks > 1 ? ".rank" + std::to_string(omni::dist::launched_rank()) : std::string();
  const auto s = omni::dist::run_manifest(o, [&] {
    omni::RunOptions opt;
    opt.workers = g_run.workers;
    opt.trace_path = g_run.trace.empty() ? "" : g_run.trace + suffix;
    std::exception_ptr error;
    {
      // Ctrl-C / SIGTERM (mpirun forwards them to every rank) cancel the graph; --resume goes on.
      omni::CancelOnSignal on_signal(graph);
      try {
        graph.run(opt);
      } catch (const omni::Error&) {
        error = std::current_exception();
      }
    }
    if (!g_run.stats.empty()) {
      std::ofstream f(g_run.stats + suffix);
      f << graph.stats().to_json() << "\n";
    }
    if (error) std::rethrow_exception(error);
  });
  if (!s.coordinator) return 0;
  if (!g_run.flags.quiet) std::cerr << "omnipipe: summary: " << s.to_json().dump() << "\n";
  if (!g_run.summary.empty()) {
    std::ofstream f(g_run.summary);
    if (!f) throw omni::InputError("cannot write summary file '" + g_run.summary + "'");
    f << s.to_json(true).dump(2) << "\n";
  }
  return 0;
}

struct NodesArgs {
  bool json = false;
} g_nodes;

nlohmann::json param_default_json(const omni::ParamValue& v) {
  return std::visit([](const auto& x) { return nlohmann::json(x); }, v);
}

int cmd_nodes(const Registry& reg) {
  if (g_nodes.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& [name, t] : reg.types()) {
      const auto& c = t.contract;
      nlohmann::json o;
      o["type"] = name;
      o["doc"] = c.doc();
      o["inputs"] = nlohmann::json::array();
      for (const auto& p : c.inputs())
        o["inputs"].push_back(
            {{"name", p.name}, {"type", p.type.name}, {"doc", p.doc}, {"optional", p.optional}});
      o["outputs"] = nlohmann::json::array();
      for (const auto& p : c.outputs())
        o["outputs"].push_back({{"name", p.name}, {"type", p.type.name}, {"doc", p.doc}});
      o["params"] = nlohmann::json::array();
      for (const auto& p : c.params())
        o["params"].push_back({{"name", p.name},
                               {"type", omni::param_type_name(p.type)},
                               {"default", param_default_json(p.default_value)},
                               {"doc", p.doc}});
      o["policy"] = omni::policy_name(c.policy());
      arr.push_back(std::move(o));
    }
    std::cout << arr.dump(2) << "\n";
    return 0;
  }
  for (const auto& [name, t] : reg.types()) {
    const auto& c = t.contract;
    std::cout << name << "  (" << omni::policy_name(c.policy()) << ")\n  " << c.doc() << "\n";
    for (const auto& p : c.inputs())
      std::cout << "    in   " << p.name << ": " << p.type.name << (p.optional ? " (optional)" : "")
                << (p.doc.empty() ? "" : "  -- " + p.doc) << "\n";
    for (const auto& p : c.outputs())
      std::cout << "    out  " << p.name << ": " << p.type.name
                << (p.doc.empty() ? "" : "  -- " + p.doc) << "\n";
    for (const auto& p : c.params())
      std::cout << "    param " << p.name << ": " << omni::param_type_name(p.type) << " = "
                << omni::param_to_string(p.default_value) << "  -- " << p.doc << "\n";
    std::cout << "\n";
  }
  return 0;
}

struct DotArgs {
  std::string graph;
  std::vector<std::string> sets;
} g_dot;

int cmd_dot(const Registry& reg) {
  auto graph = omni::load_graph(g_dot.graph, reg, g_dot.sets);
  std::cout << graph->to_dot();
  return 0;
}

#ifdef OMNI_WITH_MEDIA
struct ProbeArgs {
  std::string file;
  bool json = false;
} g_probe;

int cmd_probe() {
  const nlohmann::json info = omni::probe_media(g_probe.file);
  if (g_probe.json)
    std::cout << info.dump(2) << "\n";
  else
    std::cout << omni::probe_to_text(info);
  return 0;
}
#endif

#ifdef OMNI_HAVE_COMMON
struct InspectArgs {
  std::string dir;
  bool json = false;
} g_inspect;

int cmd_inspect() {
  const nlohmann::json info = omni::inspect_checkpoint(g_inspect.dir);
  if (g_inspect.json)
    std::cout << info.dump(2) << "\n";
  else
    std::cout << omni::inspect_to_text(info);
  return 0;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  Registry reg;
  CLI::App app{"omnipipe: run and inspect omnimodal stream graphs"};
  app.require_subcommand(1);

  // The subcommand table. `probe` (media files) is added here by the media module.
  std::vector<Subcommand> cmds;
  cmds.push_back({[](CLI::App& a) {
                    auto* c = a.add_subcommand("run", "Run a YAML graph to completion");
                    c->add_option("graph", g_run.graph, "graph file (YAML)")->required();
                    c->add_option("--set", g_run.sets, "override a parameter: NODE.PARAM=VALUE");
                    c->add_option("--stats", g_run.stats, "write per-node statistics JSON here");
                    c->add_option("--trace", g_run.trace, "write a Chrome-trace JSON here");
                    c->add_option("--workers", g_run.workers,
                                  "worker threads (0 = hardware concurrency)");
                    // Graphs with a ManifestSource (mpirun -n N omnipipe run ... scales out).
                    g_run.flags.add_to(*c, "manifest graphs");
                    c->add_option("--summary", g_run.summary,
                                  "manifest graphs: write the run summary (per rank) JSON here");
                    return c;
                  },
                  [&reg] { return cmd_run(reg); }});
  cmds.push_back({[](CLI::App& a) {
                    auto* c = a.add_subcommand("nodes", "Print the node catalogue");
                    c->add_flag("--json", g_nodes.json, "machine-readable JSON");
                    return c;
                  },
                  [&reg] { return cmd_nodes(reg); }});
  cmds.push_back({[](CLI::App& a) {
                    auto* c = a.add_subcommand("dot", "Print a graph as Graphviz DOT");
                    c->add_option("graph", g_dot.graph, "graph file (YAML)")->required();
                    c->add_option("--set", g_dot.sets, "override a parameter: NODE.PARAM=VALUE");
                    return c;
                  },
                  [&reg] { return cmd_dot(reg); }});
#ifdef OMNI_WITH_MEDIA
  cmds.push_back({[](CLI::App& a) {
                    auto* c =
                        a.add_subcommand("probe", "Describe a media file's container and streams");
                    c->add_option("file", g_probe.file, "media file")->required();
                    c->add_flag("--json", g_probe.json, "machine-readable JSON (DESIGN.md 2a)");
                    return c;
                  },
                  [] { return cmd_probe(); }});
#endif
#ifdef OMNI_HAVE_COMMON
  cmds.push_back({[](CLI::App& a) {
                    auto* c = a.add_subcommand(
                        "inspect",
                        "Summarise a Hugging Face checkpoint directory (config, towers, "
                        "tensors, dtypes, shards, unused groups)");
                    c->add_option("dir", g_inspect.dir, "checkpoint directory")->required();
                    c->add_flag("--json", g_inspect.json, "machine-readable JSON (DESIGN.md 2a)");
                    return c;
                  },
                  [] { return cmd_inspect(); }});
#endif
  for (auto& c : cmds) c.app = c.define(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    omni::register_all_nodes(reg);
    for (auto& c : cmds)
      if (c.app->parsed()) return c.run();
  } catch (const omni::RunError& e) {
    // Bad input, configuration or a cancellation: 1; a bug in a node or the runtime: 2.
    const bool bug = e.kind() == omni::ErrorKind::kInternal;
    std::cerr << "omnipipe: " << (bug ? "internal error: " : "error: ") << e.what() << "\n";
    return bug ? 2 : 1;
  } catch (const omni::Error& e) {
    std::cerr << "omnipipe: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "omnipipe: unexpected error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
