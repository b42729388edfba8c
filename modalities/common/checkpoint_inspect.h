// `omnipipe inspect`: the summary of a Hugging Face checkpoint directory as JSON (schema in
// docs/ARCHITECTURE.md section 2a) or text. This header stays free of libtorch.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace omni {

// Opens the directory (omni::Checkpoint: every header validated, no tensor bytes read) and
// summarises it. Throws InputError for a malformed directory.
nlohmann::json inspect_checkpoint(const std::string& dir);
// The same summary as aligned, human-readable lines.
std::string inspect_to_text(const nlohmann::json& summary);

}  // namespace omni
