// A node type's static contract: doc, typed input/output ports, parameters, policy (MediaPipe
// api2 style). The graph checks every connection against it when the graph is built.
//
// Ports and parameters are declared once, as typed descriptors of the node class, and the same
// objects serve the contract and the calls (Context::input / emit / param in core/node.h):
//
//   class Scale : public omni::Node {
//    public:
//     static constexpr omni::Input<int64_t> kIn{"in", "values"};
//     static constexpr omni::Output<int64_t> kOut{"out", "values * factor"};
//     static constexpr omni::Param<int64_t> kFactor{"factor", 2, "multiplier"};
//     static omni::Contract contract() {
//       return omni::Contract().doc("...").input(kIn).output(kOut).param(kFactor);
//     }
//     void open(omni::Context& ctx) override { factor_ = ctx.param(kFactor); }
//     omni::Flow process(omni::Context& ctx) override {
//       const auto in = ctx.input(kIn);
//       ctx.emit(kOut, in.get() * factor_, in.timestamp());  // a std::string would not compile
//       return omni::Flow::kContinue;
//     }
//    ...
//
// The string forms (input<T>("in", doc), param("factor", 2, doc), ctx.params().get_int("factor"))
// still work, for nodes written before the descriptors.
#pragma once

#include <concepts>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/params.h"
#include "core/type_name.h"

namespace omni {

// ---- typed descriptors ------------------------------------------------------------------------

// An input port carrying T (AnyType: any payload). Declare it `static constexpr` in the node.
template <class T>
class Input {
 public:
  using Type = T;
  constexpr explicit Input(std::string_view name, std::string_view doc = {})
      : name(name), doc(doc) {}
  std::string_view name, doc;
  bool optional = false;  // may stay unconnected (OptionalInput)

 protected:
  constexpr Input(std::string_view name, std::string_view doc, bool optional)
      : name(name), doc(doc), optional(optional) {}
};

// An input that may stay unconnected; process() sees an empty packet there.
template <class T>
class OptionalInput : public Input<T> {
 public:
  constexpr explicit OptionalInput(std::string_view name, std::string_view doc = {})
      : Input<T>(name, doc, true) {}
};

// An output port carrying T (AnyType: any payload, checked at run time only).
template <class T>
class Output {
 public:
  using Type = T;
  constexpr explicit Output(std::string_view name, std::string_view doc = {})
      : name(name), doc(doc) {}
  std::string_view name, doc;
};

// What each parameter C++ type is declared as, how its default is stored in a constexpr
// descriptor, and what Context::param returns. Param<int> is an int64 parameter whose value is
// checked to fit an int when read.
template <class T>
struct ParamTraits;
template <>
struct ParamTraits<bool> {
  static constexpr ParamType kType = ParamType::kBool;
  using Default = bool;
  using Read = bool;
};
template <>
struct ParamTraits<int64_t> {
  static constexpr ParamType kType = ParamType::kInt;
  using Default = int64_t;
  using Read = int64_t;
};
template <>
struct ParamTraits<int> {
  static constexpr ParamType kType = ParamType::kInt;
  using Default = int;
  using Read = int;
};
template <>
struct ParamTraits<double> {
  static constexpr ParamType kType = ParamType::kDouble;
  using Default = double;
  using Read = double;
};
template <>
struct ParamTraits<std::string> {
  static constexpr ParamType kType = ParamType::kString;
  using Default = std::string_view;
  using Read = const std::string&;
};
template <>
struct ParamTraits<StringList> {
  static constexpr ParamType kType = ParamType::kStringList;
  using Default = std::span<const std::string_view>;  // a constexpr array, or {} for none
  using Read = const StringList&;
};

template <class T>
concept ParamValueType = requires {
  ParamTraits<T>::kType;
};

// A parameter: name, default, one line of documentation; its type is T (bool, int, int64_t,
// double, std::string or StringList). Declare it `static constexpr` (or `static inline const` when
// the default comes from a non-constexpr options struct) and read it with ctx.param(kName).
template <ParamValueType T>
class Param {
 public:
  using Type = T;
  using Default = typename ParamTraits<T>::Default;
  using Read = typename ParamTraits<T>::Read;
  static constexpr ParamType kType = ParamTraits<T>::kType;

  constexpr Param(std::string_view name, Default default_value, std::string_view doc)
      : name(name), default_value(default_value), doc(doc) {}
  // Param<bool>{"flag", "false", ...} and the like would convert silently: refuse them.
  template <class D>
  requires(std::same_as<T, bool> && !std::same_as<std::remove_cvref_t<D>, bool>)
      Param(std::string_view, D, std::string_view)
  = delete;

  std::string_view name;
  Default default_value;
  std::string_view doc;

  ParamSpec spec() const {
    if constexpr (std::same_as<T, std::string>) {
      return {std::string(name), kType, std::string(default_value), std::string(doc)};
    } else if constexpr (std::same_as<T, StringList>) {
      return {std::string(name), kType, StringList(default_value.begin(), default_value.end()),
              std::string(doc)};
    } else if constexpr (std::same_as<T, int>) {
      return {std::string(name), kType, int64_t{default_value}, std::string(doc)};
    } else {
      return {std::string(name), kType, default_value, std::string(doc)};
    }
  }
  // The value in `p` (Context::param is the usual way). ConfigError naming the parameter when
  // it holds another type, or an int parameter's value does not fit an int.
  Read get(const Params& p) const {
    const std::string key(name);
    if constexpr (std::same_as<T, bool>) {
      return p.get_bool(key);
    } else if constexpr (std::same_as<T, int64_t>) {
      return p.get_int(key);
    } else if constexpr (std::same_as<T, int>) {
      const int64_t v = p.get_int(key);
      if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
        throw ConfigError("parameter '" + key + "' is " + std::to_string(v) +
                          ", outside the range of int");
      return static_cast<int>(v);
    } else if constexpr (std::same_as<T, double>) {
      return p.get_double(key);
    } else if constexpr (std::same_as<T, std::string>) {
      return p.get_string(key);
    } else {
      return p.get_list(key);
    }
  }
};

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
  // Address of the declaring descriptor's name text (null for string-declared ports): lets a
  // Context find a descriptor's port with one pointer comparison before comparing names.
  const char* key = nullptr;
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
  // Typed descriptors (see the top of this file).
  template <class T>
  Contract& input(const Input<T>& port) {
    inputs_.push_back({std::string(port.name), type_id<T>(), std::string(port.doc), port.optional,
                       port.name.data()});
    return *this;
  }
  template <class T>
  Contract& output(const Output<T>& port) {
    outputs_.push_back(
        {std::string(port.name), type_id<T>(), std::string(port.doc), false, port.name.data()});
    return *this;
  }
  template <class T>
  Contract& param(const Param<T>& p) {
    params_.push_back(p.spec());
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
