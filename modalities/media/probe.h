// probe: what a media file contains (container, duration, streams), as the DESIGN.md 2a JSON
// that `omnipipe probe FILE --json` prints, or as readable text.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace omni {

struct ProbeOptions {
  std::string allowed_protocols = "file,pipe";
  bool allow_nested = false;  // see MediaReaderOptions::allow_nested
  // When set, these bytes are probed and `path` only names them (see MediaReaderOptions::data).
  std::shared_ptr<const std::string> data = nullptr;
};

// {"path", "format", "duration_s", "streams": [{"index", "type", "codec", "width", "height",
// "fps", "rotation", "sample_rate", "channels", "duration_s"}]}; fields that do not apply or are
// unknown are omitted. `rotation` is counter-clockwise degrees as ffprobe prints it (0 omitted).
// Throws InputError naming the file when it cannot be opened.
nlohmann::json probe_media(const std::string& path, const ProbeOptions& options = {});

// Human-readable rendering of probe_media's result.
std::string probe_to_text(const nlohmann::json& probe);

}  // namespace omni
