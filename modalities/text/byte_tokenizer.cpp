// The built-in byte tokenizer: ids 0..255 are bytes, 256.. the named special tokens.
#include <string>

#include "core/error.h"
#include "modalities/text/tokenizer.h"

namespace omni {

std::vector<int64_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    int64_t best = -1;
    size_t best_len = 0;
    if (text[i] == '<') {
      for (int64_t k = 0; k < kNumSpecial; ++k) {
        const std::string_view tok = kSpecialTokens[k];
        if (tok.size() > best_len && text.substr(i, tok.size()) == tok) {
          best = 256 + k;
          best_len = tok.size();
        }
      }
    }
    if (best >= 0) {
      ids.push_back(best);
      i += best_len;
    } else {
      ids.push_back(static_cast<unsigned char>(text[i]));
      ++i;
    }
  }
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string out;
  out.reserve(ids.size());
  for (int64_t id : ids) {
    if (id >= 0 && id < 256) {
      out.push_back(static_cast<char>(id));
    } else if (id >= 256 && id < vocab_size()) {
      if (!skip_special_tokens) out += kSpecialTokens[id - 256];
    } else {
      throw InputError("ByteTokenizer::decode: id " + std::to_string(id) + " is outside 0.." +
                       std::to_string(vocab_size() - 1));
    }
  }
  return out;
}

std::optional<int64_t> ByteTokenizer::token_to_id(std::string_view token) const {
  for (int64_t k = 0; k < kNumSpecial; ++k)
    if (token == kSpecialTokens[k]) return 256 + k;
  if (token.size() == 1) return static_cast<unsigned char>(token[0]);
  return std::nullopt;
}

std::string ByteTokenizer::id_to_token(int64_t id) const {
  if (id >= 0 && id < 256) return std::string(1, static_cast<char>(id));
  if (id >= 256 && id < vocab_size()) return kSpecialTokens[id - 256];
  throw InputError("ByteTokenizer: id " + std::to_string(id) + " is outside 0.." +
                   std::to_string(vocab_size() - 1));
}

}  // namespace omni
