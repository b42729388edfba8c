// End-to-end tests of the shipped shapes & voices model: held-out clips (a seed never used in
// training) go from the MP4 file through the full inference graph to a text answer.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/error.h"
#include "models/shapes_voices/pipeline.h"
#include "models/shapes_voices/task.h"

namespace fs = std::filesystem;
using namespace omni;
using namespace omni::demo;

namespace {

// Training used seeds 1 (train) and 2 (validation); these are disjoint from both.
constexpr uint64_t kHeldOutSeed = 20261127;
constexpr int kHeldOutClips = 48;  // 48 answers per question type

const std::string kModelDir = std::string(OMNI_SOURCE_DIR) + "/models/shapes_voices";
const fs::path kWork = fs::path(OMNI_BINARY_DIR) / "integration";

int run(const std::string& cmd) { return std::system(cmd.c_str()); }

// Generates clips once per build tree (cached under build/integration, shared by the tests).
// Written to a private folder and renamed into place, so tests run in parallel (ctest -j) never
// read a half-written set.
std::string make_clips(const std::string& name, int count, uint64_t seed,
                       const std::string& extra = "") {
  const fs::path dir = kWork / name;
  if (!fs::exists(dir / "manifest.jsonl")) {
    const fs::path tmp = kWork / (name + ".tmp" + std::to_string(::getpid()));
    fs::remove_all(tmp);
    const std::string cmd = std::string(MAKE_CLIPS_BIN) + " --quiet --out " + tmp.string() +
                            " --count " + std::to_string(count) + " --seed " +
                            std::to_string(seed) + " " + extra + " > /dev/null";
    if (run(cmd) != 0) throw std::runtime_error("failed: " + cmd);
    std::error_code ec;
    fs::rename(tmp, dir, ec);
    if (ec) fs::remove_all(tmp);  // another test made the same set first
  }
  return (dir / "manifest.jsonl").string();
}

struct Accuracy {
  std::array<int, 4> correct{}, total{};
  std::string failures;
  double of(int q) const { return total[q] ? double(correct[q]) / total[q] : 0.0; }
};

// Asks `questions` about every clip.
Accuracy evaluate(const Asker& asker, const std::vector<ClipInfo>& clips,
                  const std::vector<Question>& questions) {
  Accuracy a;
  for (const auto& c : clips)
    for (Question question : questions) {
      const int q = int(question);
      const std::string want = answer_for(c, question);
      const std::string got = asker.ask(c.file, kQuestionText[q]).answer;
      a.total[q]++;
      if (got == want)
        a.correct[q]++;
      else
        a.failures += "  " + c.file + " \"" + kQuestionText[q] + "\": got '" + got +
                      "', expected '" + want + "'\n";
    }
  for (Question question : questions) {
    const int q = int(question);
    std::printf("%-40s %d/%d = %.3f\n", kQuestionText[q], a.correct[q], a.total[q], a.of(q));
  }
  return a;
}

void expect_at_least(const Accuracy& a, const std::vector<Question>& questions, double bar) {
  for (Question question : questions) {
    const int q = int(question);
    EXPECT_GE(a.total[q], 40);
    EXPECT_GE(a.of(q), bar) << kQuestionText[q] << "\n" << a.failures;
  }
}

std::vector<ClipInfo> held_out_clips() {
  auto clips = read_manifest(make_clips("heldout", kHeldOutClips, kHeldOutSeed));
  EXPECT_EQ(int(clips.size()), kHeldOutClips);
  return clips;
}

// The held-out clips re-encoded at 640x360, 30 fps, 44.1 kHz stereo: the graph must normalise
// all of it. Written under temporary names and renamed, so an interrupted run leaves no partial
// file.
std::vector<ClipInfo> reencoded_clips() {
  auto clips = held_out_clips();
  const fs::path out = kWork / "reencoded";
  fs::create_directories(out);
  for (auto& c : clips) {
    const fs::path dst = out / fs::path(c.file).filename();
    if (!fs::exists(dst)) {
      const fs::path part = dst.string() + ".part" + std::to_string(::getpid());
      const std::string cmd = "ffmpeg -nostdin -loglevel error -y -i " + c.file +
                              " -vf scale=640:360 -r 30 -c:v libx264 -preset veryfast "
                              "-pix_fmt yuv420p -c:a aac -ar 44100 -ac 2 -f mp4 " +
                              part.string();
      if (run(cmd) != 0) throw std::runtime_error("failed: " + cmd);
      fs::rename(part, dst);
    }
    c.file = dst.string();
  }
  return clips;
}

// The issue's accuracy bars (models/shapes_voices/README.md has the measured figures): 95 % per
// question type on held-out clips, 90 % on the same clips re-encoded, each question type
// separately (the yes/no fusion question included).
const std::vector<Question> kAllQuestions = {Question::kShape, Question::kColor, Question::kSpoken,
                                             Question::kMatch};

TEST(ShapesVoices, HeldOutClipsReachNinetyFivePercentPerQuestion) {
  const Asker asker(kModelDir);
  expect_at_least(evaluate(asker, held_out_clips(), kAllQuestions), kAllQuestions, 0.95);
}

TEST(ShapesVoices, ReencodedLargerClipsReachNinetyPercent) {
  const Asker asker(kModelDir);
  expect_at_least(evaluate(asker, reencoded_clips(), kAllQuestions), kAllQuestions, 0.90);
}

// Clips without an audio track (one set shared by the two tests below).
constexpr int kNoAudioClips = 12;
std::vector<ClipInfo> no_audio_clips() {
  return read_manifest(make_clips("noaudio", kNoAudioClips, kHeldOutSeed + 2, "--no-audio"));
}

TEST(ShapesVoices, ClipWithoutAudioAnswersVisualQuestionsAndRefusesAudioOnes) {
  auto clips = no_audio_clips();
  clips.resize(2);
  const Asker asker(kModelDir);
  for (const auto& c : clips) {
    const auto r = asker.ask(c.file, kQuestionText[int(Question::kShape)]);
    EXPECT_FALSE(r.has_audio);
    EXPECT_EQ(r.tokens.count("audio") ? r.tokens.at("audio") : 0, 0);
    // A visual answer comes back (NoAudioClipsGetShapeRight checks that it is right).
    EXPECT_FALSE(r.answer.empty());
    for (Question q : {Question::kSpoken, Question::kMatch}) {
      try {
        asker.ask(c.file, kQuestionText[int(q)]);
        ADD_FAILURE() << "expected an error for an audio question on " << c.file;
      } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("no audio"), std::string::npos) << e.what();
      }
    }
  }
}

// The model was trained with the audio of some clips left out (train_demo --drop-audio), so the
// video-only layout the graph builds for such clips answers the shape question (11 of these 12
// clips with the shipped weights; 88 % on the validation clips, so this bar is close).
TEST(ShapesVoices, NoAudioClipsGetShapeRight) {
  const auto clips = no_audio_clips();
  const Asker asker(kModelDir);
  int correct = 0;
  std::string failures;
  for (const auto& c : clips) {
    const std::string want = answer_for(c, Question::kShape);
    const auto r = asker.ask(c.file, kQuestionText[int(Question::kShape)]);
    if (r.answer == want)
      ++correct;
    else
      failures += "  " + c.file + ": got '" + r.answer + "', expected '" + want + "'\n";
  }
  std::printf("no audio, \"%s\": %d/%d\n", kQuestionText[int(Question::kShape)], correct,
              int(clips.size()));
  EXPECT_GE(double(correct) / double(clips.size()), 0.90) << failures;
}

TEST(ShapesVoices, DamagedOrMissingModelFilesGiveErrorsNamingTheFile) {
  const fs::path dir = kWork / "damaged_model";
  fs::create_directories(dir);
  fs::copy_file(fs::path(kModelDir) / "config.json", dir / "config.json",
                fs::copy_options::overwrite_existing);
  // Missing weights.
  fs::remove(dir / "model.safetensors");
  try {
    Asker asker(dir.string());
    asker.ask("unused.mp4", kQuestionText[0]);
    ADD_FAILURE() << "expected an error for a missing model.safetensors";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
  // Truncated weights.
  {
    std::ifstream in(fs::path(kModelDir) / "model.safetensors", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(dir / "model.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  const auto clips = read_manifest(make_clips("damaged_clip", 1, kHeldOutSeed + 4));
  try {
    Asker asker(dir.string());
    asker.ask(clips[0].file, kQuestionText[0]);
    ADD_FAILURE() << "expected an error for a truncated model.safetensors";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
  // Damaged config.
  std::ofstream(dir / "config.json") << "{ not json";
  try {
    Asker asker(dir.string());
    ADD_FAILURE() << "expected an error for a damaged config.json";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
}

// examples/graphs/ask.yaml is the same graph as ask_clip (issue 6: "also expressible as omnipipe
// run examples/graphs/ask.yaml --set ..."): its parameters must agree with the shipped
// config.json, so it must give ask_clip's answers on the sample clip.
TEST(ShapesVoices, AskYamlGraphAnswersAsAskClip) {
  const std::string clip = kModelDir + "/sample.mp4";
  const Asker asker(kModelDir);
  fs::create_directories(kWork);  // when this test runs first (a --gtest_filter)
  for (int q = 0; q < kNumQuestions; ++q) {
    const std::string out = (kWork / ("ask_yaml_" + std::to_string(q) + ".txt")).string();
    const std::string cmd = std::string("cd ") + OMNI_SOURCE_DIR + " && " + OMNIPIPE_BIN +
                            " run examples/graphs/ask.yaml --set src.path=" + clip +
                            " --set 'question.text=" + kQuestionText[q] + "' > " + out;
    ASSERT_EQ(run(cmd), 0) << cmd;
    std::ifstream in(out);
    const std::string line((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string want = asker.ask(clip, kQuestionText[q]).answer;
    EXPECT_NE(line.find("\"" + want + "\""), std::string::npos)
        << kQuestionText[q] << ": ask.yaml printed " << line << ", ask_clip answered " << want;
  }
}

// One libtorch thread: on a loaded 2-core machine two threads made this 6x slower (193 s vs 34 s).
TEST(ShapesVoices, TrainDemoSmokeLossFalls) {
  const auto manifest = make_clips("smoke", 8, kHeldOutSeed + 3);
  const fs::path out = kWork / "smoke_model";
  const fs::path log = kWork / "smoke_log.txt";
  const std::string cmd = std::string(TRAIN_DEMO_BIN) + " --quiet --train " + manifest +
                          " --steps 24 --batch 4 --lr 2e-3 --seed 5 --threads 1 --out " +
                          out.string() + " > " + log.string();
  ASSERT_EQ(run(cmd), 0) << cmd;
  std::ifstream in(log);
  std::vector<double> losses;
  std::string line;
  const std::regex re(R"(^step (\d+) loss ([0-9.eE+-]+)$)");
  std::smatch m;
  while (std::getline(in, line))
    if (std::regex_match(line, m, re)) losses.push_back(std::stod(m[2]));
  ASSERT_EQ(losses.size(), 24u);
  double head = 0, tail = 0;
  for (int i = 0; i < 4; ++i)
    head += losses[size_t(i)] / 4, tail += losses[losses.size() - 1 - size_t(i)] / 4;
  EXPECT_LT(tail, 0.8 * head) << "loss did not fall: first " << head << ", last " << tail;
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  EXPECT_TRUE(fs::exists(out / "config.json"));
}

// The model card's claim "reproducible with its command": the same options and seed give the same
// weights, byte for byte (both phases and every augmentation, briefly).
TEST(ShapesVoices, TrainDemoIsReproducible) {
  const auto manifest = make_clips("smoke", 8, kHeldOutSeed + 3);
  std::string weights[2];
  for (int i = 0; i < 2; ++i) {
    const fs::path out = kWork / ("repro_model_" + std::to_string(i));
    const std::string cmd =
        std::string(TRAIN_DEMO_BIN) + " --quiet --train " + manifest +
        " --encoder-steps 3 --encoder-batch 4 --encoder-aux-token-weight 0 --steps 3 --batch 4 "
        "--questions 2 --question-weights 4,1,1,1.5 --aux-token-weight 1 --geo 0.5 --hflip 0.5 "
        "--drop-audio 0.3 --first-token-weight 2 --seed 3 --threads 1 --out " +
        out.string() + " > /dev/null 2>&1";
    ASSERT_EQ(run(cmd), 0) << cmd;
    std::ifstream in(out / "model.safetensors", std::ios::binary);
    weights[i].assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_FALSE(weights[0].empty());
  EXPECT_TRUE(weights[0] == weights[1]) << "two runs of the same command wrote different weights";
}

}  // namespace
