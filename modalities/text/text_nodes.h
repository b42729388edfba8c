// Text graph nodes: TextSource (emits a fixed string once) and TextEncoder (text or ids ->
// TokenChunk with ids, or embeddings from a safetensors table).
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "core/node.h"
#include "modalities/common/token_chunk.h"
#include "modalities/text/tokenizer.h"

namespace omni {

class TextSource : public Node {
 public:
  static constexpr Output<std::string> kText{"text", "the text"};
  static constexpr Param<std::string> kTextParam{"text", "", "text to emit (UTF-8)"};
  static constexpr Param<int64_t> kTimestamp{"timestamp_us", 0,
                                             "timestamp of the packet, microseconds"};
  static constexpr Param<StringList> kTexts{
      "texts",
      {},
      "more texts, one packet each after `text` (1 us apart), e.g. several questions about one "
      "input; `text` is then skipped when empty"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

 private:
  std::vector<std::string> texts_;
  Timestamp ts_;
};

class TextEncoder : public Node {
 public:
  static constexpr OptionalInput<std::string> kText{
      "text", "UTF-8 text; special tokens in it are recognised"};
  static constexpr OptionalInput<std::vector<int64_t>> kIds{"ids", "already tokenized ids"};
  static constexpr Output<TokenChunk> kTokens{"tokens",
                                              "modality text; ids [N] int64, or embeddings [N, d]"};
  static constexpr Param<std::string> kTokenizer{
      "tokenizer", "byte",
      "'byte' (built-in byte tokenizer), a tokenizer.json path or a Hugging Face checkpoint "
      "directory"};
  static constexpr Param<std::string> kWeights{
      "weights", "", "safetensors file with the embedding table; empty: emit ids only"};
  static constexpr Param<std::string> kTensor{"tensor", "embed_tokens.weight",
                                              "name of the [vocab, d] table in `weights`"};
  static constexpr Param<std::string> kDevice{"device", "cpu",
                                              "device of the embeddings: cpu, cuda, cuda:N"};
  static constexpr Param<std::string> kStream{
      "stream", "", "stream id written into the chunks (default: the node name)"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

  const TextTokenizer& tokenizer() const { return *tokenizer_; }

 private:
  std::shared_ptr<TextTokenizer> tokenizer_;
  at::Tensor table_;  // [vocab, d] on the node's device, or undefined (emit ids)
  std::string device_;
  std::string stream_;
};

}  // namespace omni
