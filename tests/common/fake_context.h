// A minimal in-test Context for driving one node directly (open/process/close) without a graph:
// inputs are set per call, emitted packets are collected per output port.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/contract.h"
#include "core/error.h"
#include "core/node.h"

namespace omni::testing {

class FakeContext : public Context {
 public:
  FakeContext(Contract contract, std::map<std::string, ParamValue> overrides,
              std::string name = "node")
      : contract_(std::move(contract)), name_(std::move(name)) {
    std::map<std::string, ParamValue> values;
    for (const ParamSpec& s : contract_.params()) values[s.name] = s.default_value;
    for (auto& [k, v] : overrides) {
      if (!values.count(k)) throw ConfigError("FakeContext: unknown param " + k);
      values[k] = v;
    }
    params_ = Params(std::move(values));
    inputs_.resize(contract_.inputs().size());
    outputs_.resize(contract_.outputs().size());
  }

  // Sets the input set for the next process(): one packet on `port`, the others empty.
  void feed(const std::string& port, Packet p) {
    for (auto& in : inputs_) in = Packet();
    ts_ = p.timestamp();
    inputs_.at(input_port(port)) = std::move(p);
  }
  const std::vector<Packet>& emitted(const std::string& port) const {
    return outputs_.at(output_port(port));
  }
  template <class T>
  void feed(const Input<T>& port, Packet p) {
    feed(std::string(port.name), std::move(p));
  }
  template <class T>
  const std::vector<Packet>& emitted(const Output<T>& port) const {
    return emitted(std::string(port.name));
  }
  int64_t counter(const std::string& name) const {
    auto it = counters_.find(name);
    return it == counters_.end() ? 0 : it->second;
  }

  // The typed overloads of Context stay visible next to the overrides below.
  using Context::emit;
  using Context::input;
  using Context::input_port;
  using Context::output_port;
  const std::string& node_name() const override { return name_; }
  const Params& params() const override { return params_; }
  Timestamp timestamp() const override { return ts_; }
  const Packet& input(int port) const override { return inputs_.at(port); }
  bool input_done(int) const override { return false; }
  void emit(int port, Packet p) override {
    auto& out = outputs_.at(port);
    if (!out.empty() && !(out.back().timestamp() < p.timestamp()))
      throw Error("FakeContext: non-increasing timestamp on output " +
                  contract_.outputs()[port].name);
    out.push_back(std::move(p));
  }
  void set_bound(int, Timestamp) override {}
  void close_output(int) override {}
  void count(std::string_view c, int64_t d) override { counters_[std::string(c)] += d; }
  void warn(std::string_view m) override { warnings.emplace_back(m); }
  bool stop_requested() const override { return false; }
  int input_port(std::string_view n) const override {
    for (size_t i = 0; i < contract_.inputs().size(); ++i)
      if (contract_.inputs()[i].name == n) return static_cast<int>(i);
    throw Error("FakeContext: no input " + std::string(n));
  }
  int output_port(std::string_view n) const override {
    for (size_t i = 0; i < contract_.outputs().size(); ++i)
      if (contract_.outputs()[i].name == n) return static_cast<int>(i);
    throw Error("FakeContext: no output " + std::string(n));
  }

  std::vector<std::string> warnings;

 private:
  Contract contract_;
  std::string name_;
  Params params_;
  Timestamp ts_;
  std::vector<Packet> inputs_;
  std::vector<std::vector<Packet>> outputs_;
  std::map<std::string, int64_t> counters_;
};

}  // namespace omni::testing

namespace omni::testing {

// A source node emitting a fixed list of packets (set before the graph runs), for graph tests.
class VectorSource : public Node {
 public:
  static constexpr Output<AnyType> kOut{"out", "the packets"};
  static Contract contract() { return Contract().doc("test source").output(kOut); }
  explicit VectorSource(std::vector<Packet> packets) : packets_(std::move(packets)) {}
  Flow process(Context& ctx) override {
    if (next_ >= packets_.size()) return Flow::kDone;
    ctx.emit(kOut, packets_[next_++]);
    return Flow::kContinue;
  }

 private:
  std::vector<Packet> packets_;
  size_t next_ = 0;
};

}  // namespace omni::testing
