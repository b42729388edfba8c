// Text tokenizers: the common interface, byte-level BPE loaded from a Hugging Face tokenizer.json
// (GPT-2 / Qwen2 style), and the built-in byte tokenizer the shipped demo model uses.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace omni {

class TextTokenizer {
 public:
  virtual ~TextTokenizer() = default;
  // Text (UTF-8) -> ids. Special tokens written in the text are recognised.
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;
  // Ids -> text. Throws InputError for an id outside the vocabulary.
  virtual std::string decode(const std::vector<int64_t>& ids,
                             bool skip_special_tokens = false) const = 0;
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;
  // The token's string as stored in the vocabulary (byte-level form for BPE tokens).
  virtual std::string id_to_token(int64_t id) const = 0;
  // One past the largest id (ids are 0..vocab_size-1; a Hugging Face vocabulary may have holes).
  virtual int64_t vocab_size() const = 0;
};

// Byte-level BPE from a Hugging Face tokenizer.json. Supported: model BPE (vocab; merges as "a b"
// strings or [a, b] lists; unk_token, fuse_unk, ignore_merges), added tokens (special,
// lstrip/rstrip, single_word, normalized), normalizers NFC/NFD/NFKC/NFKD (and Sequence of them),
// pre-tokenizers ByteLevel (add_prefix_space, use_regex) and Split(Regex or String, any behavior,
// invert) alone or in a Sequence, decoder ByteLevel. Regexes run on PCRE2 where Hugging Face uses
// Oniguruma: the same matches for the patterns models ship (Unicode classes, lookarounds), and
// empty matches split as Oniguruma's do (every code point between them its own piece). The
// post-processor is not applied (ByteLevel is a no-op for ids; templates that add BOS/EOS are
// rejected so no one gets silently different ids).
// encode() is thread-safe (the word cache is locked).
// Limits: the file is at most 256 MiB (checked before reading), ids at most 2^31-1 and stored so
// that memory follows the number of tokens listed, not the largest id claimed (ids may have
// holes), Sequence normalizers / pre-tokenizers nest at most 16 deep.
class Tokenizer : public TextTokenizer {
 public:
  // Throws InputError naming the file and the problem for unreadable, malformed or unsupported
  // files.
  static std::shared_ptr<Tokenizer> from_file(const std::string& path);
  static std::shared_ptr<Tokenizer> from_json(std::string_view json,
                                              const std::string& origin = "<tokenizer json>");
  // The same from an already parsed document (HfTokenizer rewrites parts of tokenizer.json).
  static std::shared_ptr<Tokenizer> from_parsed_json(const nlohmann::json& json,
                                                     const std::string& origin);
  ~Tokenizer() override;

  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int64_t>& ids,
                     bool skip_special_tokens = false) const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int64_t id) const override;
  int64_t vocab_size() const override;

  // Like Hugging Face's encode_special_tokens: when true, special added tokens in the text are not
  // recognised and are tokenized as ordinary text. Default false.
  void set_encode_special_tokens(bool on);
  // What encode() does with text that is not valid UTF-8: false (default) throws InputError; true
  // replaces each maximal invalid subsequence with U+FFFD first, as Python's
  // bytes.decode("utf-8", errors="replace") and Rust's from_utf8_lossy do.
  void set_replace_invalid_utf8(bool on);
  bool is_special(int64_t id) const;
  // Whether `id` names a token (ids may have holes).
  bool has_id(int64_t id) const;

  // An added token as tokenizer.json / tokenizer_config.json describe it.
  struct AddedTokenSpec {
    std::string content;
    int64_t id = 0;
    bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
  };
  // Adds an added token, or replaces the flags of the added token with the same content and id.
  // Throws InputError if the content has another id or the id holds another token.
  // Not thread-safe: call before sharing the tokenizer.
  void add_token(const AddedTokenSpec& token);
  // The added tokens, by id.
  std::vector<AddedTokenSpec> added_tokens() const;
  // Where the tokenizer was loaded from (file path or the origin given to from_json).
  const std::string& origin() const;
  // Pieces after normalisation and pre-tokenization (byte-level form), for tests and debugging.
  std::vector<std::string> pre_tokenize(std::string_view text) const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// 256 byte ids followed by a fixed, stable list of special tokens (kSpecialTokens, ids 256...).
// Special token strings written in the text are recognised (longest match); everything else is
// encoded as its UTF-8 bytes, so any text round-trips exactly.
class ByteTokenizer : public TextTokenizer {
 public:
  // Append-only: ids are part of the shipped demo model's contract.
  static constexpr const char* kSpecialTokens[] = {
      "<|pad|>",       "<|bos|>",         "<|eos|>",       "<|image_start|>",
      "<|image_end|>", "<|audio_start|>", "<|audio_end|>", "<|video_start|>",
      "<|video_end|>", "<|image_pad|>",   "<|audio_pad|>", "<|video_pad|>",
      "<|user|>",      "<|assistant|>",   "<|sep|>",       "<|mask|>",
  };
  static constexpr int64_t kNumSpecial = sizeof(kSpecialTokens) / sizeof(kSpecialTokens[0]);
  static constexpr int64_t kPad = 256, kBos = 257, kEos = 258, kImageStart = 259, kImageEnd = 260,
                           kAudioStart = 261, kAudioEnd = 262, kVideoStart = 263, kVideoEnd = 264,
                           kImagePad = 265, kAudioPad = 266, kVideoPad = 267, kUser = 268,
                           kAssistant = 269, kSep = 270, kMask = 271;

  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int64_t>& ids,
                     bool skip_special_tokens = false) const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int64_t id) const override;
  int64_t vocab_size() const override { return 256 + kNumSpecial; }
};

// "byte" -> ByteTokenizer; a directory -> HfTokenizer::from_directory (hf_tokenizer.h); anything
// else is a path to a tokenizer.json.
std::shared_ptr<TextTokenizer> load_tokenizer(const std::string& spec);

}  // namespace omni
