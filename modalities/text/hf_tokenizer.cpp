// HfTokenizer: tokenizer.json + tokenizer_config.json of a Hugging Face directory (see the header).
#include "modalities/text/hf_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "modalities/text/json_brief.h"
#include "modalities/text/unicode.h"

namespace omni {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

constexpr std::uintmax_t kMaxConfigBytes = std::uintmax_t{16} << 20;
constexpr std::uintmax_t kMaxTokenizerJsonBytes = std::uintmax_t{256} << 20;  // as Tokenizer
constexpr int64_t kMaxId = (int64_t{1} << 31) - 1;

// transformers' SPECIAL_TOKENS_ATTRIBUTES, in its order.
constexpr const char* kStandardNames[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                          "pad_token", "cls_token", "mask_token"};

bool is_standard_name(std::string_view key) {
  return std::any_of(std::begin(kStandardNames), std::end(kStandardNames),
                     [&](const char* n) { return key == n; });
}

class ConfigReader {
 public:
  ConfigReader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw InputError("tokenizer config '" + path_ + "': " + what);
  }

  ojson parse(const std::string& text) const {
    ojson j;
    try {
      j = ojson::parse(text);
    } catch (const ojson::exception& e) {
      fail(std::string("not valid JSON: ") + e.what());
    }
    if (!j.is_object()) fail("top level is not a JSON object");
    return j;
  }

  // A token given as a string or as an AddedToken object ({"content": ..., ...}); nullopt for null.
  std::optional<std::string> token_value(const ojson& v, const std::string& key) const {
    if (v.is_null()) return std::nullopt;
    std::string s;
    if (v.is_string()) {
      s = v.get<std::string>();
    } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
      s = v["content"].get<std::string>();
    } else {
      fail("\"" + key + "\" must be a string, an AddedToken object or null, not " +
           text::json_brief(v));
    }
    if (s.empty()) fail("\"" + key + "\" is an empty token");
    if (text::find_invalid_utf8(s) != std::string::npos) fail("\"" + key + "\" is not valid UTF-8");
    return s;
  }

  bool flag(const ojson& obj, const char* key, bool dflt, const std::string& where) const {
    if (!obj.contains(key) || obj[key].is_null()) return dflt;
    if (!obj[key].is_boolean())
      fail(where + ": \"" + key + "\" must be true or false, not " + text::json_brief(obj[key]));
    return obj[key].get<bool>();
  }

 private:
  std::string path_;
};

int64_t parse_id_key(const std::string& key, const ConfigReader& r) {
  if (key.empty() || key.size() > 10 ||
      !std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; }))
    r.fail("added_tokens_decoder key '" + key + "' is not a token id");
  const int64_t id = std::stoll(key);
  if (id > kMaxId) r.fail("added_tokens_decoder id " + key + " is out of range");
  return id;
}

// transformers' Qwen2Tokenizer keeps only the vocab, merges and post-processor of tokenizer.json
// and builds the rest itself (NFC, Split(this regex, Isolated), ByteLevel(add_prefix_space from the
// config, use_regex=false), ByteLevel decoder, a plain BPE); with an added_tokens_decoder in the
// config, the added tokens come from there alone. Rewriting the file the same way gives the ids
// transformers gives even when the file says otherwise.
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::shared_ptr<Tokenizer> load_as_qwen2(const std::string& path, bool add_prefix_space,
                                         bool drop_added_tokens) {
  const std::string text = text::read_limited_file(path, kMaxTokenizerJsonBytes, "tokenizer file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw InputError("tokenizer file '" + path + "': not valid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    return Tokenizer::from_parsed_json(j, path);  // let the loader name the problem
  nlohmann::json& m = j["model"];
  m["dropout"] = nullptr;
  m["unk_token"] = nullptr;
  m["continuing_subword_prefix"] = "";
  m["end_of_word_suffix"] = "";
  m["fuse_unk"] = false;
  m["byte_fallback"] = false;
  m["ignore_merges"] = false;
  j["normalizer"] = {{"type", "NFC"}};
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{"Regex", kQwen2Pattern}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"use_regex", false}}}}};
  j["decoder"] = {{"type", "ByteLevel"}};
  if (drop_added_tokens) j["added_tokens"] = nlohmann::json::array();
  return Tokenizer::from_parsed_json(j, path);
}

}  // namespace

std::shared_ptr<HfTokenizer> HfTokenizer::from_directory(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw InputError("tokenizer directory '" + dir + "' does not exist");
  if (!fs::is_directory(dir, ec))
    throw InputError("tokenizer directory '" + dir + "' is not a directory");
  const fs::path d(dir);
  const std::string tok_path = (d / "tokenizer.json").string();
  if (!fs::exists(tok_path, ec)) {
    if (fs::exists(d / "vocab.json", ec) && fs::exists(d / "merges.txt", ec)) {
      throw InputError("tokenizer directory '" + dir +
                       "' has vocab.json + merges.txt but no tokenizer.json; only tokenizer.json "
                       "is supported (transformers' save_pretrained writes it)");
    }
    throw InputError("tokenizer directory '" + dir + "' has no tokenizer.json");
  }
  std::shared_ptr<HfTokenizer> h(new HfTokenizer());
  h->dir_ = dir;
  const std::string cfg_path = (d / "tokenizer_config.json").string();
  ojson cfg = ojson::object();
  ConfigReader r(cfg_path);
  if (fs::exists(cfg_path, ec))
    cfg = r.parse(text::read_limited_file(cfg_path, kMaxConfigBytes, "tokenizer config"));
  if (cfg.contains("tokenizer_class") && cfg["tokenizer_class"].is_string())
    h->tokenizer_class_ = cfg["tokenizer_class"].get<std::string>();
  const bool qwen2 =
      h->tokenizer_class_ == "Qwen2Tokenizer" || h->tokenizer_class_ == "Qwen2TokenizerFast";
  const bool config_has_added =
      cfg.contains("added_tokens_decoder") && !cfg["added_tokens_decoder"].is_null();
  if (qwen2) {
    bool add_prefix_space = false;
    if (cfg.contains("add_prefix_space") && !cfg["add_prefix_space"].is_null()) {
      if (!cfg["add_prefix_space"].is_boolean())
        r.fail("\"add_prefix_space\" must be true or false");
      add_prefix_space = cfg["add_prefix_space"].get<bool>();
    }
    h->tok_ = load_as_qwen2(tok_path, add_prefix_space, /*drop_added_tokens=*/config_has_added);
  } else {
    h->tok_ = Tokenizer::from_file(tok_path);
  }
  h->tok_->set_replace_invalid_utf8(true);
  Tokenizer& tok = *h->tok_;

  try {
    // Added tokens: transformers rebuilds the added vocabulary from added_tokens_decoder, in id
    // order, so its flags win over tokenizer.json's.
    if (cfg.contains("added_tokens_decoder") && !cfg["added_tokens_decoder"].is_null()) {
      const ojson& dec = cfg["added_tokens_decoder"];
      if (!dec.is_object()) r.fail("\"added_tokens_decoder\" is not an object");
      std::vector<std::pair<int64_t, const ojson*>> entries;
      for (auto it = dec.begin(); it != dec.end(); ++it)
        entries.emplace_back(parse_id_key(it.key(), r), &it.value());
      std::sort(entries.begin(), entries.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      for (const auto& [id, v] : entries) {
        const std::string where = "added_tokens_decoder[\"" + std::to_string(id) + "\"]";
        if (!v->is_object()) r.fail(where + " is not an object");
        const auto content = r.token_value(*v, where);
        if (!content) r.fail(where + " has no content");
        Tokenizer::AddedTokenSpec t;
        t.content = *content;
        t.id = id;
        t.special = r.flag(*v, "special", false, where);
        t.lstrip = r.flag(*v, "lstrip", false, where);
        t.rstrip = r.flag(*v, "rstrip", false, where);
        t.single_word = r.flag(*v, "single_word", false, where);
        t.normalized = r.flag(*v, "normalized", !t.special, where);
        const auto have = tok.token_to_id(t.content);
        if (!have && !tok.has_id(id) && id != tok.vocab_size()) {
          r.fail(where + " '" + t.content +
                 "' is not in tokenizer.json; transformers would add it " + "at the next free id " +
                 std::to_string(tok.vocab_size()) + ", not at " + std::to_string(id));
        }
        try {
          tok.add_token(t);
        } catch (const InputError& e) {
          r.fail(where + " contradicts tokenizer.json: " + e.what());
        }
      }
    } else {
      // Legacy: special_tokens_map.json supplies the named tokens (transformers reads it only in
      // this case).
      const std::string map_path = (d / "special_tokens_map.json").string();
      if (fs::exists(map_path, ec)) {
        ConfigReader mr(map_path);
        const ojson m =
            mr.parse(text::read_limited_file(map_path, kMaxConfigBytes, "special tokens map"));
        for (auto it = m.begin(); it != m.end(); ++it) cfg[it.key()] = it.value();
      }
    }

    // Named tokens: the standard ones, then the model-specific ones.
    std::vector<std::pair<std::string, std::string>> model_specific;
    auto set_named = [&](std::vector<std::pair<std::string, std::string>>& list,
                         const std::string& name, const std::string& value) {
      for (auto& [n, v] : list) {
        if (n == name) {
          v = value;
          return;
        }
      }
      list.emplace_back(name, value);
    };
    for (const char* name : kStandardNames) {
      if (!cfg.contains(name)) continue;
      if (const auto v = r.token_value(cfg[name], name)) h->named_.emplace_back(name, *v);
    }
    bool have_auto = false;
    for (auto it = cfg.begin(); it != cfg.end(); ++it) {
      const std::string& key = it.key();
      if (key.size() < 6 || key.compare(key.size() - 6, 6, "_token") != 0 || is_standard_name(key))
        continue;
      if (!it.value().is_string() && !it.value().is_object()) continue;  // add_bos_token etc.
      if (const auto v = r.token_value(it.value(), key)) {
        set_named(model_specific, key, *v);
        have_auto = true;
      }
    }
    const ojson* extra = nullptr;
    if (cfg.contains("extra_special_tokens") && !cfg["extra_special_tokens"].is_null() &&
        !cfg["extra_special_tokens"].empty()) {
      extra = &cfg["extra_special_tokens"];
    } else if (cfg.contains("additional_special_tokens") &&
               !cfg["additional_special_tokens"].is_null()) {
      extra = &cfg["additional_special_tokens"];
    }
    if (extra && extra->is_object()) {
      for (auto it = extra->begin(); it != extra->end(); ++it) {
        if (const auto v = r.token_value(it.value(), "extra_special_tokens." + it.key())) {
          set_named(model_specific, it.key(), *v);
          have_auto = true;
        }
      }
    } else if (extra) {
      if (!extra->is_array()) r.fail("\"additional_special_tokens\" must be a list");
      for (const auto& e : *extra) {
        if (const auto v = r.token_value(e, "additional_special_tokens"))
          if (std::find(h->extra_.begin(), h->extra_.end(), *v) == h->extra_.end())
            h->extra_.push_back(*v);
      }
    }
    if (!have_auto && cfg.contains("model_specific_special_tokens") &&
        !cfg["model_specific_special_tokens"].is_null()) {
      const ojson& m = cfg["model_specific_special_tokens"];
      if (!m.is_object()) r.fail("\"model_specific_special_tokens\" must be an object");
      for (auto it = m.begin(); it != m.end(); ++it) {
        if (const auto v = r.token_value(it.value(), "model_specific_special_tokens." + it.key()))
          set_named(model_specific, it.key(), *v);
      }
    }
    for (auto& p : model_specific) {
      if (is_standard_name(p.first)) {
        set_named(h->named_, p.first, p.second);
      } else {
        h->named_.push_back(std::move(p));
      }
    }

    // Named and extra special tokens: one the vocabulary lacks is added as a special token at the
    // next free id, as transformers adds it. Qwen2Tokenizer also re-adds every one of them as
    // AddedToken(token, special=True), which resets their flags to the defaults.
    for (const std::string& t : h->all_special_tokens()) {
      const auto id = tok.token_to_id(t);
      bool is_added = false;
      for (const auto& a : tok.added_tokens()) is_added |= a.content == t;
      if (id && is_added && !qwen2) continue;
      Tokenizer::AddedTokenSpec spec;
      spec.content = t;
      spec.special = true;
      spec.id = id ? *id : tok.vocab_size();
      if (spec.id > kMaxId) r.fail("no id left for special token '" + t + "'");
      tok.add_token(spec);
    }

    for (const char* key : {"add_bos_token", "add_eos_token"}) {
      if (cfg.contains(key) && cfg[key].is_boolean() && cfg[key].get<bool>()) {
        r.fail(std::string("\"") + key +
               "\": true is not supported (encode() does not add BOS/EOS tokens; prepend or "
               "append them yourself)");
      }
    }
    if (cfg.contains("split_special_tokens") && !cfg["split_special_tokens"].is_null()) {
      if (!cfg["split_special_tokens"].is_boolean())
        r.fail("\"split_special_tokens\" must be true or false");
      tok.set_encode_special_tokens(cfg["split_special_tokens"].get<bool>());
    }
    if (cfg.contains("model_max_length")) {
      const ojson& m = cfg["model_max_length"];
      if (m.is_number_integer() && m.get<int64_t>() > 0) {
        h->model_max_length_ = m.get<int64_t>();
      } else if (m.is_number_float()) {
        const double v = m.get<double>();
        if (v > 0 && v < 9.0e15 && v == static_cast<double>(static_cast<int64_t>(v)))
          h->model_max_length_ = static_cast<int64_t>(v);
      } else if (!m.is_null() && !m.is_number_unsigned()) {
        r.fail("\"model_max_length\" must be a number, not " + text::json_brief(m));
      }
    }
  } catch (const ojson::exception& e) {
    r.fail(std::string("unexpected JSON structure: ") + e.what());
  }
  return h;
}

std::vector<int64_t> HfTokenizer::encode(std::string_view text) const { return tok_->encode(text); }

std::string HfTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  return tok_->decode(ids, skip_special_tokens);
}

std::optional<int64_t> HfTokenizer::token_to_id(std::string_view token) const {
  return tok_->token_to_id(token);
}

std::string HfTokenizer::id_to_token(int64_t id) const { return tok_->id_to_token(id); }

int64_t HfTokenizer::vocab_size() const { return tok_->vocab_size(); }

bool HfTokenizer::is_special(int64_t id) const { return tok_->is_special(id); }

std::optional<std::string> HfTokenizer::named_token(std::string_view name) const {
  for (const auto& [n, v] : named_)
    if (n == name) return v;
  return std::nullopt;
}

std::optional<int64_t> HfTokenizer::named_token_id(std::string_view name) const {
  const auto t = named_token(name);
  if (!t) return std::nullopt;
  return tok_->token_to_id(*t);
}

int64_t HfTokenizer::require_token_id(std::string_view name) const {
  const auto id = named_token_id(name);
  if (!id) {
    throw InputError("tokenizer in '" + dir_ + "' does not define " + std::string(name) +
                     " (tokenizer_config.json)");
  }
  return *id;
}

std::vector<std::string> HfTokenizer::all_special_tokens() const {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& [n, v] : named_)
    if (seen.insert(v).second) out.push_back(v);
  for (const auto& v : extra_)
    if (seen.insert(v).second) out.push_back(v);
  return out;
}

std::vector<int64_t> HfTokenizer::all_special_ids() const {
  std::vector<int64_t> out;
  for (const auto& t : all_special_tokens()) out.push_back(*tok_->token_to_id(t));
  return out;
}

}  // namespace omni
