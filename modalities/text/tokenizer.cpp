// Hugging Face tokenizer.json byte-level BPE (see tokenizer.h for what is supported).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "modalities/text/tokenizer.h"

#include <pcre2.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <queue>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "modalities/text/hf_tokenizer.h"
#include "modalities/text/json_brief.h"
#include "modalities/text/unicode.h"

namespace omni {

using nlohmann::json;
using text::NormalForm;

namespace {

constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// A compiled PCRE2 pattern in UTF + UCP mode (Unicode classes for \p{L}, \s, ...), JIT-compiled
// when the library supports it.
class Regex {
 public:
  Regex(const std::string& pattern, const std::string& origin) {
    int err = 0;
    PCRE2_SIZE off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
    if (!code_) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      throw InputError(origin + ": pre-tokenizer regex does not compile at offset " +
                       std::to_string(off) + ": " + reinterpret_cast<char*>(msg) +
                       " (pattern: " + pattern + ")");
    }
    jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // All non-overlapping matches in s as [start, end) byte ranges (s is valid UTF-8), empty ones
  // included, as Oniguruma's find_iter gives them to Hugging Face tokenizers: an empty match
  // right where the previous match ended is skipped (the search moves on one code point).
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const {
    out.clear();
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
    size_t pos = 0;
    std::optional<size_t> last_end;
    while (pos <= s.size()) {
      const int rc =
          jit_ ? pcre2_jit_match(code_, subject, s.size(), pos, 0, md, nullptr)
               : pcre2_match(code_, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        pcre2_match_data_free(md);
        throw InputError("tokenizer regex match failed with PCRE2 error " + std::to_string(rc));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      if (ov[1] == ov[0] && last_end == ov[1]) {
        if (pos >= s.size()) break;
        int len = 1;
        text::decode_utf8(s, pos, len);
        pos += len;
        continue;
      }
      out.emplace_back(ov[0], ov[1]);
      pos = ov[1];
      last_end = ov[1];
    }
    pcre2_match_data_free(md);
  }

 private:
  pcre2_code* code_ = nullptr;
  bool jit_ = false;
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokStep {
  enum Kind { kSplit, kByteLevel } kind = kSplit;
  std::shared_ptr<Regex> regex;  // Split, or ByteLevel with use_regex
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;
};

struct AddedToken {
  std::string content;
  int64_t id;
  bool special, lstrip, rstrip, single_word, normalized;
};

// Splits `s` at regex matches following Hugging Face's SplitDelimiterBehavior.
void split_pieces(std::string_view s, const Regex& re, SplitBehavior behavior, bool invert,
                  std::vector<std::string>& out) {
  std::vector<std::pair<size_t, size_t>> m;
  re.find_all(s, m);
  // (start, end, is_delimiter) covering s.
  struct Span {
    size_t a, b;
    bool delim;
  };
  std::vector<Span> spans;
  size_t prev = 0;
  for (auto [a, b] : m) {
    if (a > prev) spans.push_back({prev, a, invert});
    spans.push_back({a, b, !invert});
    prev = b;
  }
  if (prev < s.size()) spans.push_back({prev, s.size(), invert});
  std::vector<std::pair<size_t, size_t>> res;
  bool merge_next = false;
  for (size_t i = 0; i < spans.size(); ++i) {
    const Span& sp = spans[i];
    switch (behavior) {
      case SplitBehavior::kIsolated:
        res.emplace_back(sp.a, sp.b);
        break;
      case SplitBehavior::kRemoved:
        if (!sp.delim) res.emplace_back(sp.a, sp.b);
        break;
      case SplitBehavior::kMergedWithPrevious:
        if (sp.delim && !res.empty() && res.back().second == sp.a && !spans[i - 1].delim)
          res.back().second = sp.b;
        else
          res.emplace_back(sp.a, sp.b);
        break;
      case SplitBehavior::kMergedWithNext:
        if (merge_next)
          res.back().second = sp.b;
        else
          res.emplace_back(sp.a, sp.b);
        merge_next = sp.delim;
        break;
      case SplitBehavior::kContiguous:
        if (sp.delim && i > 0 && spans[i - 1].delim)
          res.back().second = sp.b;
        else
          res.emplace_back(sp.a, sp.b);
        break;
    }
  }
  for (auto [a, b] : res) {
    if (b > a) out.emplace_back(s.substr(a, b - a));  // empty matches leave empty pieces
  }
}

// Ids are stored densely up to a bound proportional to the number of tokens the file defines, and
// in a hash map beyond it, so a file that claims id 2^31 for one token costs one entry, not 2^31.
class IdTable {
 public:
  void reserve_dense(size_t tokens) { dense_limit_ = static_cast<int64_t>(tokens) + 1024; }
  const std::string* find(int64_t id) const {
    if (id < 0) return nullptr;
    if (id < static_cast<int64_t>(dense_.size())) return dense_[id].empty() ? nullptr : &dense_[id];
    const auto it = sparse_.find(id);
    return it == sparse_.end() ? nullptr : &it->second;
  }
  void set(int64_t id, const std::string& token) {
    if (id < dense_limit_) {
      if (id >= static_cast<int64_t>(dense_.size())) dense_.resize(id + 1);
      dense_[id] = token;
    } else {
      sparse_[id] = token;
    }
    max_id_ = std::max(max_id_, id);
  }
  // One past the largest id.
  int64_t size() const { return max_id_ + 1; }

 private:
  int64_t dense_limit_ = 1024;
  int64_t max_id_ = -1;
  std::vector<std::string> dense_;
  std::unordered_map<int64_t, std::string> sparse_;
};

// Limits on what a tokenizer file may make us allocate or recurse into.
constexpr std::uintmax_t kMaxTokenizerFileBytes = std::uintmax_t{256} << 20;
constexpr int kMaxNesting = 16;  // Sequence normalizers / pre-tokenizers inside each other
constexpr int64_t kMaxId = (int64_t{1} << 31) - 1;

}  // namespace

std::string text::read_limited_file(const std::string& path, std::uintmax_t max_bytes,
                                    const std::string& what) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) throw InputError(what + " '" + path + "' does not exist");
  if (!std::filesystem::is_regular_file(st))
    throw InputError(what + " '" + path + "' is not a regular file");
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) throw InputError(what + " '" + path + "' cannot be read: " + ec.message());
  if (size > max_bytes) {
    throw InputError(what + " '" + path + "' is " + std::to_string(size) +
                     " bytes, more than the limit of " + std::to_string(max_bytes));
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(what + " '" + path + "' cannot be opened");
  std::string out(size, '\0');
  f.read(out.data(), static_cast<std::streamsize>(size));
  if (static_cast<std::uintmax_t>(f.gcount()) != size)
    throw InputError(what + " '" + path + "' could not be read completely");
  return out;
}

namespace {

std::string read_file(const std::string& path) {
  return text::read_limited_file(path, kMaxTokenizerFileBytes, "tokenizer file");
}

}  // namespace

struct Tokenizer::Impl {
  std::string origin;
  std::unordered_map<std::string, int64_t> vocab;  // includes added tokens
  IdTable id_to_token;
  std::unordered_set<int64_t> special;  // ids of special added tokens
  struct MergeInfo {
    int32_t rank;
    int64_t new_id;
  };
  std::unordered_map<uint64_t, MergeInfo> merges;
  int64_t unk_id = -1;
  bool fuse_unk = false;
  bool ignore_merges = false;
  std::vector<NormalForm> normalizers;
  std::vector<PreTokStep> steps;
  std::vector<AddedToken> added;
  // Indices into `added` by the first byte of their content, for the match scan.
  std::array<std::vector<int>, 256> added_by_first;
  bool any_normalized_added = false;
  bool encode_special_tokens = false;
  bool replace_invalid_utf8 = false;

  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache;
  static constexpr size_t kCacheLimit = 100000;

  [[noreturn]] void fail(const std::string& what) const {
    throw InputError("tokenizer file '" + origin + "': " + what);
  }

  static uint64_t pair_key(int64_t a, int64_t b) {
    return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b);
  }

  void load(const json& j);
  void load_normalizer(const json& n, int depth = 0);
  void load_pre_tokenizer(const json& p, int depth = 0);
  void load_model(const json& m);
  void add_token(AddedToken a);

  // Splits text on added tokens (Hugging Face AddedVocabulary: leftmost-longest match, then
  // lstrip/rstrip/single_word). `normalized` selects which added tokens take part.
  void split_added(std::string_view s, bool normalized,
                   std::vector<std::pair<std::string, int64_t>>& out) const;
  void pre_tokenize_piece(std::string_view s, std::vector<std::string>& out) const;
  void bpe(const std::string& word, std::vector<int64_t>& out) const;
  void bpe_uncached(const std::string& word, std::vector<int64_t>& out) const;
  std::string normalize(std::string_view s) const {
    std::string r(s);
    for (NormalForm f : normalizers) r = text::normalize(r, f);
    return r;
  }
};

void Tokenizer::Impl::load(const json& j) {
  if (!j.is_object()) fail("top level is not a JSON object");
  if (!j.contains("model") || !j["model"].is_object()) fail("missing \"model\" object");
  {
    size_t n = 0;
    if (j["model"].contains("vocab") && j["model"]["vocab"].is_object())
      n += j["model"]["vocab"].size();
    if (j.contains("added_tokens") && j["added_tokens"].is_array()) n += j["added_tokens"].size();
    id_to_token.reserve_dense(n);
  }
  load_model(j["model"]);
  if (j.contains("normalizer") && !j["normalizer"].is_null()) load_normalizer(j["normalizer"]);
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null())
    load_pre_tokenizer(j["pre_tokenizer"]);
  if (j.contains("post_processor") && !j["post_processor"].is_null()) {
    const std::string t = j["post_processor"].value("type", "");
    if (t != "ByteLevel") {
      fail("post_processor type '" + t +
           "' is not supported (only ByteLevel, which does not change ids)");
    }
  }
  if (j.contains("decoder") && !j["decoder"].is_null()) {
    const std::string t = j["decoder"].value("type", "");
    if (t != "ByteLevel") fail("decoder type '" + t + "' is not supported (expected ByteLevel)");
  }
  if (j.contains("added_tokens")) {
    if (!j["added_tokens"].is_array()) fail("\"added_tokens\" is not an array");
    for (const auto& t : j["added_tokens"]) {
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
          !t.contains("content") || !t["content"].is_string())
        fail("added token without integer \"id\" and string \"content\": " + text::json_brief(t));
      add_token(AddedToken{t["content"].get<std::string>(), t["id"].get<int64_t>(),
                           t.value("special", false), t.value("lstrip", false),
                           t.value("rstrip", false), t.value("single_word", false),
                           t.value("normalized", !t.value("special", false))});
    }
  }
}

void Tokenizer::Impl::add_token(AddedToken a) {
  const std::string desc = "added token '" + a.content + "' (id " + std::to_string(a.id) + ")";
  if (a.id < 0 || a.id > kMaxId) fail(desc + ": id out of range 0.." + std::to_string(kMaxId));
  if (a.content.empty()) fail("added token with empty content (id " + std::to_string(a.id) + ")");
  if (text::find_invalid_utf8(a.content) != std::string::npos)
    fail("added token content is not valid UTF-8: id " + std::to_string(a.id));
  const auto it = vocab.find(a.content);
  if (it != vocab.end() && it->second != a.id) {
    fail("added token '" + a.content + "' has id " + std::to_string(a.id) +
         " but the vocabulary gives it " + std::to_string(it->second));
  }
  if (const std::string* other = id_to_token.find(a.id); other && *other != a.content)
    fail(desc + ": the id is already used by '" + *other + "'");
  vocab[a.content] = a.id;
  id_to_token.set(a.id, a.content);
  if (a.special) {
    special.insert(a.id);
  } else {
    special.erase(a.id);
  }
  // A token given again (tokenizer_config.json after tokenizer.json) replaces the earlier flags.
  for (size_t k = 0; k < added.size(); ++k) {
    if (added[k].content != a.content) continue;
    added[k] = std::move(a);
    any_normalized_added = false;
    for (const AddedToken& t : added) any_normalized_added |= t.normalized;
    std::lock_guard<std::mutex> lock(cache_mu);
    cache.clear();
    return;
  }
  any_normalized_added |= a.normalized;
  added_by_first[static_cast<unsigned char>(a.content[0])].push_back(
      static_cast<int>(added.size()));
  added.push_back(std::move(a));
  std::lock_guard<std::mutex> lock(cache_mu);
  cache.clear();
}

void Tokenizer::Impl::load_normalizer(const json& n, int depth) {
  if (!n.is_object()) fail("normalizer is not a JSON object: " + text::json_brief(n));
  if (depth > kMaxNesting)
    fail("normalizers nested more than " + std::to_string(kMaxNesting) + " deep");
  const std::string t = n.value("type", "");
  if (t == "NFC") {
    normalizers.push_back(NormalForm::kNFC);
  } else if (t == "NFD") {
    normalizers.push_back(NormalForm::kNFD);
  } else if (t == "NFKC") {
    normalizers.push_back(NormalForm::kNFKC);
  } else if (t == "NFKD") {
    normalizers.push_back(NormalForm::kNFKD);
  } else if (t == "Sequence") {
    if (!n.contains("normalizers") || !n["normalizers"].is_array())
      fail("Sequence normalizer without a \"normalizers\" array");
    for (const auto& s : n["normalizers"]) load_normalizer(s, depth + 1);
  } else {
    fail("normalizer type '" + t + "' is not supported (NFC, NFD, NFKC, NFKD, Sequence)");
  }
}

void Tokenizer::Impl::load_pre_tokenizer(const json& p, int depth) {
  if (!p.is_object()) fail("pre_tokenizer is not a JSON object: " + text::json_brief(p));
  if (depth > kMaxNesting)
    fail("pre_tokenizers nested more than " + std::to_string(kMaxNesting) + " deep");
  const std::string t = p.value("type", "");
  if (t == "Sequence") {
    if (!p.contains("pretokenizers") || !p["pretokenizers"].is_array())
      fail("Sequence pre_tokenizer without a \"pretokenizers\" array");
    for (const auto& s : p["pretokenizers"]) load_pre_tokenizer(s, depth + 1);
  } else if (t == "ByteLevel") {
    PreTokStep s;
    s.kind = PreTokStep::kByteLevel;
    s.add_prefix_space = p.value("add_prefix_space", false);
    if (p.value("use_regex", true)) s.regex = std::make_shared<Regex>(kGpt2Pattern, origin);
    steps.push_back(std::move(s));
  } else if (t == "Split") {
    PreTokStep s;
    s.kind = PreTokStep::kSplit;
    if (!p.contains("pattern") || !p["pattern"].is_object()) fail("Split without a \"pattern\"");
    const json& pat = p["pattern"];
    if (pat.contains("Regex") && pat["Regex"].is_string()) {
      s.regex = std::make_shared<Regex>(pat["Regex"].get<std::string>(), origin);
    } else if (pat.contains("String") && pat["String"].is_string()) {
      // A literal: every character that PCRE2 reads specially is escaped (\Q...\E would end
      // early at a "\E" in the string).
      std::string lit;
      for (char c : pat["String"].get<std::string>()) {
        if (std::strchr("\\^$.|?*+()[]{}", c) && c != '\0') lit += '\\';
        lit += c;
      }
      s.regex = std::make_shared<Regex>(lit, origin);
    } else {
      fail("Split pattern must be {\"Regex\": ...} or {\"String\": ...}: " + text::json_brief(pat));
    }
    const std::string b = p.value("behavior", "Isolated");
    if (b == "Removed") {
      s.behavior = SplitBehavior::kRemoved;
    } else if (b == "Isolated") {
      s.behavior = SplitBehavior::kIsolated;
    } else if (b == "MergedWithPrevious") {
      s.behavior = SplitBehavior::kMergedWithPrevious;
    } else if (b == "MergedWithNext") {
      s.behavior = SplitBehavior::kMergedWithNext;
    } else if (b == "Contiguous") {
      s.behavior = SplitBehavior::kContiguous;
    } else {
      fail("unknown Split behavior '" + b + "'");
    }
    s.invert = p.value("invert", false);
    steps.push_back(std::move(s));
  } else {
    fail("pre_tokenizer type '" + t + "' is not supported (ByteLevel, Split, Sequence)");
  }
}

void Tokenizer::Impl::load_model(const json& m) {
  const std::string type = m.value("type", "BPE");
  if (type != "BPE") fail("model type '" + type + "' is not supported (expected BPE)");
  auto nonempty_string = [&](const char* key) {
    return m.contains(key) && m[key].is_string() && !m[key].get<std::string>().empty();
  };
  if (nonempty_string("continuing_subword_prefix") || nonempty_string("end_of_word_suffix"))
    fail("BPE continuing_subword_prefix / end_of_word_suffix are not supported (not byte-level)");
  if (m.value("byte_fallback", false)) fail("BPE byte_fallback is not supported");
  if (m.contains("dropout") && m["dropout"].is_number() && m["dropout"].get<double>() > 0.0)
    fail("BPE dropout is not supported (encoding must be deterministic)");
  if (!m.contains("vocab") || !m["vocab"].is_object()) fail("model has no \"vocab\" object");
  for (const auto& [tok, id] : m["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxId)
      fail("vocab entry '" + tok + "' has a bad id " + text::json_brief(id));
    if (tok.empty()) fail("vocab has an empty token (id " + text::json_brief(id) + ")");
    const int64_t i = id.get<int64_t>();
    if (const std::string* other = id_to_token.find(i)) {
      fail("vocab id " + std::to_string(i) + " is used by both '" + *other + "' and '" + tok + "'");
    }
    id_to_token.set(i, tok);
    vocab.emplace(tok, i);
  }
  if (m.contains("unk_token") && m["unk_token"].is_string()) {
    const auto it = vocab.find(m["unk_token"].get<std::string>());
    if (it == vocab.end())
      fail("unk_token '" + m["unk_token"].get<std::string>() + "' not in vocab");
    unk_id = it->second;
  }
  fuse_unk = m.value("fuse_unk", false);
  ignore_merges = m.value("ignore_merges", false);
  if (!m.contains("merges") || !m["merges"].is_array()) fail("model has no \"merges\" array");
  int32_t rank = 0;
  for (const auto& e : m["merges"]) {
    std::string a, b;
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail("merge #" + std::to_string(rank) + " '" + s +
             "' is not two tokens separated by a space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      fail("merge #" + std::to_string(rank) +
           " is neither \"a b\" nor [\"a\", \"b\"]: " + text::json_brief(e));
    }
    const auto ia = vocab.find(a), ib = vocab.find(b), iab = vocab.find(a + b);
    if (ia == vocab.end() || ib == vocab.end() || iab == vocab.end()) {
      fail("merge #" + std::to_string(rank) + " (" + a + ", " + b + "): '" +
           (ia == vocab.end()   ? a
            : ib == vocab.end() ? b
                                : a + b) +
           "' is not in the vocab");
    }
    // The first occurrence of a pair keeps its (higher) priority, as in Hugging Face.
    merges.emplace(pair_key(ia->second, ib->second), MergeInfo{rank, iab->second});
    ++rank;
  }
}

void Tokenizer::Impl::split_added(std::string_view s, bool normalized,
                                  std::vector<std::pair<std::string, int64_t>>& out) const {
  size_t start_offset = 0;  // end of the previous accepted match
  size_t pos = 0;
  // The code point at byte i, and the start of the one before byte i (not before `floor`).
  auto cp_at = [&](size_t i) {
    int len = 0;
    return text::decode_utf8(s, i, len);
  };
  auto cp_start_before = [&](size_t i, size_t floor) {
    size_t p = i - 1;
    while (p > floor && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
    return p;
  };
  auto flush = [&](size_t a, size_t b) {
    if (b > a) out.emplace_back(std::string(s.substr(a, b - a)), -1);
  };
  while (pos < s.size()) {
    // Leftmost-longest match at or after pos.
    const AddedToken* best = nullptr;
    size_t at = pos;
    for (; at < s.size() && !best; ++at) {
      for (int k : added_by_first[static_cast<unsigned char>(s[at])]) {
        const AddedToken& t = added[k];
        if (t.normalized != normalized || (encode_special_tokens && t.special)) continue;
        if (t.content[0] != s[at] || (best && best->content.size() >= t.content.size())) continue;
        if (s.compare(at, t.content.size(), t.content) == 0) best = &t;
      }
    }
    if (!best) break;
    --at;
    size_t a = at, b = at + best->content.size();
    pos = b;
    if (best->single_word) {
      // The code points either side must not be word characters (regex \w).
      const bool start_ok = a == 0 || !text::is_word_char(cp_at(cp_start_before(a, 0)));
      const bool stop_ok = b == s.size() || !text::is_word_char(cp_at(b));
      if (!start_ok || !stop_ok) continue;
    }
    if (best->lstrip) {
      size_t na = a;
      while (na > start_offset) {
        const size_t p = cp_start_before(na, start_offset);
        if (!text::is_unicode_whitespace(cp_at(p))) break;
        na = p;
      }
      a = na;
    }
    if (best->rstrip) {
      while (b < s.size()) {
        int len = 0;
        if (!text::is_unicode_whitespace(text::decode_utf8(s, b, len))) break;
        b += len;
      }
      pos = b;
    }
    flush(start_offset, a);
    out.emplace_back(best->content, best->id);
    start_offset = b;
  }
  flush(start_offset, s.size());
}

void Tokenizer::Impl::pre_tokenize_piece(std::string_view s, std::vector<std::string>& out) const {
  std::vector<std::string> cur{std::string(s)}, next;
  for (const PreTokStep& st : steps) {
    next.clear();
    for (const std::string& p : cur) {
      if (st.kind == PreTokStep::kSplit) {
        split_pieces(p, *st.regex, st.behavior, st.invert, next);
        continue;
      }
      std::string q = (st.add_prefix_space && (p.empty() || p[0] != ' ')) ? " " + p : p;
      std::vector<std::string> parts;
      if (st.regex) {
        split_pieces(q, *st.regex, SplitBehavior::kIsolated, false, parts);
      } else {
        parts.push_back(std::move(q));
      }
      for (const std::string& part : parts) {
        std::string mapped;
        mapped.reserve(part.size() * 2);
        for (char c : part) mapped += text::byte_to_unicode(static_cast<uint8_t>(c));
        next.push_back(std::move(mapped));
      }
    }
    cur.swap(next);
  }
  for (auto& p : cur)
    if (!p.empty()) out.push_back(std::move(p));
}

void Tokenizer::Impl::bpe_uncached(const std::string& word, std::vector<int64_t>& out) const {
  if (ignore_merges) {
    const auto it = vocab.find(word);
    if (it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Symbols as a linked list over the characters of the word.
  struct Sym {
    int64_t id;
    int prev, next;
  };
  std::vector<Sym> syms;
  syms.reserve(word.size());
  for (size_t i = 0; i < word.size();) {
    int len = 1;
    text::decode_utf8(word, i, len);
    const auto it = vocab.find(word.substr(i, len));
    i += len;
    int64_t id = it != vocab.end() ? it->second : unk_id;
    if (id < 0) continue;  // unknown character and no unk token: dropped, as Hugging Face does
    if (it == vocab.end() && fuse_unk && !syms.empty() && syms.back().id == unk_id) continue;
    syms.push_back({id, static_cast<int>(syms.size()) - 1, static_cast<int>(syms.size()) + 1});
  }
  if (syms.empty()) return;
  syms.back().next = -1;
  // Min-heap on (rank, position), as Hugging Face's Word::merge_all.
  struct Cand {
    int32_t rank;
    int pos;
    int64_t left, right, new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int i) {
    const int j = syms[i].next;
    if (j < 0) return;
    const auto it = merges.find(pair_key(syms[i].id, syms[j].id));
    if (it != merges.end())
      heap.push({it->second.rank, i, syms[i].id, syms[j].id, it->second.new_id});
  };
  for (int i = 0; i + 1 < static_cast<int>(syms.size()); ++i) push(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& l = syms[c.pos];
    // Stale entries: the left symbol was merged away or changed, or its neighbour changed.
    if (l.id != c.left || l.next < 0 || syms[l.next].id != c.right) continue;
    const int r = l.next;
    l.id = c.new_id;
    l.next = syms[r].next;
    if (l.next >= 0) syms[l.next].prev = c.pos;
    syms[r].id = -1;  // dead
    if (l.prev >= 0) push(l.prev);
    push(c.pos);
  }
  for (int i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

void Tokenizer::Impl::bpe(const std::string& word, std::vector<int64_t>& out) const {
  {
    std::lock_guard<std::mutex> lock(cache_mu);
    const auto it = cache.find(word);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int64_t> ids;
  bpe_uncached(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mu);
  if (cache.size() >= kCacheLimit) cache.clear();
  cache.emplace(word, std::move(ids));
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::shared_ptr<Tokenizer> Tokenizer::from_file(const std::string& path) {
  return from_json(read_file(path), path);
}

std::shared_ptr<Tokenizer> Tokenizer::from_json(std::string_view text, const std::string& origin) {
  auto impl = std::make_unique<Impl>();
  impl->origin = origin;
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    impl->fail(std::string("not valid JSON: ") + e.what());
  }
  return from_parsed_json(j, origin);
}

std::shared_ptr<Tokenizer> Tokenizer::from_parsed_json(const nlohmann::json& j,
                                                       const std::string& origin) {
  auto impl = std::make_unique<Impl>();
  impl->origin = origin;
  try {
    impl->load(j);
  } catch (const json::exception& e) {
    impl->fail(std::string("unexpected JSON structure: ") + e.what());
  }
  return std::shared_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view s) const {
  std::vector<std::string> out;
  std::vector<std::pair<std::string, int64_t>> segs, segs2;
  impl_->split_added(s, false, segs);
  for (auto& [piece, id] : segs) {
    if (id >= 0) continue;
    segs2.clear();
    impl_->split_added(impl_->normalize(piece), true, segs2);
    for (auto& [p2, id2] : segs2)
      if (id2 < 0) impl_->pre_tokenize_piece(p2, out);
  }
  return out;
}

std::vector<int64_t> Tokenizer::encode(std::string_view text) const {
  const size_t bad = text::find_invalid_utf8(text);
  std::string replaced;
  if (bad != std::string_view::npos) {
    if (!impl_->replace_invalid_utf8) {
      throw InputError("Tokenizer(" + impl_->origin +
                       ")::encode: input is not valid UTF-8 at byte " + std::to_string(bad));
    }
    replaced = text::utf8_lossy(text);
  }
  const std::string_view s = bad != std::string_view::npos ? std::string_view(replaced) : text;
  std::vector<int64_t> ids;
  ids.reserve(s.size() / 3 + 4);
  std::vector<std::pair<std::string, int64_t>> segs, segs2;
  std::vector<std::string> words;
  impl_->split_added(s, false, segs);
  for (auto& [piece, id] : segs) {
    if (id >= 0) {
      ids.push_back(id);
      continue;
    }
    segs2.clear();
    if (impl_->any_normalized_added) {
      impl_->split_added(impl_->normalize(piece), true, segs2);
    } else {
      segs2.emplace_back(impl_->normalize(piece), -1);
    }
    for (auto& [p2, id2] : segs2) {
      if (id2 >= 0) {
        ids.push_back(id2);
        continue;
      }
      words.clear();
      impl_->pre_tokenize_piece(p2, words);
      for (const std::string& w : words) impl_->bpe(w, ids);
    }
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int64_t id : ids) {
    const std::string* found = impl_->id_to_token.find(id);
    if (!found) {
      throw InputError("Tokenizer(" + impl_->origin + ")::decode: id " + std::to_string(id) +
                       " is not in the vocabulary (ids 0.." + std::to_string(vocab_size() - 1) +
                       ")");
    }
    if (skip_special_tokens && impl_->special.count(id)) continue;
    const std::string& tok = *found;
    // Byte-level decoding per token; a token with characters outside the byte table (an added
    // token such as "<think>" is fine, "한" is not) is copied as UTF-8, as Hugging Face does.
    std::string b;
    bool all_mapped = true;
    for (size_t i = 0; i < tok.size();) {
      int len = 1;
      const int byte = text::unicode_to_byte(text::decode_utf8(tok, i, len));
      if (byte < 0) {
        all_mapped = false;
        break;
      }
      b.push_back(static_cast<char>(byte));
      i += len;
    }
    bytes += all_mapped ? b : tok;
  }
  return text::utf8_lossy(bytes);
}

std::optional<int64_t> Tokenizer::token_to_id(std::string_view token) const {
  const auto it = impl_->vocab.find(std::string(token));
  if (it == impl_->vocab.end()) return std::nullopt;
  return it->second;
}

std::string Tokenizer::id_to_token(int64_t id) const {
  const std::string* found = impl_->id_to_token.find(id);
  if (!found)
    throw InputError("Tokenizer(" + impl_->origin + "): id " + std::to_string(id) +
                     " is not in the vocabulary");
  return *found;
}

bool Tokenizer::has_id(int64_t id) const { return impl_->id_to_token.find(id) != nullptr; }

int64_t Tokenizer::vocab_size() const { return impl_->id_to_token.size(); }

void Tokenizer::add_token(const AddedTokenSpec& t) {
  impl_->add_token(
      AddedToken{t.content, t.id, t.special, t.lstrip, t.rstrip, t.single_word, t.normalized});
}

std::vector<Tokenizer::AddedTokenSpec> Tokenizer::added_tokens() const {
  std::vector<AddedTokenSpec> out;
  for (const AddedToken& a : impl_->added)
    out.push_back({a.content, a.id, a.special, a.lstrip, a.rstrip, a.single_word, a.normalized});
  std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) { return x.id < y.id; });
  return out;
}

void Tokenizer::set_replace_invalid_utf8(bool on) { impl_->replace_invalid_utf8 = on; }

const std::string& Tokenizer::origin() const { return impl_->origin; }

void Tokenizer::set_encode_special_tokens(bool on) {
  impl_->encode_special_tokens = on;
  std::lock_guard<std::mutex> lock(impl_->cache_mu);
  impl_->cache.clear();
}

bool Tokenizer::is_special(int64_t id) const { return impl_->special.count(id) > 0; }

std::shared_ptr<TextTokenizer> load_tokenizer(const std::string& spec) {
  if (spec == "byte") return std::make_shared<ByteTokenizer>();
  std::error_code ec;
  if (std::filesystem::is_directory(spec, ec)) return HfTokenizer::from_directory(spec);
  return Tokenizer::from_file(spec);
}

}  // namespace omni
