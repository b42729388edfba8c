// A program outside the omnipipe tree: defines its own node (Scale), then runs it in a graph built
// in C++ and in one loaded from YAML. Usage: consumer scale.yaml
#include <omnipipe/core/core_nodes.h>
#include <omnipipe/core/error.h>
#include <omnipipe/core/graph.h>

#include <cstdint>
#include <iostream>
#include <vector>

namespace {

// int64 in, int64 * factor out, at the same timestamp. Each port and parameter is declared once
// and the same descriptor serves the contract and the calls.
class Scale : public omni::Node {
 public:
  static constexpr omni::Input<int64_t> kIn{"in", "values"};
  static constexpr omni::Output<int64_t> kOut{"out", "values * factor"};
  static constexpr omni::Param<int64_t> kFactor{"factor", 2, "multiplier"};

  static omni::Contract contract() {
    return omni::Contract()
        .doc("Multiplies each int64 by `factor`.")
        .input(kIn)
        .output(kOut)
        .param(kFactor);
  }
  void open(omni::Context& ctx) override { factor_ = ctx.param(kFactor); }
  omni::Flow process(omni::Context& ctx) override {
    const auto in = ctx.input(kIn);  // typed: in.get() is an int64_t
    ctx.emit(kOut, in.get() * factor_, in.timestamp());
    return omni::Flow::kContinue;
  }

 private:
  int64_t factor_ = 1;
};

std::vector<int64_t> collect(omni::Graph& g, const std::string& stream) {
  std::vector<int64_t> got;
  g.observe(stream, [&](const omni::Packet& p) { got.push_back(p.get<int64_t>()); });
  g.run();
  return got;
}

bool expect(const std::vector<int64_t>& got, const std::vector<int64_t>& want, const char* what) {
  if (got == want) return true;
  std::cerr << "consumer: " << what << ": unexpected values:";
  for (int64_t v : got) std::cerr << " " << v;
  std::cerr << "\n";
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer GRAPH.yaml\n";
    return 2;
  }
  try {
    // 1. In C++: the node added as a class, no registry needed.
    auto g = omni::GraphBuilder("scale_cpp")
                 .add<omni::CountingSource>("src", {{"count", int64_t{4}}})
                 .add<Scale>("double")
                 .connect("src.out", "double.in")
                 .build();
    const bool cpp_ok = expect(collect(*g, "double.out"), {0, 2, 4, 6}, "C++ graph");

    // 2. From YAML: register the node type next to the core catalogue.
    omni::Registry registry;
    omni::register_core_nodes(registry);
    registry.add<Scale>("Scale");
    auto y = omni::load_graph(argv[1], registry);
    const bool yaml_ok = expect(collect(*y, "triple.out"), {3, 6, 9, 12, 15}, "YAML graph");

    // 3. A bad parameter is a ConfigError at build time, naming the node and the parameter.
    bool config_ok = false;
    try {
      omni::GraphBuilder("bad").add<Scale>("s", {{"factor", "two"}}).build();
    } catch (const omni::ConfigError&) {
      config_ok = true;
    }
    if (!config_ok) std::cerr << "consumer: a bad parameter was not rejected\n";
    if (!(cpp_ok && yaml_ok && config_ok)) return 1;
  } catch (const omni::Error& e) {
    std::cerr << "consumer: " << e.what() << "\n";
    return 1;
  }
  std::cout << "consumer: C++ and YAML graphs with a custom node ran as expected\n";
  return 0;
}
