// Reads a Hugging Face `preprocessor_config.json` (a file, or a checkpoint directory holding one)
// into JSON. The processors take their options from it (QwenVisionOptions, WhisperFeatureOptions).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace omni {

// `path` is the JSON file or a directory with `preprocessor_config.json`. Throws InputError naming
// the file when it is missing, unreadable, not JSON or not a JSON object.
nlohmann::json read_preprocessor_config(const std::string& path);

// Typed lookups with errors that name the key and what was found (ConfigError). Absent or null
// keys leave `out` untouched and return false. An integer may be written as a float with no
// fraction (14.0); one that does not fit the destination is an error, never a wrapped value.
bool config_int(const nlohmann::json& cfg, const char* key, int64_t& out);
bool config_int(const nlohmann::json& cfg, const char* key, int& out);
bool config_number(const nlohmann::json& cfg, const char* key, double& out);
bool config_bool(const nlohmann::json& cfg, const char* key, bool& out);

}  // namespace omni
