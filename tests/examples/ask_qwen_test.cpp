// ask_clip --model and examples/graphs/qwen2_5_omni.yaml as a user runs them, on the Qwen2.5-Omni
// e2e fixture (tests/fixtures/hf/qwen2_5_omni_e2e): the JSON answer and the logits dump agree with
// transformers' references, the streamed text with the JSON answer, the graph with ask_clip; bad
// directories and media give clear errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "modalities/common/safetensors.h"

namespace {

namespace fs = std::filesystem;

const std::string kSrc = OMNI_SOURCE_DIR;
const std::string kDir = kSrc + "/tests/fixtures/hf/qwen2_5_omni_e2e";

struct Proc {
  int code = -1;
  std::string out;  // stdout (stderr goes to `err`)
  std::string err;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

Proc exec(const std::string& bin, const std::vector<std::string>& args) {
  const fs::path err_file =
      fs::temp_directory_path() / ("ask_qwen_test_err_" + std::to_string(::getpid()) + ".txt");
  std::string cmd = quote(bin);
  for (const auto& a : args) {
    cmd += ' ';
    cmd += quote(a);
  }
  cmd += " 2>";
  cmd += quote(err_file.string());
  Proc r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream e(err_file);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  fs::remove(err_file);
  return r;
}

nlohmann::json reference(const std::string& name) {
  std::ifstream f(kDir + "/reference/" + name + ".json");
  return nlohmann::json::parse(f);
}

TEST(AskClipQwen, JsonAndLogitsDumpMatchTransformers) {
  const auto ref = reference("video_audio");
  const fs::path dump = fs::temp_directory_path() / "ask_qwen_test_logits.safetensors";
  const Proc r = exec(OMNI_ASK_CLIP,
                      {kDir + "/video_audio.mp4", ref["question"].get<std::string>(), "--model",
                       kDir, "--json", "--max-new-tokens", "8", "--dump-logits", dump.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["ids"].get<std::vector<int64_t>>(), ref["generated_ids"].get<std::vector<int64_t>>());
  EXPECT_EQ(j["prompt_ids"].get<std::vector<int64_t>>(),
            ref["input_ids"].get<std::vector<int64_t>>());
  EXPECT_TRUE(j["answer"].is_string());
  EXPECT_EQ(j["media"], "video");
  EXPECT_EQ(j["audio_in_video"], true);
  EXPECT_EQ(j["tokens"]["audio"], ref["audio_tokens"]);
  EXPECT_EQ(j["tokens"]["video"], ref["video_tokens"]);
  // The measurement fields scripts/bench-real reads (present and sane; no timing is asserted).
  for (const char* k : {"prefill_seconds", "prefill_tokens_per_s", "decode_tokens_per_s",
                        "time_to_first_token_s", "max_rss_mb"})
    ASSERT_TRUE(j[k].is_number()) << k;
  EXPECT_GT(j["prefill_seconds"].get<double>(), 0);
  EXPECT_GE(j["time_to_first_token_s"].get<double>(), 0);
  EXPECT_GT(j["max_rss_mb"].get<double>(), 0);

  const auto file = omni::SafeTensorsFile::open(dump.string());
  const at::Tensor logits = file->get("logits");
  const at::Tensor pos = file->get("position_ids");
  const int64_t L = ref["prompt_len"].get<int64_t>();
  EXPECT_EQ(logits.scalar_type(), at::kFloat);
  EXPECT_EQ(pos.scalar_type(), at::kLong);
  ASSERT_EQ(logits.sizes(), (at::IntArrayRef{L, ref["vocab"].get<int64_t>()}));
  ASSERT_EQ(pos.sizes(), (at::IntArrayRef{3, L}));
  const auto tensors =
      omni::SafeTensorsFile::open(kDir + "/reference/video_audio.safetensors")->all();
  EXPECT_TRUE(at::equal(pos, tensors.at("position_ids")));
  const double diff = (logits.index_select(0, tensors.at("logit_rows")) - tensors.at("logits"))
                          .abs()
                          .max()
                          .item<double>();
  EXPECT_LE(diff, 1e-4);
  fs::remove(dump);
}

TEST(AskClipQwen, TextOnlyStreamsTheJsonAnswer) {
  const auto ref = reference("text");
  const std::string q = ref["question"].get<std::string>();
  const Proc js = exec(OMNI_ASK_CLIP, {q, "--model", kDir, "--json", "--max-new-tokens", "8"});
  ASSERT_EQ(js.code, 0) << js.err;
  const auto j = nlohmann::json::parse(js.out);
  EXPECT_EQ(j["ids"].get<std::vector<int64_t>>(), ref["generated_ids"].get<std::vector<int64_t>>());
  EXPECT_EQ(j["media"], "text");
  // Plain mode: the streamed text, then a newline; timings on stderr.
  const Proc plain = exec(OMNI_ASK_CLIP, {q, "--model", kDir, "--max-new-tokens", "8"});
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_EQ(plain.out, j["answer"].get<std::string>() + "\n");
  EXPECT_NE(plain.err.find("tokens/s"), std::string::npos) << plain.err;
}

TEST(AskClipQwen, YamlGraphGivesTheSameAnswer) {
  for (const std::string name : {"image", "audio", "video_audio"}) {
    const auto ref = reference(name);
    const std::string media = ref["media"].get<std::string>();
    const std::string file = kDir + (media == "image"   ? "/image.png"
                                     : media == "audio" ? "/speech.wav"
                                                        : "/video_audio.mp4");
    const std::string q = ref["question"].get<std::string>();
    const Proc a =
        exec(OMNI_ASK_CLIP, {file, q, "--model", kDir, "--json", "--max-new-tokens", "8"});
    ASSERT_EQ(a.code, 0) << a.err;
    const auto j = nlohmann::json::parse(a.out);
    EXPECT_EQ(j["ids"].get<std::vector<int64_t>>(),
              ref["generated_ids"].get<std::vector<int64_t>>())
        << name;
    const Proc g = exec(OMNIPIPE_BIN, {"run", kSrc + "/examples/graphs/qwen2_5_omni.yaml", "--set",
                                       "proc.model=" + kDir, "--set", "src.path=" + file, "--set",
                                       "question.text=" + q, "--set", "generate.max_new_tokens=8"});
    ASSERT_EQ(g.code, 0) << g.err;
    EXPECT_EQ(nlohmann::json::parse(g.out)["payload"], j["answer"]) << name;
  }
}

TEST(AskClipQwen, ClearErrors) {
  const Proc missing = exec(OMNI_ASK_CLIP, {"What?", "--model", kDir + "/nope"});
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.err.find("nope"), std::string::npos) << missing.err;

  const fs::path other = fs::temp_directory_path() / "ask_qwen_test_llama";
  fs::create_directories(other);
  std::ofstream(other / "config.json") << R"({"architectures": ["LlamaForCausalLM"]})";
  const Proc unsupported = exec(OMNI_ASK_CLIP, {"What?", "--model", other.string()});
  EXPECT_EQ(unsupported.code, 1);
  EXPECT_NE(unsupported.err.find("unsupported model 'LlamaForCausalLM'"), std::string::npos)
      << unsupported.err;
  EXPECT_NE(unsupported.err.find("Qwen2_5OmniForConditionalGeneration"), std::string::npos);
  fs::remove_all(other);

  const Proc no_file = exec(OMNI_ASK_CLIP, {kDir + "/missing.mp4", "What?", "--model", kDir});
  EXPECT_EQ(no_file.code, 1);
  EXPECT_NE(no_file.err.find("missing.mp4"), std::string::npos) << no_file.err;

  const Proc junk = exec(OMNI_ASK_CLIP, {kDir + "/config.json", "What?", "--model", kDir});
  EXPECT_EQ(junk.code, 1) << junk.err;

  const Proc silent = exec(
      OMNI_ASK_CLIP, {kDir + "/video.mp4", "What?", "--model", kDir, "--audio-in-video", "on"});
  EXPECT_EQ(silent.code, 1);
  EXPECT_NE(silent.err.find("no sound track"), std::string::npos) << silent.err;

  // The demo model takes none of the Hugging Face flags.
  const Proc demo = exec(OMNI_ASK_CLIP, {kSrc + "/models/shapes_voices/sample.mp4",
                                         "what shape is it?", "--fps", "3"});
  EXPECT_EQ(demo.code, 2);
  EXPECT_NE(demo.err.find("--fps"), std::string::npos) << demo.err;
}

}  // namespace
