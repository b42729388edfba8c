// Node parameters: declared with name, type, default and doc; values come from YAML, --set or C++.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "core/error.h"

namespace omni {

using StringList = std::vector<std::string>;
// The parameter value types. YAML scalars and `--set` strings are converted to the declared type.
using ParamValue = std::variant<bool, int64_t, double, std::string, StringList>;

enum class ParamType { kBool, kInt, kDouble, kString, kStringList };
// "bool", "int64", "double", "string", "list<string>".
const char* param_type_name(ParamType t);
ParamType param_type_of(const ParamValue& v);
// Renders a value the way YAML would accept it back.
std::string param_to_string(const ParamValue& v);
// Parses `text` as type `t` (for --set NODE.PARAM=VALUE); throws ConfigError naming the type.
ParamValue parse_param(ParamType t, const std::string& text);

struct ParamSpec {
  std::string name;
  ParamType type;
  ParamValue default_value;
  std::string doc;
};

// The resolved parameters of one node instance: every declared parameter has a value.
class Params {
 public:
  Params() = default;
  explicit Params(std::map<std::string, ParamValue> values) : values_(std::move(values)) {}

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  const ParamValue& value(const std::string& name) const;

  bool get_bool(const std::string& name) const { return as<bool>(name); }
  int64_t get_int(const std::string& name) const { return as<int64_t>(name); }
  double get_double(const std::string& name) const;  // also accepts an int value
  const std::string& get_string(const std::string& name) const { return as<std::string>(name); }
  const StringList& get_list(const std::string& name) const { return as<StringList>(name); }

  void set(const std::string& name, ParamValue v) { values_[name] = std::move(v); }
  const std::map<std::string, ParamValue>& values() const { return values_; }

 private:
  template <class T>
  const T& as(const std::string& name) const {
    const ParamValue& v = value(name);
    if (const T* p = std::get_if<T>(&v)) return *p;
    throw_wrong_type(name, v);
  }
  [[noreturn]] void throw_wrong_type(const std::string& name, const ParamValue& v) const;
  std::map<std::string, ParamValue> values_;
};

}  // namespace omni
