// The "shapes & voices" task (DESIGN.md section 5): labels, the four questions with their exact
// strings, answers from a clip's ground truth, and the clip manifest (JSON lines).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace omni::demo {

inline constexpr std::array<const char*, 3> kShapes = {"circle", "square", "triangle"};
inline constexpr std::array<const char*, 4> kColors = {"red", "green", "blue", "yellow"};
// Nominal RGB of each colour; clips jitter each channel by up to 20.
inline constexpr std::array<std::array<int, 3>, 4> kColorRgb = {
    {{220, 40, 40}, {40, 200, 60}, {50, 80, 230}, {230, 210, 40}}};

enum class Question { kShape = 0, kColor = 1, kSpoken = 2, kMatch = 3 };
inline constexpr int kNumQuestions = 4;
inline constexpr std::array<const char*, 4> kQuestionText = {
    "what shape is it?", "what color is the shape?", "which color was spoken?",
    "does the spoken color match the shape?"};
inline constexpr std::array<const char*, 4> kQuestionKey = {"shape", "color", "spoken", "match"};
// Whether answering needs the audio track.
inline constexpr std::array<bool, 4> kQuestionNeedsAudio = {false, false, true, true};

// Question index for its exact text (after trimming and lower-casing), or -1.
int question_index(const std::string& text);

// Ground truth of one clip, as make_clips writes it.
struct ClipInfo {
  std::string file;  // relative to the manifest's directory
  int index = 0;
  int shape = 0;   // into kShapes
  int color = 0;   // into kColors (the shape's colour)
  int spoken = 0;  // into kColors (the spoken word)
  bool match() const { return color == spoken; }
  double speech_start_s = 0;
  int words_per_minute = 0, pitch = 0;
  double size_px = 0;
  int background = 0;
  double noise_sigma = 0;
  std::array<int, 3> rgb{};               // the jittered fill colour
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // bbox centre at t = 0 and at the last frame
};

// The answer text the model must produce for question q about this clip.
std::string answer_for(const ClipInfo& c, Question q);

std::string clip_to_json(const ClipInfo& c);
// Reads manifest.jsonl; `file` entries are made absolute (joined with the manifest's directory).
// Throws InputError naming the file and line on malformed input.
std::vector<ClipInfo> read_manifest(const std::string& path);

}  // namespace omni::demo
