// Text graph nodes: TextSource (emits a fixed string once) and TextEncoder (text or ids ->
// TokenChunk with ids, or embeddings from a safetensors table).
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "core/node.h"
#include "modalities/text/tokenizer.h"

namespace omni {

class TextSource : public Node {
 public:
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

 private:
  std::string text_;
  Timestamp ts_;
};

class TextEncoder : public Node {
 public:
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
