// A node type's static contract: doc, typed input/output ports, parameters, policy (MediaPipe
// api2 style). The graph checks every connection against it when the graph is built.
#pragma once

#include <string>
#include <vector>

#include "core/params.h"
#include "core/type_name.h"

namespace omni {

enum class InputPolicy {
  // Process timestamp T once every connected input has a packet at T or its bound is past T.
  kSync,
  // Process each packet as it arrives (one input packet per process call).
  kImmediate,
};
const char* policy_name(InputPolicy p);

struct PortSpec {
  std::string name;
  TypeId type;
  std::string doc;
  bool optional = false;  // inputs only: may stay unconnected
};

class Contract {
 public:
  Contract& doc(std::string text) {
    doc_ = std::move(text);
    return *this;
  }
  template <class T>
  Contract& input(std::string name, std::string doc = {}, bool optional = false) {
    inputs_.push_back({std::move(name), type_id<T>(), std::move(doc), optional});
    return *this;
  }
  template <class T>
  Contract& optional_input(std::string name, std::string doc = {}) {
    return input<T>(std::move(name), std::move(doc), true);
  }
  template <class T>
  Contract& output(std::string name, std::string doc = {}) {
    outputs_.push_back({std::move(name), type_id<T>(), std::move(doc), false});
    return *this;
  }
  Contract& param(std::string name, bool def, std::string doc) {
    return add_param(std::move(name), ParamType::kBool, def, std::move(doc));
  }
  Contract& param(std::string name, int def, std::string doc) {
    return add_param(std::move(name), ParamType::kInt, int64_t{def}, std::move(doc));
  }
  Contract& param(std::string name, int64_t def, std::string doc) {
    return add_param(std::move(name), ParamType::kInt, def, std::move(doc));
  }
  Contract& param(std::string name, double def, std::string doc) {
    return add_param(std::move(name), ParamType::kDouble, def, std::move(doc));
  }
  Contract& param(std::string name, const char* def, std::string doc) {
    return add_param(std::move(name), ParamType::kString, std::string(def), std::move(doc));
  }
  Contract& param(std::string name, std::string def, std::string doc) {
    return add_param(std::move(name), ParamType::kString, std::move(def), std::move(doc));
  }
  Contract& param(std::string name, StringList def, std::string doc) {
    return add_param(std::move(name), ParamType::kStringList, std::move(def), std::move(doc));
  }
  Contract& policy(InputPolicy p) {
    policy_ = p;
    return *this;
  }
  // A reentrant node may run several process() calls at once (it must be thread-safe).
  Contract& reentrant(bool r = true) {
    reentrant_ = r;
    return *this;
  }

  const std::string& doc() const { return doc_; }
  const std::vector<PortSpec>& inputs() const { return inputs_; }
  const std::vector<PortSpec>& outputs() const { return outputs_; }
  const std::vector<ParamSpec>& params() const { return params_; }
  InputPolicy policy() const { return policy_; }
  bool is_reentrant() const { return reentrant_; }
  bool is_source() const { return inputs_.empty(); }
  // Index of a port, or -1.
  int input_index(const std::string& name) const;
  int output_index(const std::string& name) const;
  const ParamSpec* find_param(const std::string& name) const;

 private:
  Contract& add_param(std::string name, ParamType t, ParamValue def, std::string doc) {
    params_.push_back({std::move(name), t, std::move(def), std::move(doc)});
    return *this;
  }
  std::string doc_;
  std::vector<PortSpec> inputs_, outputs_;
  std::vector<ParamSpec> params_;
  InputPolicy policy_ = InputPolicy::kSync;
  bool reentrant_ = false;
};

}  // namespace omni
