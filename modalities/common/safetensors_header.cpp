// parse_safetensors_header (see safetensors_header.h).
#include "modalities/common/safetensors_header.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/error.h"

namespace omni {
namespace {

struct DtypeSize {
  const char* name;
  int64_t size;
};

constexpr DtypeSize kDtypes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
    {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1},
};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw InputError("safetensors file '" + path + "': " + what);
}

}  // namespace

const std::string& safetensors_known_dtypes() {
  static const std::string kList = [] {
    std::string s;
    for (const auto& d : kDtypes) s += std::string(s.empty() ? "" : ", ") + d.name;
    return s;
  }();
  return kList;
}

int64_t safetensors_dtype_size(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return d.size;
  return 0;
}

SafetensorsHeader parse_safetensors_header(const unsigned char* bytes, size_t size,
                                           const std::string& path) {
  if (size < 8)
    fail(path, "file is " + std::to_string(size) +
                   " bytes, shorter than the 8-byte header length (truncated?)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];  // little endian
  if (header_len > kMaxSafetensorsHeaderBytes)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the bound of " +
                   std::to_string(kMaxSafetensorsHeaderBytes) + " bytes");
  if (header_len > size - 8)
    fail(path, "header length " + std::to_string(header_len) + " runs past the end of the " +
                   std::to_string(size) + "-byte file (truncated?)");
  SafetensorsHeader out;
  out.data_offset = 8 + header_len;
  const uint64_t data_size = size - out.data_offset;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(reinterpret_cast<const char*>(bytes + 8),
                                   reinterpret_cast<const char*>(bytes + 8 + header_len));
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");

  std::vector<std::pair<std::pair<uint64_t, uint64_t>, std::string>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail(path, "__metadata__ value for '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!v.is_object()) fail(path, where + "entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || sh == v.end() || off == v.end())
      fail(path, where + "entry needs dtype, shape and data_offsets");
    if (!dt->is_string()) fail(path, where + "dtype is not a string");
    SafetensorsEntry e;
    e.dtype = dt->get<std::string>();
    e.element_size = safetensors_dtype_size(e.dtype);
    if (e.element_size == 0)
      fail(path,
           where + "unknown dtype '" + e.dtype + "' (known: " + safetensors_known_dtypes() + ")");
    if (!sh->is_array()) fail(path, where + "shape is not an array");
    // Count elements with overflow checks: a lying shape must not wrap around to a small size.
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        fail(path, where + "shape has a non-integer or negative dimension");
      uint64_t dim = d.get<uint64_t>();
      if (dim > uint64_t(std::numeric_limits<int64_t>::max())) overflow = true;
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim) overflow = true;
      numel *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      fail(path, where + "data_offsets must be two non-negative integers");
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    if (e.end < e.begin)
      fail(path, where + "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                     "] end before they begin");
    if (e.end > data_size)
      fail(path, where + "data_offsets end " + std::to_string(e.end) +
                     " lies outside the data region of " + std::to_string(data_size) +
                     " bytes (truncated file or lying offsets)");
    const uint64_t esize = static_cast<uint64_t>(e.element_size);
    if (overflow || numel > std::numeric_limits<uint64_t>::max() / esize ||
        numel * esize != e.end - e.begin) {
      std::string shape_s;
      for (auto d : e.shape) shape_s += (shape_s.empty() ? "" : ",") + std::to_string(d);
      fail(path, where + "shape [" + shape_s + "] x " + e.dtype + " needs " +
                     (overflow ? std::string("more than 2^64") : std::to_string(numel * esize)) +
                     " bytes but data_offsets give " + std::to_string(e.end - e.begin));
    }
    ranges.push_back({{e.begin, e.end}, name});
    out.entries.emplace(name, std::move(e));
  }
  std::sort(ranges.begin(), ranges.end());
  // Sweep in start order keeping the range that reaches furthest; empty tensors occupy no bytes.
  const std::pair<std::pair<uint64_t, uint64_t>, std::string>* reach = nullptr;
  for (const auto& r : ranges) {
    if (r.first.first == r.first.second) continue;
    if (reach && r.first.first < reach->first.second)
      fail(path,
           "tensors '" + reach->second + "' and '" + r.second + "' have overlapping byte ranges");
    if (!reach || r.first.second > reach->first.second) reach = &r;
  }
  return out;
}

}  // namespace omni
