// The manifest reader: JSON Lines split into lines (length-capped), each parsed into a
// ManifestItem or an error record. Input: the manifest file.
#include <sstream>
#include <string>

#include "core/manifest.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  omni::fuzz::expect_clean_errors([&] {
    for (auto& line : omni::read_manifest_lines(in, "fuzz.jsonl")) {
      omni::ManifestItem item = omni::parse_manifest_item(line.index, std::move(line.text));
      if (item.error.empty())
        (void)item.value.dump();
      else
        (void)omni::error_record(item.index, item.error).dump();
    }
  });
  return 0;
}
