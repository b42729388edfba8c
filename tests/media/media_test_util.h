// Helpers for the media tests: the generated sample folder and ffprobe/ffmpeg as references.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace omni::testing {

// Runs a shell command and returns its stdout.
inline std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return out;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

// The sample folder in the build tree, generated on first use by scripts/make_samples.
inline const std::string& samples_dir() {
  static const std::string dir = [] {
    std::string d = std::string(OMNI_BINARY_DIR) + "/samples/media";
    std::string cmd = std::string(OMNI_SOURCE_DIR) + "/scripts/make_samples '" + d + "' >/dev/null";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "make_samples failed\n");
    return d;
  }();
  return dir;
}

inline std::string sample(const std::string& name) { return samples_dir() + "/" + name; }

// ffprobe's JSON for a file (-show_format -show_streams).
inline nlohmann::json ffprobe_json(const std::string& path) {
  std::string out =
      run_command("ffprobe -v error -show_format -show_streams -of json '" + path + "'");
  return nlohmann::json::parse(out, nullptr, false);
}

// best_effort_timestamp_time of every decoded frame of the first video stream, in seconds.
inline std::vector<double> ffprobe_frame_times(const std::string& path,
                                               const std::string& sel = "v:0") {
  std::string out =
      run_command("ffprobe -v error -select_streams " + sel +
                  " -show_entries frame=best_effort_timestamp_time -of csv=p=0 '" + path + "'");
  std::vector<double> t;
  size_t pos = 0;
  while (pos < out.size()) {
    size_t nl = out.find('\n', pos);
    if (nl == std::string::npos) nl = out.size();
    std::string line = out.substr(pos, nl - pos);
    line = line.substr(0, line.find(','));  // drop side-data columns
    if (!line.empty() && line != "N/A") t.push_back(std::stod(line));
    pos = nl + 1;
  }
  return t;
}

}  // namespace omni::testing
