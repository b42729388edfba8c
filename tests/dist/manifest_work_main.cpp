// manifest_work: a core-only stand-in for `omnipipe run` over examples/graphs/manifest_work.yaml
// (ManifestSource -> ItemWork -> RecordWriter) for the MPI tests and scaling figures of builds
// without the full node catalogue (OMNI_CORE_ONLY). Usage:
//   manifest_work MANIFEST OUT [--resume] [--in-flight N] [--sleep-us N] [--summary FILE]
//                 [--coordinator-only] [--quiet]
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include "core/core_nodes.h"
#include "core/error.h"
#include "core/graph.h"
#include "core/registry.h"
#include "dist/manifest_run.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: manifest_work MANIFEST OUT [--resume] [--in-flight N] [--sleep-us N] "
                 "[--summary FILE] [--coordinator-only] [--quiet]\n";
    return 2;
  }
  omni::dist::ManifestRunOptions o;
  o.manifest = argv[1];
  o.out = argv[2];
  o.program = "manifest_work";
  int64_t sleep_us = 0;
  std::string summary;
  for (int i = 3; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) {
        std::cerr << "manifest_work: " << a << " needs a value\n";
        std::exit(2);
      }
      return std::string(argv[++i]);
    };
    if (a == "--resume") {
      o.resume = true;
    } else if (a == "--in-flight") {
      o.in_flight = std::atoi(value().c_str());
    } else if (a == "--sleep-us") {
      sleep_us = std::atoll(value().c_str());
    } else if (a == "--summary") {
      summary = value();
    } else if (a == "--coordinator-only") {
      o.coordinator_works = false;
    } else if (a == "--quiet") {
      o.quiet = true;
    } else {
      std::cerr << "manifest_work: unknown option " << a << "\n";
      return 2;
    }
  }
  try {
    omni::Registry reg;
    omni::register_core_nodes(reg);
    omni::GraphBuilder b("manifest_work");
    b.add("lines", "ManifestSource", {{"path", o.manifest}});
    b.add("work", "ItemWork", {{"sleep_us", sleep_us}});
    b.add("records", "RecordWriter", {{"path", o.out}});
    b.connect("lines.out", "work.in").connect("work.out", "records.in");
    auto g = b.build(reg);
    omni::RunOptions ro;
    ro.workers = 2;
    const auto s = omni::dist::run_manifest(o, [&] { g->run(ro); });
    if (!s.coordinator) return 0;
    if (!o.quiet) std::cerr << "manifest_work: summary: " << s.to_json().dump() << "\n";
    if (!summary.empty()) std::ofstream(summary) << s.to_json(true).dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "manifest_work: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
