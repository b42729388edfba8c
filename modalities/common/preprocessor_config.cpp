#include "modalities/common/preprocessor_config.h"

#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace omni {

nlohmann::json read_preprocessor_config(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path file = path;
  if (fs::is_directory(file, ec)) file /= "preprocessor_config.json";
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError("cannot open preprocessor config " + file.string());
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError("preprocessor config " + file.string() + " is not valid JSON: " + e.what());
  }
  if (!j.is_object()) {
    throw InputError("preprocessor config " + file.string() + " is not a JSON object");
  }
  return j;
}

namespace {

const nlohmann::json* lookup(const nlohmann::json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return nullptr;
  return &*it;
}

[[noreturn]] void bad(const char* key, const char* expected, const nlohmann::json& v) {
  throw ConfigError(std::string("preprocessor config: '") + key + "' must be " + expected +
                    ", got " + v.dump());
}

}  // namespace

bool config_int(const nlohmann::json& cfg, const char* key, int64_t& out) {
  const nlohmann::json* v = lookup(cfg, key);
  if (v == nullptr) return false;
  if (v->is_number_unsigned()) {
    if (v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      bad(key, "an integer below 2^63", *v);
    out = static_cast<int64_t>(v->get<uint64_t>());
  } else if (v->is_number_integer()) {
    out = v->get<int64_t>();
  } else if (v->is_number_float()) {
    // Range first: converting a double outside int64's range is undefined behaviour.
    const double d = v->get<double>();
    if (!(d >= -9.2e18 && d <= 9.2e18) || d != static_cast<double>(static_cast<int64_t>(d)))
      bad(key, "an integer", *v);
    out = static_cast<int64_t>(d);
  } else {
    bad(key, "an integer", *v);
  }
  return true;
}

bool config_int(const nlohmann::json& cfg, const char* key, int& out) {
  int64_t v = 0;
  if (!config_int(cfg, key, v)) return false;
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    bad(key, "an integer of 32 bits", cfg.at(key));
  out = static_cast<int>(v);
  return true;
}

bool config_number(const nlohmann::json& cfg, const char* key, double& out) {
  const nlohmann::json* v = lookup(cfg, key);
  if (v == nullptr) return false;
  if (!v->is_number()) bad(key, "a number", *v);
  out = v->get<double>();
  return true;
}

bool config_bool(const nlohmann::json& cfg, const char* key, bool& out) {
  const nlohmann::json* v = lookup(cfg, key);
  if (v == nullptr) return false;
  if (!v->is_boolean()) bad(key, "true or false", *v);
  out = v->get<bool>();
  return true;
}

}  // namespace omni
