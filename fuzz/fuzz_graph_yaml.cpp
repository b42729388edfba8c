// YAML graph loading: parse, check against the node catalogue, flatten subgraphs and build the
// graph (nodes constructed, nothing run). Input: the YAML text.
#include <memory>
#include <string>

#include "core/graph.h"
#include "core/registry.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const omni::Registry* registry = [] {
    auto* r = new omni::Registry();
    omni::register_core_nodes(*r);  // the manifest nodes included
    return r;
  }();
  const std::string text(reinterpret_cast<const char*>(data), size);
  // Subgraph files resolve against a directory that does not exist: nothing outside is read.
  omni::fuzz::expect_clean_errors([&] {
    std::unique_ptr<omni::Graph> g =
        omni::load_graph_string(text, *registry, {}, "/nonexistent-omni-fuzz");
  });
  return 0;
}
