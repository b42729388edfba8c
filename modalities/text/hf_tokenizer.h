// The tokenizer of a Hugging Face checkpoint directory: tokenizer.json plus tokenizer_config.json,
// giving the ids, special tokens and decoding that transformers' AutoTokenizer.from_pretrained(dir)
// gives (checked against transformers 5.x on a Qwen2.5-Omni-like directory, see
// scripts/fixtures/make_hf_tokenizer_fixture.py).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "modalities/text/tokenizer.h"

namespace omni {

// What is read from the directory:
// - tokenizer.json (required): the byte-level BPE model, normalizer, pre-tokenizer and its
//   added_tokens (see Tokenizer for what is supported).
// - tokenizer_config.json (optional, as in transformers): added_tokens_decoder (id -> content and
//   special / lstrip / rstrip / single_word / normalized flags; when present it is authoritative
//   for the flags, as transformers rebuilds the added vocabulary from it; a token it lists that
//   tokenizer.json lacks is added, which must land on the id it claims), the named special tokens
//   bos/eos/unk/sep/pad/cls/mask_token, additional_special_tokens / extra_special_tokens (list),
//   model-specific named tokens (any other "*_token" string key such as image_token,
//   "model_specific_special_tokens" or an extra_special_tokens object), model_max_length,
//   split_special_tokens, tokenizer_class. A named special token that is not in the vocabulary is
//   added as a special token at the next free id, as transformers does.
// - special_tokens_map.json (legacy, only when tokenizer_config.json has no added_tokens_decoder,
//   as in transformers): named special tokens.
// encode() is transformers' tokenizer(text)["input_ids"] for tokenizers whose post-processor adds
// nothing (Qwen): special tokens written in the text are recognised (unless split_special_tokens),
// and text that is not valid UTF-8 has each maximal invalid subsequence replaced by U+FFFD first
// (what bytes.decode("utf-8", errors="replace") gives a Python user). Configurations that add
// BOS/EOS (add_bos_token / add_eos_token true) are rejected rather than silently encoded without
// them. decode() is transformers' decode (ids of special added tokens dropped when
// skip_special_tokens; invalid UTF-8 from byte tokens becomes U+FFFD), except that an id outside
// the vocabulary is an InputError instead of being dropped silently.
// Every file is size-limited before it is read (tokenizer.json 256 MiB, the JSON configs 16 MiB)
// and a file that claims huge ids costs memory for the tokens it lists, not for the ids it claims.
class HfTokenizer : public TextTokenizer {
 public:
  // Throws InputError naming the directory or file and the problem: missing directory or
  // tokenizer.json, unreadable, oversized or malformed JSON, wrong types, unsupported settings,
  // added tokens that contradict tokenizer.json.
  static std::shared_ptr<HfTokenizer> from_directory(const std::string& dir);

  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int64_t>& ids,
                     bool skip_special_tokens = false) const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int64_t id) const override;
  int64_t vocab_size() const override;

  // Whether decode(..., skip_special_tokens=true) drops this id.
  bool is_special(int64_t id) const;

  // Named special tokens: "bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
  // "cls_token", "mask_token" and the model-specific ones ("image_token", "audio_token",
  // "vision_bos_token", ... for Qwen2.5-Omni). nullopt when the configuration does not set it.
  std::optional<std::string> named_token(std::string_view name) const;
  std::optional<int64_t> named_token_id(std::string_view name) const;
  // Like named_token_id but throws InputError naming the directory when the token is not set.
  int64_t require_token_id(std::string_view name) const;
  std::optional<int64_t> eos_token_id() const { return named_token_id("eos_token"); }
  std::optional<int64_t> pad_token_id() const { return named_token_id("pad_token"); }
  std::optional<int64_t> bos_token_id() const { return named_token_id("bos_token"); }
  // All named tokens in transformers' order (the standard names, then the model-specific ones).
  const std::vector<std::pair<std::string, std::string>>& named_tokens() const { return named_; }
  // transformers' extra_special_tokens (additional_special_tokens), in file order.
  const std::vector<std::string>& extra_special_tokens() const { return extra_; }
  // transformers' all_special_tokens / all_special_ids: named then extra, without repeats.
  std::vector<std::string> all_special_tokens() const;
  std::vector<int64_t> all_special_ids() const;

  // model_max_length; nullopt when unset or not a usable integer (transformers' 1e30 "no limit").
  std::optional<int64_t> model_max_length() const { return model_max_length_; }
  // tokenizer_class from the configuration ("" when absent), e.g. "Qwen2Tokenizer".
  const std::string& tokenizer_class() const { return tokenizer_class_; }
  const std::string& directory() const { return dir_; }
  // The underlying tokenizer (added tokens and flags already merged from the configuration).
  const Tokenizer& tokenizer() const { return *tok_; }

 private:
  HfTokenizer() = default;
  std::string dir_;
  std::shared_ptr<Tokenizer> tok_;
  std::vector<std::pair<std::string, std::string>> named_;  // name -> token content
  std::vector<std::string> extra_;
  std::optional<int64_t> model_max_length_;
  std::string tokenizer_class_;
};

}  // namespace omni
