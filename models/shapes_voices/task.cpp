#include "models/shapes_voices/task.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace omni::demo {
namespace {

int index_of(const auto& names, const std::string& s, const std::string& what,
             const std::string& where) {
  for (size_t i = 0; i < names.size(); ++i)
    if (s == names[i]) return int(i);
  throw InputError(where + ": unknown " + what + " '" + s + "'");
}

}  // namespace

int question_index(const std::string& text) {
  std::string t;
  for (char ch : text) t += char(std::tolower(static_cast<unsigned char>(ch)));
  const auto b = t.find_first_not_of(" \t\r\n");
  const auto e = t.find_last_not_of(" \t\r\n");
  t = b == std::string::npos ? "" : t.substr(b, e - b + 1);
  for (int i = 0; i < kNumQuestions; ++i)
    if (t == kQuestionText[i]) return i;
  return -1;
}

std::string answer_for(const ClipInfo& c, Question q) {
  switch (q) {
    case Question::kShape:
      return kShapes[c.shape];
    case Question::kColor:
      return kColors[c.color];
    case Question::kSpoken:
      return kColors[c.spoken];
    case Question::kMatch:
      return c.match() ? "yes" : "no";
  }
  return "";
}

std::string clip_to_json(const ClipInfo& c) {
  nlohmann::ordered_json j;
  j["file"] = c.file;
  j["index"] = c.index;
  j["shape"] = kShapes[c.shape];
  j["color"] = kColors[c.color];
  j["spoken"] = kColors[c.spoken];
  j["match"] = c.match() ? "yes" : "no";
  j["speech_start_s"] = c.speech_start_s;
  j["words_per_minute"] = c.words_per_minute;
  j["pitch"] = c.pitch;
  j["size_px"] = c.size_px;
  j["background"] = c.background;
  j["noise_sigma"] = c.noise_sigma;
  j["rgb"] = c.rgb;
  j["path"] = {{"x0", c.x0}, {"y0", c.y0}, {"x1", c.x1}, {"y1", c.y1}};
  return j.dump();
}

std::vector<ClipInfo> read_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError("cannot open manifest '" + path + "'");
  const auto dir = std::filesystem::path(path).parent_path();
  std::vector<ClipInfo> clips;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    try {
      const auto j = nlohmann::json::parse(line);
      ClipInfo c;
      c.file = (dir / j.at("file").get<std::string>()).string();
      c.index = j.value("index", int(clips.size()));
      c.shape = index_of(kShapes, j.at("shape").get<std::string>(), "shape", where);
      c.color = index_of(kColors, j.at("color").get<std::string>(), "color", where);
      c.spoken = index_of(kColors, j.at("spoken").get<std::string>(), "spoken color", where);
      c.speech_start_s = j.value("speech_start_s", 0.0);
      c.words_per_minute = j.value("words_per_minute", 0);
      c.pitch = j.value("pitch", 0);
      c.size_px = j.value("size_px", 0.0);
      c.background = j.value("background", 0);
      c.noise_sigma = j.value("noise_sigma", 0.0);
      clips.push_back(std::move(c));
    } catch (const nlohmann::json::exception& e) {
      throw InputError(where + ": malformed manifest line: " + e.what());
    }
  }
  return clips;
}

}  // namespace omni::demo
