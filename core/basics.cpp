// Small out-of-line pieces of the core value types: timestamps, type names, packets, params,
// contracts and the registry.
#include <cxxabi.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "core/contract.h"
#include "core/packet.h"
#include "core/params.h"
#include "core/registry.h"
#include "core/timestamp.h"
#include "core/type_name.h"

namespace omni {

std::string Timestamp::to_string() const {
  if (us_ == kUnset) return "unset";
  if (us_ == kPreStream) return "pre_stream";
  if (us_ == kPostStream) return "post_stream";
  if (us_ == kDone) return "done";
  char buf[64];
  const int64_t a = us_ < 0 ? -us_ : us_;
  std::snprintf(buf, sizeof buf, "%s%lld.%06llds", us_ < 0 ? "-" : "",
                static_cast<long long>(a / 1000000), static_cast<long long>(a % 1000000));
  return buf;
}

std::string demangle(const char* mangled) {
  int status = 0;
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string out = (status == 0 && d) ? d : mangled;
  std::free(d);
  return out;
}

void Packet::throw_type_error(const TypeId& wanted) const {
  if (!type_) {
    throw TypeError("packet is empty (timestamp " + ts_.to_string() + "), but was read as " +
                    wanted.name);
  }
  throw TypeError("packet at " + ts_.to_string() + " holds " + type_->name + ", but was read as " +
                  wanted.name);
}

// ---- params ----

const char* param_type_name(ParamType t) {
  switch (t) {
    case ParamType::kBool:
      return "bool";
    case ParamType::kInt:
      return "int64";
    case ParamType::kDouble:
      return "double";
    case ParamType::kString:
      return "string";
    case ParamType::kStringList:
      return "list<string>";
  }
  return "?";
}

ParamType param_type_of(const ParamValue& v) { return static_cast<ParamType>(v.index()); }

static std::string quote_if_needed(const std::string& s) {
  bool plain = !s.empty();
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
          c == '/'))
      plain = false;
  }
  if (plain) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string param_to_string(const ParamValue& v) {
  switch (param_type_of(v)) {
    case ParamType::kBool:
      return std::get<bool>(v) ? "true" : "false";
    case ParamType::kInt:
      return std::to_string(std::get<int64_t>(v));
    case ParamType::kDouble: {
      std::ostringstream os;
      os.precision(17);
      os << std::get<double>(v);
      std::string s = os.str();
      if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
      return s;
    }
    case ParamType::kString:
      return quote_if_needed(std::get<std::string>(v));
    case ParamType::kStringList: {
      std::string s = "[";
      const auto& l = std::get<StringList>(v);
      for (size_t i = 0; i < l.size(); ++i) s += (i ? ", " : "") + quote_if_needed(l[i]);
      return s + "]";
    }
  }
  return "?";
}

static std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

ParamValue parse_param(ParamType t, const std::string& raw) {
  const std::string text = trim(raw);
  auto fail = [&]() -> ParamValue {
    throw ConfigError("'" + raw + "' is not a valid " + param_type_name(t) +
                      (t == ParamType::kBool ? " (expected true or false)" : ""));
  };
  switch (t) {
    case ParamType::kBool: {
      std::string l = text;
      std::transform(l.begin(), l.end(), l.begin(), ::tolower);
      if (l == "true" || l == "yes" || l == "on" || l == "1") return true;
      if (l == "false" || l == "no" || l == "off" || l == "0") return false;
      return fail();
    }
    case ParamType::kInt: {
      if (text.empty()) return fail();
      errno = 0;
      char* end = nullptr;
      long long v = std::strtoll(text.c_str(), &end, 0);
      if (errno != 0 || *end != '\0') return fail();
      return int64_t{v};
    }
    case ParamType::kDouble: {
      if (text.empty()) return fail();
      errno = 0;
      char* end = nullptr;
      double v = std::strtod(text.c_str(), &end);
      if (errno != 0 || *end != '\0') return fail();
      return v;
    }
    case ParamType::kString: {
      if (text.size() >= 2 && (text.front() == '"' || text.front() == '\'') &&
          text.back() == text.front())
        return text.substr(1, text.size() - 2);
      return raw;
    }
    case ParamType::kStringList: {
      std::string body = text;
      if (!body.empty() && body.front() == '[') {
        if (body.back() != ']') return fail();
        body = body.substr(1, body.size() - 2);
      }
      StringList out;
      if (trim(body).empty()) return out;
      std::stringstream ss(body);
      std::string item;
      while (std::getline(ss, item, ',')) {
        item = trim(item);
        if (item.size() >= 2 && (item.front() == '"' || item.front() == '\'') &&
            item.back() == item.front())
          item = item.substr(1, item.size() - 2);
        out.push_back(item);
      }
      return out;
    }
  }
  return fail();
}

const ParamValue& Params::value(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) {
    std::string known;
    for (const auto& [k, v] : values_) known += (known.empty() ? "" : ", ") + k;
    throw ConfigError("no parameter '" + name + "' (known: " + (known.empty() ? "none" : known) +
                      ")");
  }
  return it->second;
}

double Params::get_double(const std::string& name) const {
  const ParamValue& v = value(name);
  if (const double* d = std::get_if<double>(&v)) return *d;
  if (const int64_t* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  throw_wrong_type(name, v);
}

void Params::throw_wrong_type(const std::string& name, const ParamValue& v) const {
  throw ConfigError("parameter '" + name + "' holds " + param_type_name(param_type_of(v)) + " " +
                    param_to_string(v) + ", read as another type");
}

// ---- contract ----

const char* error_kind_name(ErrorKind k) {
  switch (k) {
    case ErrorKind::kInput:
      return "input";
    case ErrorKind::kConfig:
      return "config";
    case ErrorKind::kInternal:
      return "internal";
    case ErrorKind::kCancelled:
      return "cancelled";
    case ErrorKind::kDeadlock:
      return "deadlock";
  }
  return "?";
}

const char* policy_name(InputPolicy p) { return p == InputPolicy::kSync ? "sync" : "immediate"; }

int Contract::input_index(const std::string& name) const {
  for (size_t i = 0; i < inputs_.size(); ++i)
    if (inputs_[i].name == name) return static_cast<int>(i);
  return -1;
}
int Contract::output_index(const std::string& name) const {
  for (size_t i = 0; i < outputs_.size(); ++i)
    if (outputs_[i].name == name) return static_cast<int>(i);
  return -1;
}
const ParamSpec* Contract::find_param(const std::string& name) const {
  for (const auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

// ---- registry ----

void Registry::add(NodeType type) {
  if (type.name.empty()) throw ConfigError("cannot register a node type with an empty name");
  if (types_.count(type.name)) {
    throw ConfigError("node type '" + type.name + "' is registered twice");
  }
  std::string name = type.name;
  types_.emplace(std::move(name), std::move(type));
}

const NodeType& Registry::get(const std::string& name) const {
  auto it = types_.find(name);
  if (it != types_.end()) return it->second;
  std::string known;
  for (const auto& [k, v] : types_) known += (known.empty() ? "" : ", ") + k;
  throw ConfigError("unknown node type '" + name +
                    "'; known types: " + (known.empty() ? "(none registered)" : known));
}

std::vector<std::string> Registry::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : types_) out.push_back(k);
  return out;
}

}  // namespace omni
