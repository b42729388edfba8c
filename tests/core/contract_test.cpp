// Typed port and parameter descriptors (core/contract.h): one declaration serves the contract and
// the calls; a wrong type is a compile error where the compiler can see it, and a clear run-time
// error naming the node and the parameter where only the graph file knows it.
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/contract.h"
#include "core/core_nodes.h"
#include "core/graph.h"
#include "core/node.h"
#include "core/registry.h"
#include "tests/common/fake_context.h"
#include "tests/core/test_util.h"

namespace omni::test {
namespace {

constexpr std::array<std::string_view, 2> kDefaultTags{"a", "b c"};

// Every kind of descriptor, declared once and used by contract() and the calls.
class Typed : public Node {
 public:
  static constexpr Input<int64_t> kIn{"in", "values"};
  static constexpr OptionalInput<std::string> kLabel{"label", "an optional label"};
  static constexpr Output<int64_t> kOut{"out", "values * factor + offset"};
  static constexpr Output<std::string> kText{"text", "the values as text"};
  static constexpr Param<int64_t> kFactor{"factor", 2, "multiplier"};
  static constexpr Param<int> kOffset{"offset", 0, "added after the multiplication"};
  static constexpr Param<double> kGain{"gain", 1.5, "unused, a double"};
  static constexpr Param<bool> kLoud{"loud", false, "also emit text"};
  static constexpr Param<std::string> kPrefix{"prefix", "v=", "text before each value"};
  static constexpr Param<StringList> kTags{"tags", kDefaultTags, "a string list"};

  static Contract contract() {
    return Contract()
        .doc("typed test node")
        .input(kIn)
        .input(kLabel)
        .output(kOut)
        .output(kText)
        .param(kFactor)
        .param(kOffset)
        .param(kGain)
        .param(kLoud)
        .param(kPrefix)
        .param(kTags);
  }
  void open(Context& ctx) override {
    factor_ = ctx.param(kFactor);
    offset_ = ctx.param(kOffset);
    loud_ = ctx.param(kLoud);
    prefix_ = ctx.param(kPrefix);
  }
  Flow process(Context& ctx) override {
    const auto in = ctx.input(kIn);
    const int64_t v = in.get() * factor_ + offset_;
    ctx.emit(kOut, v, in.timestamp());
    if (loud_) {
      const auto label = ctx.input(kLabel);
      ctx.emit(kText, prefix_ + std::to_string(v) + (label.empty() ? "" : label.get()),
               in.timestamp());
    }
    return Flow::kContinue;
  }

 private:
  int64_t factor_ = 1;
  int offset_ = 0;
  bool loud_ = false;
  std::string prefix_;
};

// The same contract written with the string API (out-of-tree nodes written before descriptors).
Contract string_contract() {
  return Contract()
      .doc("typed test node")
      .input<int64_t>("in", "values")
      .optional_input<std::string>("label", "an optional label")
      .output<int64_t>("out", "values * factor + offset")
      .output<std::string>("text", "the values as text")
      .param("factor", int64_t{2}, "multiplier")
      .param("offset", 0, "added after the multiplication")
      .param("gain", 1.5, "unused, a double")
      .param("loud", false, "also emit text")
      .param("prefix", "v=", "text before each value")
      .param("tags", StringList{"a", "b c"}, "a string list");
}

// A node written only with the string API: it must keep working.
class OldStyle : public Node {
 public:
  static Contract contract() {
    return Contract()
        .input<int64_t>("in", "values")
        .output<int64_t>("out", "values + add")
        .param("add", int64_t{10}, "addend");
  }
  void open(Context& ctx) override { add_ = ctx.params().get_int("add"); }
  Flow process(Context& ctx) override {
    const Packet& in = ctx.input("in");
    ctx.emit<int64_t>("out", in.get<int64_t>() + add_, in.timestamp());
    return Flow::kContinue;
  }

 private:
  int64_t add_ = 0;
};

// Uses a port its contract does not declare (a bug the runtime must name).
class Undeclared : public Node {
 public:
  static constexpr Input<int64_t> kIn{"in"};
  static constexpr Output<int64_t> kMissing{"missing"};
  static Contract contract() { return Contract().input(kIn); }
  Flow process(Context& ctx) override {
    ctx.emit(kMissing, ctx.input(kIn).get(), ctx.timestamp());
    return Flow::kContinue;
  }
};

// ---- compile-time checks ----

// Values of the wrong type do not compile: emit() only takes what converts to the port's type.
template <class Port, class V>
concept CanEmit = requires(Context& c, const Port& port, V v) {
  c.emit(port, v, Timestamp(0));
};
static_assert(CanEmit<Output<int64_t>, int64_t>);
static_assert(CanEmit<Output<int64_t>, int>);
static_assert(CanEmit<Output<std::string>, const char*>);
static_assert(!CanEmit<Output<int64_t>, std::string>);
static_assert(!CanEmit<Output<std::string>, int64_t>);
static_assert(!CanEmit<Output<AnyType>, int64_t>);  // untyped ports take packets only
static_assert(requires(Context & c) {
  c.emit(Typed::kOut, std::make_shared<const int64_t>(1), Timestamp(0));
});

// Parameters read as their declared C++ type.
static_assert(std::is_same_v<decltype(std::declval<Context&>().param(Typed::kFactor)), int64_t>);
static_assert(std::is_same_v<decltype(std::declval<Context&>().param(Typed::kOffset)), int>);
static_assert(std::is_same_v<decltype(std::declval<Context&>().param(Typed::kGain)), double>);
static_assert(std::is_same_v<decltype(std::declval<Context&>().param(Typed::kLoud)), bool>);
static_assert(
    std::is_same_v<decltype(std::declval<Context&>().param(Typed::kPrefix)), const std::string&>);
static_assert(
    std::is_same_v<decltype(std::declval<Context&>().param(Typed::kTags)), const StringList&>);
// Inputs give the payload type; an untyped input gives the packet.
static_assert(
    std::is_same_v<decltype(std::declval<Context&>().input(Typed::kIn).get()), const int64_t&>);
static_assert(
    std::is_same_v<decltype(std::declval<Context&>().input(PassThrough::kIn)), const Packet&>);
// Parameter types outside bool/int/int64/double/string/list, and defaults of another type, are
// refused.
static_assert(!ParamValueType<float>);
static_assert(
    !std::is_constructible_v<Param<bool>, std::string_view, const char*, std::string_view>);
static_assert(!std::is_constructible_v<Param<bool>, std::string_view, int, std::string_view>);
static_assert(
    !std::is_constructible_v<Param<int64_t>, std::string_view, std::string_view, std::string_view>);
static_assert(
    !std::is_constructible_v<Param<std::string>, std::string_view, int, std::string_view>);
// Descriptors are constant expressions.
static_assert(Typed::kFactor.default_value == 2 && Typed::kIn.name == "in" &&
              Typed::kLabel.optional);

// ---- run-time behaviour ----

TEST(Descriptors, DeclareTheSameContractAsTheStringApi) {
  const Contract a = Typed::contract(), b = string_contract();
  ASSERT_EQ(a.inputs().size(), b.inputs().size());
  for (size_t i = 0; i < a.inputs().size(); ++i) {
    EXPECT_EQ(a.inputs()[i].name, b.inputs()[i].name);
    EXPECT_EQ(a.inputs()[i].type, b.inputs()[i].type);
    EXPECT_EQ(a.inputs()[i].doc, b.inputs()[i].doc);
    EXPECT_EQ(a.inputs()[i].optional, b.inputs()[i].optional);
  }
  ASSERT_EQ(a.outputs().size(), b.outputs().size());
  for (size_t i = 0; i < a.outputs().size(); ++i) {
    EXPECT_EQ(a.outputs()[i].name, b.outputs()[i].name);
    EXPECT_EQ(a.outputs()[i].type, b.outputs()[i].type);
    EXPECT_EQ(a.outputs()[i].doc, b.outputs()[i].doc);
  }
  ASSERT_EQ(a.params().size(), b.params().size());
  for (size_t i = 0; i < a.params().size(); ++i) {
    EXPECT_EQ(a.params()[i].name, b.params()[i].name);
    EXPECT_EQ(a.params()[i].type, b.params()[i].type) << a.params()[i].name;
    EXPECT_EQ(a.params()[i].default_value, b.params()[i].default_value) << a.params()[i].name;
    EXPECT_EQ(a.params()[i].doc, b.params()[i].doc);
  }
  EXPECT_EQ(param_type_name(a.params()[1].type), std::string("int64"));  // Param<int>
}

TEST(Descriptors, TypedNodeRunsInAGraph) {
  Watchdog wd;
  auto g = GraphBuilder("typed")
               .add<CountingSource>("src", {{"count", int64_t{4}}})
               .add<Typed>("t", {{"factor", int64_t{3}}, {"offset", int64_t{1}}, {"loud", true}})
               .connect("src.out", "t.in")
               .build();
  std::vector<int64_t> values;
  std::vector<std::string> texts;
  g->observe("t.out", [&](const Packet& p) { values.push_back(p.get<int64_t>()); });
  g->observe("t.text", [&](const Packet& p) { texts.push_back(p.get<std::string>()); });
  g->run(W(2));
  EXPECT_EQ(values, (std::vector<int64_t>{1, 4, 7, 10}));
  EXPECT_EQ(texts, (std::vector<std::string>{"v=1", "v=4", "v=7", "v=10"}));
}

TEST(Descriptors, ReadDefaultsAndValuesThroughAFakeContext) {
  testing::FakeContext ctx(Typed::contract(), {{"prefix", std::string("x")}});
  EXPECT_EQ(ctx.param(Typed::kFactor), 2);
  EXPECT_EQ(ctx.param(Typed::kGain), 1.5);
  EXPECT_EQ(ctx.param(Typed::kPrefix), "x");
  EXPECT_EQ(ctx.param(Typed::kTags), (StringList{"a", "b c"}));
  Typed node;
  node.open(ctx);
  ctx.feed(Typed::kIn, make_packet<int64_t>(5, Timestamp(7)));
  node.process(ctx);
  ASSERT_EQ(ctx.emitted(Typed::kOut).size(), 1u);
  EXPECT_EQ(ctx.emitted(Typed::kOut)[0].get<int64_t>(), 10);
  EXPECT_EQ(ctx.emitted(Typed::kOut)[0].timestamp(), Timestamp(7));
}

TEST(Descriptors, StringApiNodesStillWork) {
  Watchdog wd;
  Registry reg;
  register_core_nodes(reg);
  reg.add<OldStyle>("OldStyle");
  auto g = load_graph_string(R"(
graph:
  name: old
  nodes:
    - {name: src, type: CountingSource, params: {count: 3}}
    - {name: old, type: OldStyle, params: {add: 5}}
  edges:
    - {from: src.out, to: old.in}
)",
                             reg);
  std::vector<int64_t> got;
  g->observe("old.out", [&](const Packet& p) { got.push_back(p.get<int64_t>()); });
  g->run(W(1));
  EXPECT_EQ(got, (std::vector<int64_t>{5, 6, 7}));
}

std::string config_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a ConfigError";
  return {};
}

TEST(Descriptors, WrongTypedYamlValueNamesNodeAndParameter) {
  Registry reg;
  register_core_nodes(reg);
  reg.add<Typed>("Typed");
  const std::string yaml = R"(
graph:
  name: bad
  nodes:
    - {name: src, type: CountingSource}
    - {name: scale, type: Typed, params: {factor: two}}
  edges:
    - {from: src.out, to: scale.in}
)";
  const std::string m = config_error_of([&] { load_graph_string(yaml, reg); });
  EXPECT_NE(m.find("node 'scale' (Typed)"), std::string::npos) << m;
  EXPECT_NE(m.find("parameter 'factor' expects int64"), std::string::npos) << m;
  EXPECT_NE(m.find("two"), std::string::npos) << m;

  // The same through --set and through C++.
  const std::string yaml_ok = R"(
graph:
  name: ok
  nodes:
    - {name: src, type: CountingSource}
    - {name: scale, type: Typed}
  edges:
    - {from: src.out, to: scale.in}
)";
  const std::string s =
      config_error_of([&] { load_graph_string(yaml_ok, reg, {"scale.loud=maybe"}); });
  EXPECT_NE(s.find("'loud'"), std::string::npos) << s;
  EXPECT_NE(s.find("'scale'"), std::string::npos) << s;
  const std::string c = config_error_of([] {
    GraphBuilder("c").add<Typed>("t", {{"gain", std::string("loud")}}).build();
  });
  EXPECT_NE(c.find("node 't' ("), std::string::npos) << c;  // (the demangled class name)
  EXPECT_NE(c.find("parameter 'gain' expects double"), std::string::npos) << c;
}

TEST(Descriptors, IntParameterOutOfRangeNamesNodeAndParameter) {
  Watchdog wd;
  auto g = GraphBuilder("range")
               .add<CountingSource>("src", {{"count", int64_t{1}}})
               .add<Typed>("t", {{"offset", int64_t{1} << 40}})
               .connect("src.out", "t.in")
               .build();
  try {
    g->run(W(1));
    FAIL() << "expected a RunError";
  } catch (const RunError& e) {
    const std::string m = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kConfig) << m;
    EXPECT_NE(m.find("node 't' ("), std::string::npos) << m;
    EXPECT_NE(m.find("Typed) failed in open()"), std::string::npos) << m;
    EXPECT_NE(m.find("parameter 'offset' is 1099511627776, outside the range of int"),
              std::string::npos)
        << m;
  }
}

TEST(Descriptors, AnUndeclaredPortIsNamed) {
  Watchdog wd;
  auto g = GraphBuilder("undeclared")
               .add<CountingSource>("src", {{"count", int64_t{1}}})
               .add<Undeclared>("u")
               .connect("src.out", "u.in")
               .build();
  try {
    g->run(W(1));
    FAIL() << "expected a RunError";
  } catch (const RunError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("has no output 'missing'"), std::string::npos) << m;
  }
}

TEST(Descriptors, PortsAreFoundByDescriptorOrByName) {
  testing::FakeContext ctx(Typed::contract(), {});
  EXPECT_EQ(ctx.input_port(Typed::kLabel), 1);
  EXPECT_EQ(ctx.output_port(Typed::kText), 1);
  const std::string same_text = "label";  // another address, same name
  EXPECT_EQ(ctx.input_port(std::string_view(same_text)), 1);
}

}  // namespace
}  // namespace omni::test
