// HfTokenizer against transformers' AutoTokenizer on Qwen2.5-Omni-like directories (fixtures from
// scripts/fixtures/make_hf_tokenizer_fixture.py), and its errors and limits on bad directories.
#include "modalities/text/hf_tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace omni {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kHf = std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/hf/";
const std::string kDir = kHf + "qwen2_5_omni_tokenizer";
const std::string kVariant = kHf + "qwen2_5_omni_tokenizer_variant";

json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("missing fixture " + path);
  return json::parse(f);
}

void write_text(const fs::path& path, const std::string& s) {
  std::ofstream f(path, std::ios::binary);
  f << s;
}

std::string read_json_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("missing fixture " + path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string show(const std::vector<int64_t>& ids) {
  std::string s;
  for (auto i : ids) s += std::to_string(i) + " ";
  return s;
}

// One fixture case: encode(text) gives transformers' ids; its ids decode as transformers decodes
// them, with and without skip_special_tokens.
void expect_case(const HfTokenizer& tok, const json& c) {
  const std::string text = c["text"].get<std::string>();
  const auto expected = c["ids"].get<std::vector<int64_t>>();
  const auto ids = tok.encode(text);
  EXPECT_EQ(ids, expected) << "'" << text << "'\n  got      " << show(ids) << "\n  expected "
                           << show(expected);
  EXPECT_EQ(tok.decode(expected), c["decoded"].get<std::string>()) << text;
  EXPECT_EQ(tok.decode(expected, true), c["decoded_skip"].get<std::string>()) << text;
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

TEST(HfTokenizer, EncodesAndDecodesLikeTransformers) {
  const auto fx = read_json(kDir + "/cases.json");
  const auto tok = HfTokenizer::from_directory(kDir);
  ASSERT_EQ(fx["tokenizer_class"], "Qwen2Tokenizer");
  EXPECT_EQ(tok->tokenizer_class(), "Qwen2Tokenizer");
  // Hand-written texts, then 200 seeded random concatenations of special tokens, their fragments,
  // words, Korean, emoji, combining marks, odd whitespace and punctuation.
  for (const char* set : {"cases", "random_cases"}) {
    int n = 0;
    for (const auto& c : fx[set]) {
      const std::string text = c["text"].get<std::string>();
      const auto expected = c["ids"].get<std::vector<int64_t>>();
      const auto ids = tok->encode(text);
      EXPECT_EQ(ids, expected) << set << " '" << text << "'\n  got      " << show(ids)
                               << "\n  expected " << show(expected);
      EXPECT_EQ(tok->decode(expected), c["decoded"].get<std::string>()) << text;
      EXPECT_EQ(tok->decode(expected, /*skip_special_tokens=*/true),
                c["decoded_skip"].get<std::string>())
          << text;
      ++n;
    }
    EXPECT_GE(n, 40) << set;
  }
}

TEST(HfTokenizer, InvalidUtf8InputIsReplacedLikePython) {
  const auto fx = read_json(kDir + "/cases.json");
  const auto tok = HfTokenizer::from_directory(kDir);
  ASSERT_GE(fx["invalid_utf8_inputs"].size(), 10u);
  for (const auto& c : fx["invalid_utf8_inputs"]) {
    const std::string bytes = from_hex(c["hex"].get<std::string>());
    const auto expected = c["ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(tok->encode(bytes), expected) << c["hex"];
    EXPECT_EQ(tok->decode(expected), c["decoded"].get<std::string>()) << c["hex"];
  }
}

TEST(HfTokenizer, InvalidUtf8FromIdsDecodesLikeTransformers) {
  const auto fx = read_json(kDir + "/cases.json");
  const auto tok = HfTokenizer::from_directory(kDir);
  ASSERT_GE(fx["decodes"].size(), 11u);
  for (const auto& c : fx["decodes"]) {
    const auto ids = c["ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(tok->decode(ids), c["decoded"].get<std::string>()) << show(ids);
    EXPECT_EQ(tok->decode(ids, true), c["decoded_skip"].get<std::string>()) << show(ids);
  }
}

TEST(HfTokenizer, RoundTripsKoreanEmojiAndCode) {
  const auto tok = HfTokenizer::from_directory(kDir);
  for (const std::string text :
       {"한국어 문장입니다. 빨간 원이 움직여요!",
        "👍🏽 👩‍👩‍👧‍👦 🏳️‍🌈 🇰🇷 ✨🔥 🫠",
        "int main() {\n\treturn 0; // 끝\n}\r\n", "mixed 한😀a\u00a0b\u3000c"}) {
    EXPECT_EQ(tok->decode(tok->encode(text)), text);
  }
}

TEST(HfTokenizer, SpecialTokensAndNamedTokensMatchTransformers) {
  const auto fx = read_json(kDir + "/cases.json");
  const auto tok = HfTokenizer::from_directory(kDir);
  for (const auto& [name, v] : fx["named_tokens"].items()) {
    EXPECT_EQ(tok->named_token(name), v["token"].get<std::string>()) << name;
    EXPECT_EQ(tok->named_token_id(name), v["id"].get<int64_t>()) << name;
  }
  EXPECT_FALSE(tok->named_token("bos_token"));
  EXPECT_FALSE(tok->bos_token_id());
  EXPECT_FALSE(tok->named_token("unk_token"));
  EXPECT_THROW(tok->require_token_id("bos_token"), InputError);
  EXPECT_EQ(tok->eos_token_id(), 151645);
  EXPECT_EQ(tok->pad_token_id(), 151643);
  EXPECT_EQ(tok->require_token_id("audio_token"), 151646);
  EXPECT_EQ(tok->model_max_length(), fx["model_max_length"].get<int64_t>());
  EXPECT_EQ(tok->all_special_tokens(), fx["all_special_tokens"].get<std::vector<std::string>>());
  EXPECT_EQ(tok->all_special_ids(), fx["all_special_ids"].get<std::vector<int64_t>>());
  for (const auto& a : fx["added_tokens"]) {
    const int64_t id = a["id"].get<int64_t>();
    const std::string content = a["content"].get<std::string>();
    EXPECT_EQ(tok->token_to_id(content), id) << content;
    EXPECT_EQ(tok->id_to_token(id), content);
    EXPECT_EQ(tok->is_special(id), a["special"].get<bool>()) << content;
  }
  // Qwen2.5-Omni's real ids.
  const std::pair<const char*, int64_t> real[] = {
      {"<|endoftext|>", 151643},  {"<|im_start|>", 151644},   {"<|im_end|>", 151645},
      {"<|AUDIO|>", 151646},      {"<|audio_bos|>", 151647},  {"<|audio_eos|>", 151648},
      {"<|vision_bos|>", 151652}, {"<|vision_eos|>", 151653}, {"<|IMAGE|>", 151655},
      {"<|VIDEO|>", 151656},      {"<tool_call>", 151657},    {"<|file_sep|>", 151664}};
  for (const auto& [t, id] : real) EXPECT_EQ(tok->token_to_id(t), id) << t;
  EXPECT_FALSE(tok->is_special(151657));  // <tool_call> is added but not special
  EXPECT_EQ(tok->vocab_size(), 151665);
  // Holes between the small BPE vocabulary and 151643 are not tokens.
  EXPECT_THROW(tok->id_to_token(5000), InputError);
  EXPECT_THROW(tok->decode({5000}), InputError);
  EXPECT_THROW(tok->decode({151665}), InputError);
  EXPECT_THROW(tok->decode({-1}), InputError);
}

TEST(HfTokenizer, ConfigOverridesResolvedAsTransformersDoes) {
  const auto fx = read_json(kVariant + "/cases.json");
  const auto tok = HfTokenizer::from_directory(kVariant);
  ASSERT_GE(fx["cases"].size(), 5u);
  for (const auto& c : fx["cases"]) expect_case(*tok, c);
  EXPECT_EQ(tok->named_token("eos_token"), fx["eos_token"].get<std::string>());
  EXPECT_EQ(tok->eos_token_id(), fx["eos_token_id"].get<int64_t>());
  EXPECT_EQ(tok->token_to_id("<|new_tag|>"), fx["new_tag_id"].get<int64_t>());
  EXPECT_EQ(tok->all_special_tokens(), fx["all_special_tokens"].get<std::vector<std::string>>());
  EXPECT_EQ(tok->all_special_ids(), fx["all_special_ids"].get<std::vector<int64_t>>());
  const auto added = tok->tokenizer().added_tokens();
  ASSERT_EQ(added.size(), fx["added_tokens"].size());
  for (size_t i = 0; i < added.size(); ++i) {
    const auto& a = fx["added_tokens"][i];
    EXPECT_EQ(added[i].id, a["id"].get<int64_t>());
    EXPECT_EQ(added[i].content, a["content"].get<std::string>());
    EXPECT_EQ(added[i].special, a["special"].get<bool>()) << added[i].content;
    EXPECT_EQ(added[i].lstrip, a["lstrip"].get<bool>()) << added[i].content;
    EXPECT_EQ(added[i].rstrip, a["rstrip"].get<bool>()) << added[i].content;
  }
}

TEST(HfTokenizer, Qwen2ClassRebuildsThePipelineAsTransformersDoes) {
  // tokenizer.json says GPT-2 regex, no NFC, and lists an added token the config does not; the
  // Qwen2Tokenizer class ignores all three.
  const std::string dir = kHf + "qwen2_class_rebuilt_pipeline";
  const auto fx = read_json(dir + "/cases.json");
  const auto tok = HfTokenizer::from_directory(dir);
  const auto as_file = Tokenizer::from_file(dir + "/tokenizer.json");
  int differ = 0;
  ASSERT_GE(fx["cases"].size(), 5u);
  for (const auto& c : fx["cases"]) {
    expect_case(*tok, c);
    const std::string text = c["text"].get<std::string>();
    const auto expected = c["ids"].get<std::vector<int64_t>>();
    differ += as_file->encode(text) != expected;
  }
  EXPECT_GE(differ, 3);  // the file's own pipeline would give other ids
  EXPECT_EQ(tok->token_to_id("<|json_only|>"), fx["json_only_id"].get<int64_t>());
}

TEST(HfTokenizer, LoadTokenizerAcceptsADirectory) {
  const auto t = load_tokenizer(kDir);
  ASSERT_NE(dynamic_cast<HfTokenizer*>(t.get()), nullptr);
  EXPECT_EQ(t->token_to_id("<|IMAGE|>"), 151655);
}

// A scratch directory with the fixture's files, removed at the end.
class ScratchDir {
 public:
  ScratchDir() {
    path_ = fs::temp_directory_path() /
            ("omni_hf_tok_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  void copy_fixture() {
    fs::copy_file(kDir + "/tokenizer.json", path_ / "tokenizer.json");
    fs::copy_file(kDir + "/tokenizer_config.json", path_ / "tokenizer_config.json");
  }
  json config() const { return read_json((path_ / "tokenizer_config.json").string()); }
  void set_config(const json& j) const { write_text(path_ / "tokenizer_config.json", j.dump()); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

void expect_error(const std::string& dir, const std::vector<std::string>& needles) {
  try {
    HfTokenizer::from_directory(dir);
    ADD_FAILURE() << "no error for " << dir;
  } catch (const InputError& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
}

TEST(HfTokenizerErrors, MissingDirectoriesAndFiles) {
  expect_error(kHf + "no_such_dir", {"no_such_dir", "does not exist"});
  expect_error(kDir + "/tokenizer.json", {"not a directory"});
  ScratchDir d;
  expect_error(d.str(), {d.str(), "no tokenizer.json"});
  write_text(d.path() / "vocab.json", "{}");
  write_text(d.path() / "merges.txt", "");
  expect_error(d.str(), {"vocab.json + merges.txt", "no tokenizer.json"});
  fs::create_directory(d.path() / "tokenizer.json");
  expect_error(d.str(), {"not a regular file"});
}

TEST(HfTokenizerErrors, ConfigIsOptional) {
  ScratchDir d;
  fs::copy_file(kDir + "/tokenizer.json", d.path() / "tokenizer.json");
  const auto tok = HfTokenizer::from_directory(d.str());
  EXPECT_FALSE(tok->eos_token_id());
  EXPECT_TRUE(tok->all_special_tokens().empty());
  EXPECT_EQ(tok->token_to_id("<|AUDIO|>"), 151646);  // from tokenizer.json's added_tokens
  EXPECT_TRUE(tok->is_special(151646));
  EXPECT_FALSE(tok->model_max_length());
}

TEST(HfTokenizerErrors, LegacySpecialTokensMap) {
  ScratchDir d;
  d.copy_fixture();
  json cfg = d.config();
  cfg.erase("added_tokens_decoder");
  cfg.erase("eos_token");
  d.set_config(cfg);
  write_text(d.path() / "special_tokens_map.json",
             R"({"eos_token": {"content": "<|endoftext|>", "lstrip": false}})");
  EXPECT_EQ(HfTokenizer::from_directory(d.str())->eos_token_id(), 151643);
}

TEST(HfTokenizerErrors, MalformedConfigNamesTheProblem) {
  ScratchDir d;
  d.copy_fixture();
  const json good = d.config();
  const std::string cfg_name = (d.path() / "tokenizer_config.json").string();
  auto with = [&](const std::function<void(json&)>& edit, const std::vector<std::string>& needles) {
    json j = good;
    edit(j);
    d.set_config(j);
    std::vector<std::string> n = needles;
    n.push_back(cfg_name);
    expect_error(d.str(), n);
  };
  write_text(d.path() / "tokenizer_config.json", "{\"eos_token\": ");
  expect_error(d.str(), {cfg_name, "not valid JSON"});
  write_text(d.path() / "tokenizer_config.json", "[1, 2]");
  expect_error(d.str(), {"not a JSON object"});
  with([](json& j) { j["added_tokens_decoder"] = 7; }, {"added_tokens_decoder"});
  with([](json& j) { j["added_tokens_decoder"]["12abc"] = {{"content", "x"}}; }, {"12abc"});
  with(
      [](json& j) {
        j["added_tokens_decoder"]["99999999999"] = {{"content", "x"}};
      },
      {"99999999999"});
  with([](json& j) { j["added_tokens_decoder"]["151644"]["special"] = "yes"; },
       {"151644", "special", "true or false"});
  with([](json& j) { j["added_tokens_decoder"]["151644"].erase("content"); },
       {"151644", "must be a string"});
  // A token tokenizer.json has at another id, an id tokenizer.json gives another token.
  with(
      [](json& j) {
        j["added_tokens_decoder"]["151700"] = {{"content", "<|im_end|>"}};
      },
      {"151700", "<|im_end|>", "151645"});
  with([](json& j) { j["added_tokens_decoder"]["151645"]["content"] = "<|other|>"; },
       {"151645", "<|im_end|>"});
  // A new token far from the next free id.
  with(
      [](json& j) {
        j["added_tokens_decoder"]["200000"] = {{"content", "<|far|>"}};
      },
      {"200000", "<|far|>", "next free id 151665"});
  with([](json& j) { j["eos_token"] = 3; }, {"eos_token", "must be a string"});
  with([](json& j) { j["additional_special_tokens"] = "<|im_start|>"; },
       {"additional_special_tokens"});
  with([](json& j) { j["add_bos_token"] = true; }, {"add_bos_token", "not supported"});
  with([](json& j) { j["split_special_tokens"] = "no"; }, {"split_special_tokens"});
  with([](json& j) { j["model_max_length"] = "long"; }, {"model_max_length"});
  std::string bad_utf8 = good.dump();
  bad_utf8.insert(1, "\"sep_token\": \"\xFF\", ");
  write_text(d.path() / "tokenizer_config.json", bad_utf8);
  expect_error(d.str(), {cfg_name, "not valid JSON"});
}

TEST(HfTokenizerErrors, SettingsFromTheConfig) {
  ScratchDir d;
  d.copy_fixture();
  json cfg = d.config();
  cfg["split_special_tokens"] = true;
  cfg["model_max_length"] = 1e30;  // transformers' "no limit"
  d.set_config(cfg);
  const auto tok = HfTokenizer::from_directory(d.str());
  EXPECT_FALSE(tok->model_max_length());
  const auto ids = tok->encode("<|im_start|>hi");
  EXPECT_GT(ids.size(), 2u);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 151644), 0);
  EXPECT_EQ(tok->decode(ids), "<|im_start|>hi");
}

TEST(HfTokenizerLimits, OversizedFilesAreRejectedBeforeReading) {
  ScratchDir d;
  d.copy_fixture();
  { std::ofstream f(d.path() / "tokenizer_config.json", std::ios::binary | std::ios::trunc); }
  fs::resize_file(d.path() / "tokenizer_config.json", (std::uintmax_t{16} << 20) + 1);
  expect_error(d.str(), {"tokenizer_config.json", "more than the limit"});
  fs::remove(d.path() / "tokenizer_config.json");
  fs::copy_file(kDir + "/tokenizer_config.json", d.path() / "tokenizer_config.json");
  fs::resize_file(d.path() / "tokenizer.json", (std::uintmax_t{256} << 20) + 1);
  expect_error(d.str(), {"tokenizer.json", "more than the limit"});
}

// A tokenizer.json that holds 10^9 merges ("a b" entries, at least 6 GB) is refused by its size
// before a byte of it is read or parsed: the file here is sparse (its head is a real tokenizer
// header, the rest a hole), so a regression that read it would allocate gigabytes and time out.
TEST(HfTokenizerLimits, BillionMergesFileIsRefusedBeforeReading) {
  ScratchDir d;
  {
    std::ofstream f(d.path() / "tokenizer.json", std::ios::binary | std::ios::trunc);
    f << R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b")";
  }
  fs::resize_file(d.path() / "tokenizer.json", std::uintmax_t{1'000'000'000} * 6 + 64);
  expect_error(d.str(), {"tokenizer.json", "more than the limit"});
  EXPECT_THROW(Tokenizer::from_file((d.path() / "tokenizer.json").string()), InputError);
}

TEST(HfTokenizerLimits, HugeIdsCostNothing) {
  // One token at the largest id: the table must not grow to 2^31 entries.
  const auto t = Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 0,
      "b": 2147483647}, "merges": []}, "added_tokens": [{"id": 2147483646, "content": "<x>",
      "special": true}]})");
  EXPECT_EQ(t->vocab_size(), int64_t{1} << 31);
  EXPECT_EQ(t->decode({2147483647, 0, 2147483646}), "ba<x>");
  EXPECT_EQ(t->decode({2147483647, 2147483646}, true), "b");
  EXPECT_EQ(t->encode("a<x>"), (std::vector<int64_t>{0, 2147483646}));
  EXPECT_THROW(t->decode({1000}), InputError);
  EXPECT_THROW(Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 2147483648},
      "merges": []}})"),
               InputError);
  EXPECT_THROW(Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
      "added_tokens": [{"id": 4294967296, "content": "<x>"}]})"),
               InputError);
}

TEST(HfTokenizerLimits, DeeplyNestedSequencesAreRejected) {
  std::string pre = R"({"type": "ByteLevel"})";
  for (int i = 0; i < 40; ++i) pre = R"({"type": "Sequence", "pretokenizers": [)" + pre + "]}";
  try {
    Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
        "pre_tokenizer": )" + pre +
                             "}",
                         "deep.json");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("nested"), std::string::npos) << e.what();
  }
}

TEST(HfTokenizerLimits, ReplacementFollowsMaximalSubparts) {
  // Byte-level ids of raw bytes: the decode is Python's bytes.decode("utf-8", "replace").
  const auto t = Tokenizer::from_file(kDir + "/tokenizer.json");
  t->set_replace_invalid_utf8(true);
  const std::pair<std::string, std::string> cases[] = {
      {"\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"\xE4\xB8", "\xEF\xBF\xBD"},
      {"\xF0\x9F\x98", "\xEF\xBF\xBD"},
      {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"a\xFF"
       "b",
       "a\xEF\xBF\xBD"
       "b"},
  };
  for (const auto& [in, out] : cases) EXPECT_EQ(t->decode(t->encode(in)), out);
}

TEST(HfTokenizerLimits, DeepValuesAndMutatedFilesGiveInputErrorsOnly) {
  ScratchDir d;
  d.copy_fixture();
  // A value nested 200,000 deep where a token string belongs: a bounded message, no recursion.
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  write_text(d.path() / "tokenizer_config.json", "{\"eos_token\": " + deep + "}");
  expect_error(d.str(), {"eos_token", "[[[...]]]"});
  // Byte mutations of both files (fixed seed): every outcome is a tokenizer or an InputError.
  const std::string tok_json = read_json_text(kDir + "/tokenizer.json");
  const std::string cfg_json = read_json_text(kDir + "/tokenizer_config.json");
  uint32_t seed = 12345;
  auto next = [&] { return seed = seed * 1664525u + 1013904223u; };
  const char* junk[] = {"\"", "{", "]", "-1", "4294967296", "null", "true", "\\u0000", "\xFF", ","};
  int loaded = 0, rejected = 0;
  for (int i = 0; i < 60; ++i) {
    std::string t = tok_json, c = cfg_json;
    std::string& victim = (i % 3 == 0) ? t : c;
    for (int k = 0; k < 1 + static_cast<int>(next() % 3); ++k) {
      const size_t at = next() % victim.size();
      victim.replace(at, next() % 4, junk[next() % 10]);
    }
    write_text(d.path() / "tokenizer.json", t);
    write_text(d.path() / "tokenizer_config.json", c);
    try {
      const auto tok = HfTokenizer::from_directory(d.str());
      tok->decode(tok->encode("<|im_start|>user\n한국어 😀<|im_end|>"), true);
      ++loaded;
    } catch (const InputError&) {
      ++rejected;
    }
  }
  EXPECT_EQ(loaded + rejected, 60);
  EXPECT_GT(loaded, 0);  // some mutations are harmless (inside a string)
  EXPECT_GT(rejected, 0);
  RecordProperty("loaded", loaded);
}

}  // namespace
}  // namespace omni
