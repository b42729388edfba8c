// ask_clip: answers a question about a media file with the shipped shapes & voices model, through
// the inference graph (MediaSource -> ImageEncoder / LogMel -> AudioEncoder -> UnifiedSequencer ->
// Generate). Prints the answer and the time taken; --json for one machine-readable object.
#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <string>

#include "examples/shapes_voices/pipeline.h"
#include "examples/shapes_voices/task.h"

int main(int argc, char** argv) {
  CLI::App app{"Answers a question about a clip with the shapes & voices demo model"};
  std::string file, question, model_dir = omni::demo::default_model_dir(), device = "cpu";
  bool json = false, verbose = false;
  app.add_option("FILE", file, "media file (any container/codec FFmpeg reads)")->required();
  app.add_option("QUESTION", question,
                 "one of: \"what shape is it?\", \"what color is the shape?\", "
                 "\"which color was spoken?\", \"does the spoken color match the shape?\"")
      ->required();
  app.add_option("--model", model_dir, "model directory (config.json + model.safetensors)");
  app.add_option("--device", device, "cpu, cuda or cuda:N");
  app.add_flag("--json", json, "print one JSON object {answer, seconds, tokens}");
  app.add_flag("--verbose", verbose, "also print token counts per modality");
  CLI11_PARSE(app, argc, argv);

  try {
    if (omni::demo::question_index(question) < 0) {
      std::string known;
      for (const char* q : omni::demo::kQuestionText) known += std::string("\n  ") + q;
      std::cerr << "ask_clip: the model was trained on four questions only; got \"" << question
                << "\", expected one of:" << known << "\n";
      return 2;
    }
    const omni::demo::Asker asker(model_dir, device);
    const auto r = asker.ask(file, question);
    if (json) {
      nlohmann::ordered_json j;
      j["answer"] = r.answer;
      j["seconds"] = r.seconds;
      j["tokens"] = {{"text", r.tokens.count("text") ? r.tokens.at("text") : 0},
                     {"video", r.tokens.count("video") ? r.tokens.at("video") : 0},
                     {"audio", r.tokens.count("audio") ? r.tokens.at("audio") : 0}};
      if (r.tokens.count("boundary")) j["tokens"]["boundary"] = r.tokens.at("boundary");
      j["has_audio"] = r.has_audio;
      // The answer is model output: bytes that are not valid UTF-8 are written as U+FFFD.
      std::cout << j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    } else {
      std::cout << r.answer << "\n";
      std::fprintf(stderr, "(%.3f s)\n", r.seconds);
      if (verbose)
        for (const auto& [k, v] : r.tokens)
          std::fprintf(stderr, "  %s tokens: %lld\n", k.c_str(), static_cast<long long>(v));
    }
  } catch (const std::exception& e) {
    std::cerr << "ask_clip: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
