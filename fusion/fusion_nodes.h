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
#include "fusion/fused_sequence.h"
#include "fusion/heads.h"
#include "fusion/transformer.h"

namespace omni {

// The model parameters (architecture, weights, seed, device, dtype) Generate and FusionEncode
// share; the architecture defaults are FusionTransformerOptions' own.
struct FusionModelParams {
  static inline const Param<int64_t> kVocab{"vocab", FusionTransformerOptions().vocab(),
                                            "text vocabulary (byte tokenizer: 272)"};
  static inline const Param<int64_t> kDim{"dim", FusionTransformerOptions().dim(),
                                          "model width (encoders' out_dim must match)"};
  static inline const Param<int64_t> kLayers{"layers", FusionTransformerOptions().layers(),
                                             "transformer blocks"};
  static inline const Param<int64_t> kHeads{"heads", FusionTransformerOptions().heads(),
                                            "query heads"};
  static inline const Param<int64_t> kKvHeads{"kv_heads", FusionTransformerOptions().kv_heads(),
                                              "key/value heads (grouped-query attention)"};
  static inline const Param<int64_t> kFfn{"ffn", FusionTransformerOptions().ffn(),
                                          "SwiGLU hidden size (0: 8/3 x dim rounded up to 64)"};
  static constexpr Param<std::string> kMropeSection{
      "mrope_section", "", "rotary pairs for t,h,w, e.g. \"4,6,6\" (empty: 1/4,3/8,3/8)"};
  static inline const Param<double> kRopeTheta{
      "rope_theta", FusionTransformerOptions().rope_theta(), "rotary base"};
  static constexpr Param<std::string> kWeights{"weights", "",
                                               "safetensors file (empty: random init with `seed`)"};
  static constexpr Param<std::string> kPrefix{
      "prefix", "", "key prefix of the transformer's tensors in the weights file"};
  static constexpr Param<int64_t> kSeed{"seed", 0,
                                        "seed of the random init when no weights are given"};
  static constexpr Param<std::string> kDevice{"device", "cpu", "cpu, cuda or cuda:N"};
  static constexpr Param<std::string> kDtype{"dtype", "float32",
                                             "float32; bfloat16 / float16 on CUDA"};
};
// Adds FusionModelParams to a contract.
Contract& add_fusion_model_params(Contract& c);
// Builds the model from those parameters: random init with `seed`, or `weights` (safetensors,
// every name and shape checked), then moved to device/dtype.
FusionTransformer make_fusion_model(const Context& ctx);
// Text of byte-tokenizer ids: ids < 256 are UTF-8 bytes, special tokens are skipped.
std::string decode_byte_ids(const std::vector<int64_t>& ids);
// "1,2, 3" -> {1, 2, 3}; throws ConfigError naming `what`.
std::vector<int64_t> parse_id_list(const std::string& text, const std::string& what);

class Generate : public Node {
 public:
  static constexpr Input<FusedSequence> kSequence{"sequence", "the unified token sequence"};
  static constexpr Output<std::string> kText{
      "text", "decoded text (byte tokenizer; special tokens skipped)"};
  static constexpr Output<std::vector<int64_t>> kIds{
      "ids", "generated token ids (without the stop token)"};
  static constexpr Param<int64_t> kMaxNewTokens{"max_new_tokens", 32,
                                                "upper bound on generated tokens"};
  static constexpr Param<std::string> kDecoding{"decoding", "greedy", "greedy or sample"};
  static constexpr Param<double> kTemperature{"temperature", 1.0, "sampling temperature"};
  static constexpr Param<int64_t> kTopK{"top_k", 0,
                                        "keep the k most likely tokens when sampling (0: all)"};
  static constexpr Param<double> kTopP{"top_p", 1.0,
                                       "nucleus: keep the smallest set reaching this probability"};
  static constexpr Param<int64_t> kDecodeSeed{"decode_seed", 0,
                                              "sampling seed (same seed, same answer)"};
  static constexpr Param<std::string> kStopTokens{
      "stop_tokens", "258", "comma-separated ids that end generation (<|eos|> = 258)"};
  static constexpr Param<bool> kStream{
      "stream", false,
      "keep the KV cache across segments (a streaming sequencer's later segments are appended "
      "instead of starting over)"};
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
  static constexpr Input<FusedSequence> kSequence{"sequence", "the unified token sequence"};
  static constexpr Output<at::Tensor> kEmbedding{"embedding",
                                                 "pooled embedding [dim] (float32, CPU)"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

 private:
  FusionTransformer model_{nullptr};
  PooledHead pool_{nullptr};
};

}  // namespace omni
