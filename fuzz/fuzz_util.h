// Shared by the libFuzzer targets: what counts as a clean rejection, and splitting one input into
// the several files or fields an entry point reads.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace omni::fuzz {

// Runs `f`; the clear errors a bad input may give (InputError, ConfigError) are the expected
// outcome. Anything else (another exception, a crash, a sanitizer report) escapes to libFuzzer and
// is a finding.
template <class F>
void expect_clean_errors(F&& f) {
  try {
    f();
  } catch (const omni::InputError&) {
  } catch (const omni::ConfigError&) {
  }
}

// Splits the input at NUL bytes into at most `n` parts (the last part keeps any further NULs);
// missing parts are empty.
inline std::vector<std::string> split_parts(const uint8_t* data, size_t size, size_t n) {
  std::vector<std::string> parts(n);
  std::string_view s(reinterpret_cast<const char*>(data), size);
  for (size_t i = 0; i < n; ++i) {
    const size_t nul = i + 1 < n ? s.find('\0') : std::string_view::npos;
    parts[i] = std::string(s.substr(0, nul));
    if (nul == std::string_view::npos) break;
    s.remove_prefix(nul + 1);
  }
  return parts;
}

// A directory of this process for entry points that read files by name (removed at exit).
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path base = std::filesystem::exists("/dev/shm")
                                     ? std::filesystem::path("/dev/shm")
                                     : std::filesystem::temp_directory_path();
    std::filesystem::path d = base / ("omni-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    static const std::string keep = d.string();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return d;
  }();
  return dir;
}

inline void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace omni::fuzz
