// safetensors: the header parsed and checked against the file, then every tensor's bytes read
// through the view SafeTensorsFile::get() would make (data_offset + begin .. end). Input: the file.
#include <cstdint>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "modalities/common/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size copy, so ASan sees any read past the end of the "file".
  std::vector<unsigned char> file(data, data + size);
  omni::fuzz::expect_clean_errors([&] {
    const omni::SafetensorsHeader h = omni::parse_safetensors_header(file.data(), size, "fuzz");
    volatile uint64_t sum = 0;
    for (const auto& [name, e] : h.entries) {
      uint64_t numel = 1;
      for (int64_t d : e.shape) numel *= static_cast<uint64_t>(d);
      if (numel * static_cast<uint64_t>(e.element_size) != e.end - e.begin) __builtin_trap();
      const unsigned char* p = file.data() + h.data_offset;
      for (uint64_t i = e.begin; i < e.end; ++i) sum = sum + p[i];
    }
  });
  return 0;
}
