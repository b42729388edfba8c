// Tokenizer parity with Hugging Face `tokenizers` (fixtures from
// scripts/fixtures/make_tokenizer_fixture.py), error reporting, and the byte tokenizer.
#include "modalities/text/tokenizer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace omni {
namespace {

const std::string kDir = std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/text/";

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("missing fixture " + path);
  return nlohmann::json::parse(f);
}

std::string show(const std::vector<int64_t>& ids) {
  std::string s;
  for (auto i : ids) s += std::to_string(i) + " ";
  return s;
}

void check_parity(const std::string& name) {
  const auto fx = read_json(kDir + name + "_cases.json");
  const auto tok = Tokenizer::from_file(kDir + fx["tokenizer"].get<std::string>());
  EXPECT_EQ(tok->vocab_size(), fx["vocab_size"].get<int64_t>());
  int round_trips = 0;
  for (const auto& c : fx["cases"]) {
    const std::string text = c["text"].get<std::string>();
    const auto expected = c["ids"].get<std::vector<int64_t>>();
    const auto ids = tok->encode(text);
    EXPECT_EQ(ids, expected) << name << ": '" << text << "'\n  got      " << show(ids)
                             << "\n  expected " << show(expected);
    const std::string decoded = tok->decode(ids);
    EXPECT_EQ(decoded, c["decoded"].get<std::string>()) << name << ": '" << text << "'";
    // Texts already in NFC and without stripping tokens come back byte for byte.
    if (c["decoded"].get<std::string>() == text) {
      EXPECT_EQ(decoded, text);
      ++round_trips;
    }
  }
  EXPECT_GE(round_trips, 25) << name;
}

TEST(TokenizerParity, Qwen2Style) { check_parity("qwen2"); }
TEST(TokenizerParity, Gpt2Style) { check_parity("gpt2"); }

// One change each to the GPT-2 fixture (scripts/fixtures/make_tokenizer_variants_fixture.py):
// every Split behaviour over patterns with empty matches and String patterns holding regex
// syntax, and added tokens with single_word, lstrip/rstrip and normalized.
TEST(TokenizerParity, Gpt2Variants) {
  const auto fx = read_json(kDir + "tokenizer_variants_cases.json");
  const auto base = read_json(kDir + fx["base"].get<std::string>());
  const auto& texts = fx["split_texts"];
  int checked = 0;
  for (const auto& v : fx["variants"]) {
    nlohmann::json t = base;
    std::string name;
    if (v.contains("split")) {
      t["pre_tokenizer"] = {
          {"type", "Sequence"},
          {"pretokenizers", nlohmann::json::array({v["split"], fx["split_then"]})}};
      name = v["split"].dump();
    } else {
      name = v["name"].get<std::string>();
      if (v.contains("normalizer")) t["normalizer"] = v["normalizer"];
      if (v.contains("token_flags")) t["added_tokens"][0].update(v["token_flags"]);
    }
    const auto tok = Tokenizer::from_json(t.dump(), name);
    tok->set_replace_invalid_utf8(true);
    const bool split = v.contains("split");
    const auto& list = split ? v["results"] : v["cases"];
    for (size_t i = 0; i < list.size(); ++i) {
      const auto& c = list[i];
      const std::string text = split ? texts[i].get<std::string>() : c["text"].get<std::string>();
      const auto expected = c["ids"].get<std::vector<int64_t>>();
      const auto ids = tok->encode(text);
      EXPECT_EQ(ids, expected) << name << ": '" << text << "'\n  got      " << show(ids)
                               << "\n  expected " << show(expected);
      if (split) {
        EXPECT_EQ(tok->pre_tokenize(text), c["pieces"].get<std::vector<std::string>>())
            << name << ": '" << text << "'";
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 356);
}

TEST(Tokenizer, PreTokenizeSplitsLikeQwen2) {
  const auto tok = Tokenizer::from_file(kDir + "qwen2_tokenizer.json");
  const auto p = tok->pre_tokenize("Hello world's 123");
  // "Ġ" is the byte-level form of the space; digits are split one by one in Qwen2's regex.
  const std::vector<std::string> expected = {"Hello", "\xC4\xA0world", "'s", "\xC4\xA0", "1", "2",
                                             "3"};
  EXPECT_EQ(p, expected);
}

TEST(Tokenizer, SpecialTokensCanBeTreatedAsText) {
  const auto tok = Tokenizer::from_file(kDir + "qwen2_tokenizer.json");
  const int64_t eot = tok->token_to_id("<|endoftext|>").value();
  EXPECT_TRUE(tok->is_special(eot));
  EXPECT_EQ(tok->encode("a<|endoftext|>b").size(), 3u);
  tok->set_encode_special_tokens(true);
  const auto ids = tok->encode("a<|endoftext|>b");
  EXPECT_GT(ids.size(), 3u);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), eot), 0);
  EXPECT_EQ(tok->decode(ids), "a<|endoftext|>b");
  tok->set_encode_special_tokens(false);
  EXPECT_EQ(tok->decode(tok->encode("x<|endoftext|>y"), /*skip_special_tokens=*/true), "xy");
}

TEST(Tokenizer, RejectsInvalidUtf8AndUnknownIds) {
  const auto tok = Tokenizer::from_file(kDir + "qwen2_tokenizer.json");
  EXPECT_THROW(tok->encode("ok \xFF\xFE bad"), InputError);
  EXPECT_THROW(tok->decode({tok->vocab_size()}), InputError);
  EXPECT_THROW(tok->decode({-1}), InputError);
}

void expect_load_error(const std::string& json, const std::string& needle) {
  try {
    Tokenizer::from_json(json, "bad.json");
    ADD_FAILURE() << "no error for " << json;
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

TEST(Tokenizer, MalformedFilesNameTheProblem) {
  EXPECT_THROW(Tokenizer::from_file(kDir + "does_not_exist.json"), InputError);
  expect_load_error("{not json", "not valid JSON");
  expect_load_error("[]", "not a JSON object");
  expect_load_error(R"({"normalizer": null})", "model");
  expect_load_error(R"({"model": {"type": "WordPiece", "vocab": {}}})", "WordPiece");
  expect_load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}}})", "merges");
  expect_load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})",
                    "'ab' is not in the vocab");
  expect_load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}})",
                    "two tokens");
  expect_load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}})",
                    "used by both");
  expect_load_error(
      R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
          "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}}})",
      "does not compile");
  expect_load_error(R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
                        "pre_tokenizer": {"type": "Metaspace"}})",
                    "Metaspace");
  expect_load_error(R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
                        "post_processor": {"type": "TemplateProcessing"}})",
                    "TemplateProcessing");
}

TEST(Tokenizer, MergePriorityAndBothMergeForms) {
  // "a a a": rank 0 merges (a, a) leftmost first, then (aa, a) has rank 1.
  const std::string base = R"({"model": {"type": "BPE", "vocab": {"a": 0, "aa": 1, "aaa": 2,
      "b": 3, "ab": 4}, "merges": MERGES}})";
  for (const std::string merges :
       {R"(["a a", "aa a", "a b"])", R"([["a","a"],["aa","a"],["a","b"]])"}) {
    std::string j = base;
    j.replace(j.find("MERGES"), 6, merges);
    const auto tok = Tokenizer::from_json(j);
    EXPECT_EQ(tok->encode("aaa"), (std::vector<int64_t>{2}));
    EXPECT_EQ(tok->encode("aaaa"), (std::vector<int64_t>{1, 1}));
    EXPECT_EQ(tok->encode("aab"), (std::vector<int64_t>{1, 3}));  // (a,a) outranks (a,b)
    EXPECT_EQ(tok->decode(tok->encode("aab")), "aab");
  }
}

TEST(ByteTokenizer, StableIdsAndRoundTrip) {
  ByteTokenizer t;
  EXPECT_EQ(t.vocab_size(), 272);
  EXPECT_EQ(t.token_to_id("<|pad|>"), ByteTokenizer::kPad);
  EXPECT_EQ(t.token_to_id("<|image_start|>"), 259);
  EXPECT_EQ(t.token_to_id("<|audio_end|>"), ByteTokenizer::kAudioEnd);
  EXPECT_EQ(t.token_to_id("<|mask|>"), 271);
  EXPECT_EQ(t.encode("<|bos|>hi<|eos|>"), (std::vector<int64_t>{257, 'h', 'i', 258}));
  EXPECT_EQ(t.encode("<|bo"), (std::vector<int64_t>{'<', '|', 'b', 'o'}));
  const std::string bytes("\x00\xFF\xFE 한국어 😀 <|sep|>", 24);
  EXPECT_EQ(t.decode(t.encode(bytes)), bytes);
  EXPECT_EQ(t.decode(t.encode("a<|sep|>b"), true), "ab");
  EXPECT_THROW(t.decode({272}), InputError);
  EXPECT_EQ(load_tokenizer("byte")->vocab_size(), 272);
}

}  // namespace
}  // namespace omni
