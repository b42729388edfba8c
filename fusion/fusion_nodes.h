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
  Generate() = default;
  // A program that holds the model already (e.g. one per process, shared by a graph per clip)
  // passes it here: open() then uses it as it is and does not build or load one (the model
  // parameters are not used). The model must not change while a graph uses it.
  explicit Generate(FusionTransformer shared) : model_(std::move(shared)), shared_(true) {}
  static constexpr Input<FusedSequence> kSequence{"sequence", "the unified token sequence"};
  static constexpr OptionalInput<FusedSequence> kPrefill{
      "prefill",
      "the start of a prompt still growing (UnifiedSequencer.partial): run into the KV cache "
      "ahead of the `sequence` it starts, no answer (needs share_prefix)"};
  static constexpr Output<std::string> kText{
      "text", "decoded text (byte tokenizer; special tokens skipped)"};
  static constexpr Output<std::vector<int64_t>> kIds{
      "ids", "generated token ids (without the stop token)"};
  static constexpr Output<at::Tensor> kLogits{
      "logits", "[vocab] float32 on the CPU: the LM head after the prompt's last token"};
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
  static constexpr Param<bool> kSharePrefix{
      "share_prefix", false,
      "keep the KV cache of the last prompt and reuse it for the start the next sequence shares "
      "with it (compared token by token: embeddings and positions), e.g. several questions about "
      "one clip, or the `prefill` of a growing prompt"};
  static constexpr Param<bool> kBatchQuestions{
      "batch_questions", false,
      "hold the sequences until the input ends, then run their shared start once (with "
      "share_prefix) and decode them as one batch: one padded, masked forward per step"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;
  void close(Context& ctx) override;  // answers the held batch

 private:
  struct Held {
    FusedSequence seq;
    Timestamp ts;
  };
  // Tokens at the start of (embeds, positions) that equal what the cache holds.
  int64_t cached_prefix(const at::Tensor& embeds, const at::Tensor& positions) const;
  // Cuts the cache to the start it shares with (embeds, positions), at most `most` tokens; counts
  // the reused tokens and prefilled ones that were not reused. Returns the tokens kept.
  int64_t reuse(Context& ctx, const at::Tensor& embeds, const at::Tensor& positions, int64_t most);
  // Runs tokens [from, to) into the cache, which then holds the first `to` tokens.
  void extend_cache(const at::Tensor& embeds, const at::Tensor& positions, int64_t from,
                    int64_t to);
  void answer(Context& ctx, const FusedSequence& seq, Timestamp ts);
  void answer_batch(Context& ctx);
  void emit_result(Context& ctx, const GenerateResult& r, Timestamp ts);

  FusionTransformer model_{nullptr};
  bool shared_ = false;
  DecodeOptions decode_;
  bool stream_ = false, share_prefix_ = false, batch_ = false;
  KVCache cache_;
  at::Tensor cached_embeds_, cached_positions_;  // what cache_ holds (share_prefix)
  int64_t prefilled_ = 0;  // tokens of cache_ that came from `prefill` and are not yet reused
  std::vector<Held> held_;
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
