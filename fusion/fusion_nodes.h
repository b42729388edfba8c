// The fusion transformer's graph nodes: Generate (FusedSequence -> text) and FusionEncode
// (FusedSequence -> pooled embedding), plus the parameter set that builds/loads the model.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/contract.h"
#include "core/node.h"
#include "fusion/heads.h"
#include "fusion/transformer.h"

namespace omni {

// Adds the model parameters (architecture, weights, seed, device, dtype) to a contract.
Contract& add_fusion_model_params(Contract& c);
// Builds the model from those parameters: random init with `seed`, or `weights` (safetensors,
// every name and shape checked), then moved to device/dtype. Errors name `where`.
FusionTransformer make_fusion_model(const Params& p, const std::string& where);
// Text of byte-tokenizer ids: ids < 256 are UTF-8 bytes, special tokens are skipped.
std::string decode_byte_ids(const std::vector<int64_t>& ids);
// "1,2, 3" -> {1, 2, 3}; throws ConfigError naming `what`.
std::vector<int64_t> parse_id_list(const std::string& text, const std::string& what);

class Generate : public Node {
 public:
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

 private:
  FusionTransformer model_{nullptr};
  DecodeOptions decode_;
  bool stream_ = false;
  KVCache cache_;
  bool byte_text_ = true;
};

class FusionEncode : public Node {
 public:
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

 private:
  FusionTransformer model_{nullptr};
  PooledHead pool_{nullptr};
};

}  // namespace omni
