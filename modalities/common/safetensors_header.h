// The safetensors header, parsed and validated over the file's bytes (torch-free: used by
// SafeTensorsFile and fuzzed on its own, fuzz/fuzz_safetensors.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace omni {

// A header this large is not a weights file; refusing it bounds the JSON parser's memory.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

struct SafetensorsEntry {
  std::string dtype;         // "F32", "BF16", ... (one of safetensors_dtype_names())
  int64_t element_size = 0;  // bytes per element
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range relative to the data region
};

struct SafetensorsHeader {
  uint64_t data_offset = 0;  // 8 + header length: where the data region starts in the file
  std::map<std::string, SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;
};

// The dtypes read and written, as "F64, F32, ..." for messages, and one's element size (0 when
// unknown).
const std::string& safetensors_known_dtypes();
int64_t safetensors_dtype_size(const std::string& name);

// Parses the header of a whole safetensors file `bytes` [0, size) and checks it against the file:
// header length bound and inside the file, JSON well-formed, known dtype, shape x dtype size ==
// byte range (no overflow), ranges inside the data region and not overlapping. Every problem is an
// InputError "safetensors file '<path>': ...". Allocates nothing in proportion to what the header
// claims, only to what it contains.
SafetensorsHeader parse_safetensors_header(const unsigned char* bytes, size_t size,
                                           const std::string& path);

}  // namespace omni
