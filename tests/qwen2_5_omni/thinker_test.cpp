// The whole Qwen2.5-Omni thinker against transformers on the e2e fixture
// (tests/fixtures/hf/qwen2_5_omni_e2e, scripts/fixtures/make_qwen_omni_e2e.py): for every case
// (text only, image, audio, video with audio-in-video, video without, a custom system prompt) our
// processors, towers, layout and language model give transformers' rendered text, expanded prompt
// ids, get_rope_index positions and rope delta exactly, the prompt logits within 1e-4, and the same
// 8 greedy ids as thinker.generate.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "modalities/common/checkpoint.h"
#include "modalities/common/safetensors.h"
#include "models/qwen2_5_omni/thinker.h"

namespace {

namespace fs = std::filesystem;
using omni::qwen::Thinker;

const std::string kDir = std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/hf/qwen2_5_omni_e2e";

const Thinker& thinker() {
  static const std::unique_ptr<Thinker> t = Thinker::open(kDir);
  return *t;
}

struct Case {
  nlohmann::json info;
  omni::TensorMap tensors;
};

Case load_case(const std::string& name) {
  Case c;
  std::ifstream f(kDir + "/reference/" + name + ".json");
  c.info = nlohmann::json::parse(f);
  c.tensors = omni::SafeTensorsFile::open(kDir + "/reference/" + name + ".safetensors")->all();
  return c;
}

// The media file of a case ("" for text only).
std::string media_path(const std::string& media) {
  if (media == "image") return kDir + "/image.png";
  if (media == "audio") return kDir + "/speech.wav";
  if (media == "video_audio") return kDir + "/video_audio.mp4";
  if (media == "video") return kDir + "/video.mp4";
  return "";
}

class ThinkerParity : public ::testing::TestWithParam<std::string> {};

TEST_P(ThinkerParity, MatchesTransformers) {
  const Case c = load_case(GetParam());
  const auto& info = c.info;
  omni::qwen::PromptOptions po;
  if (info["system"].is_string()) po.system = info["system"].get<std::string>();
  po.media.audio_in_video = info["use_audio_in_video"].get<bool>();
  const std::string media = info["media"].is_string() ? info["media"].get<std::string>() : "";
  const auto p = thinker().prepare(media_path(media), info["question"].get<std::string>(), po);

  // The prompt: rendered text and expanded ids exactly.
  EXPECT_EQ(p.text, info["text"].get<std::string>());
  EXPECT_EQ(p.ids, info["input_ids"].get<std::vector<int64_t>>());
  EXPECT_EQ(p.tokens.at("image"), info["image_tokens"].get<int64_t>());
  EXPECT_EQ(p.tokens.at("video"), info["video_tokens"].get<int64_t>());
  EXPECT_EQ(p.tokens.at("audio"), info["audio_tokens"].get<int64_t>());
  // get_rope_index: positions and delta exactly.
  const at::Tensor pos = p.position_ids.view({3, -1}).to(at::kCPU);
  const at::Tensor ref_pos = c.tensors.at("position_ids");
  ASSERT_EQ(pos.sizes(), ref_pos.sizes());
  EXPECT_TRUE(at::equal(pos, ref_pos))
      << "first differing column: "
      << (pos != ref_pos).any(0).nonzero().view(-1)[0].item<int64_t>();
  EXPECT_EQ(p.rope_delta, info["rope_delta"].get<int64_t>());

  // Prompt logits (the rows the fixture keeps) within 1e-4.
  const at::Tensor logits = thinker().prompt_logits(p);
  ASSERT_EQ(logits.size(0), info["prompt_len"].get<int64_t>());
  ASSERT_EQ(logits.size(1), info["vocab"].get<int64_t>());
  const at::Tensor rows = logits.index_select(0, c.tensors.at("logit_rows"));
  const double diff = (rows - c.tensors.at("logits")).abs().max().item<double>();
  std::printf("[ %s ] prompt %lld tokens, logits max |diff| %.3g\n", GetParam().c_str(),
              static_cast<long long>(p.ids.size()), diff);
  EXPECT_LE(diff, 1e-4) << GetParam() << ": max |logits - transformers| = " << diff;

  // Greedy generation: the same 8 ids as thinker.generate (it stops at the eos ids too).
  omni::qwen::SampleOptions so;
  so.max_new_tokens = 8;
  std::string streamed;
  const auto a =
      thinker().generate(p, so, [&](int64_t, const std::string& text) { streamed += text; });
  EXPECT_EQ(a.ids, info["generated_ids"].get<std::vector<int64_t>>()) << GetParam();
  // The streamed pieces add up to the decoded answer.
  EXPECT_EQ(streamed, a.text);
}

INSTANTIATE_TEST_SUITE_P(Cases, ThinkerParity,
                         ::testing::Values("text", "image", "audio", "video_audio", "video",
                                           "audio_system"),
                         [](const auto& info) { return info.param; });

// Zero-copy loading: the fp32 thinker of an fp32 checkpoint uses every weight in place from the
// mapping, and its answers are those of a thinker whose weights were copied (map_weights off);
// a bf16 thinker converts, so nothing is mapped. The parity cases above run on mapped weights.
TEST(ThinkerLoad, MappedWeightsInPlaceGiveTheSameAnswers) {
  const omni::LoadReport& mapped = thinker().load_report();
  EXPECT_GT(mapped.tensors, 0);
  EXPECT_EQ(mapped.mapped_tensors, mapped.tensors);
  EXPECT_EQ(mapped.mapped_bytes, mapped.bytes);

  omni::qwen::ThinkerOptions copy_opts;
  copy_opts.map_weights = false;
  const auto copied = Thinker::open(kDir, copy_opts);
  EXPECT_EQ(copied->load_report().tensors, mapped.tensors);
  EXPECT_EQ(copied->load_report().mapped_tensors, 0);
  omni::qwen::PromptOptions po;
  const auto p = thinker().prepare(media_path("image"), "What is it?", po);
  const auto q = copied->prepare(media_path("image"), "What is it?", po);
  EXPECT_TRUE(at::equal(thinker().prompt_logits(p), copied->prompt_logits(q)));

  omni::qwen::ThinkerOptions bf16;
  bf16.dtype = "bf16";
  bf16.vision = bf16.audio = false;
  const auto converted = Thinker::open(kDir, bf16);
  EXPECT_GT(converted->load_report().tensors, 0);
  EXPECT_EQ(converted->load_report().mapped_tensors, 0);
}

// The graph's path (decoded frames and PCM, media_from_decoded) gives the same media as read_media.
TEST(ThinkerMedia, ReadMediaKinds) {
  bool has_audio = false;
  using omni::qwen::MediaKind;
  EXPECT_EQ(omni::qwen::detect_media_kind(kDir + "/image.png", &has_audio), MediaKind::kImage);
  EXPECT_EQ(omni::qwen::detect_media_kind(kDir + "/speech.wav", &has_audio), MediaKind::kAudio);
  EXPECT_EQ(omni::qwen::detect_media_kind(kDir + "/video_audio.mp4", &has_audio),
            MediaKind::kVideo);
  EXPECT_TRUE(has_audio);
  EXPECT_EQ(omni::qwen::detect_media_kind(kDir + "/video.mp4", &has_audio), MediaKind::kVideo);
  EXPECT_FALSE(has_audio);
}

TEST(ThinkerErrors, ClearMessages) {
  // A missing directory, a directory of another model, unreadable media, audio-in-video without
  // sound: InputErrors that say what is wrong.
  try {
    Thinker::open(kDir + "/no_such_dir");
    FAIL() << "opened a missing directory";
  } catch (const omni::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
  const fs::path other = fs::temp_directory_path() / "qwen_thinker_test_other_model";
  fs::create_directories(other);
  std::ofstream(other / "config.json")
      << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})";
  try {
    Thinker::open(other.string());
    FAIL() << "opened a llama directory";
  } catch (const omni::InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("unsupported model 'LlamaForCausalLM'"), std::string::npos) << m;
    EXPECT_NE(m.find("Qwen2_5OmniForConditionalGeneration"), std::string::npos) << m;
  }
  fs::remove_all(other);
  const fs::path junk = fs::temp_directory_path() / "qwen_thinker_test_junk.mp4";
  std::ofstream(junk) << "not a video";
  EXPECT_THROW(thinker().prepare(junk.string(), "What?"), omni::InputError);
  fs::remove(junk);
  EXPECT_THROW(thinker().prepare(kDir + "/missing.png", "What?"), omni::InputError);
  omni::qwen::PromptOptions po;
  po.media.audio_in_video = true;
  EXPECT_THROW(thinker().prepare(kDir + "/video.mp4", "What?", po), omni::InputError);
}

// A copy of the e2e directory (its other files linked) whose config.json is `edit`ed.
fs::path with_config(const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
  const fs::path d = fs::temp_directory_path() / ("qwen_thinker_test_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  for (const auto& e : fs::directory_iterator(kDir))
    if (e.path().filename() != "config.json") fs::create_symlink(e.path(), d / e.path().filename());
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(kDir + "/config.json"));
  edit(cfg);
  std::ofstream(d / "config.json") << cfg.dump();
  return d;
}

TEST(ThinkerErrors, ConfigSizesBeyondTheWeightsAreRefusedBeforeBuilding) {
  // A config.json that claims a bigger model than its weights: before this check the vision case
  // peaked at 4.7 GB of RSS and the audio one at 1.7 GB (modules built, some initialised, before
  // any weight was compared); now each is a clear error naming the key or the tensor.
  struct Hostile {
    const char* name;
    std::function<void(nlohmann::json&)> edit;
    const char* says;
  };
  const std::vector<Hostile> cases = {
      {"vision_hidden",
       [](nlohmann::json& c) {
         c["thinker_config"]["vision_config"]["hidden_size"] = 1000000;
         c["thinker_config"]["vision_config"]["intermediate_size"] = 10000000;
       },
       "the vision config's sizes need"},
      {"audio_width",
       [](nlohmann::json& c) { c["thinker_config"]["audio_config"]["d_model"] = 4096; },
       "the audio config's sizes need"},
      {"audio_positions",
       [](nlohmann::json& c) {
         c["thinker_config"]["audio_config"]["max_source_positions"] = 1 << 30;
       },
       "max_source_positions"},
      {"text_layers",
       [](nlohmann::json& c) { c["thinker_config"]["text_config"]["num_hidden_layers"] = 1000000; },
       "text.layers.999999.self_attn.q_proj.weight"},
      {"text_vocab",
       [](nlohmann::json& c) { c["thinker_config"]["text_config"]["vocab_size"] = 1 << 24; },
       "the checkpoint's is [1024, 32]"},
      {"text_head_dim",
       [](nlohmann::json& c) { c["thinker_config"]["text_config"]["head_dim"] = int64_t{1} << 40; },
       "head_dim 1099511627776 is over"},
  };
  for (const Hostile& h : cases) {
    const fs::path d = with_config(h.name, h.edit);
    try {
      Thinker::open(d.string());
      ADD_FAILURE() << h.name << ": opened";
    } catch (const omni::InputError& e) {
      EXPECT_NE(std::string(e.what()).find(h.says), std::string::npos)
          << h.name << ": " << e.what();
    } catch (const omni::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(h.says), std::string::npos)
          << h.name << ": " << e.what();
    }
    fs::remove_all(d);
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  EXPECT_LT(ru.ru_maxrss, 1024 * 1024) << "peak RSS " << ru.ru_maxrss << " KB";
}

}  // namespace
