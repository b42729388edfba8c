// Building a model's modules only to load a checkpoint into them: the big parameters are
// allocated uninitialized, in the target dtype and device, instead of being filled with random
// numbers in fp32 that the checkpoint then overwrites (for a 3B model that init was ~20 GB of
// memory traffic and tens of seconds of serial random-number generation). Together with
// zero-copy loading (LoadOptions::map_weights), the untouched allocation is released without its
// pages ever being faulted in.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/options/embedding.h>
#include <torch/nn/options/linear.h>
#include <torch/nn/pimpl.h>

#include <optional>
#include <ostream>

namespace omni {

// While alive, modules built on this thread with omni::nn::Linear or omni::embedding_options
// allocate their weights with at::empty(shape, options): uninitialized. Use it only where every
// such weight is then loaded (Checkpoint::load_into refuses a module whose parameters the
// checkpoint does not all provide, unless LoadOptions::ignore_missing names them). Nests.
class DeferredInitGuard {
 public:
  explicit DeferredInitGuard(at::TensorOptions options);
  ~DeferredInitGuard();
  DeferredInitGuard(const DeferredInitGuard&) = delete;
  DeferredInitGuard& operator=(const DeferredInitGuard&) = delete;

 private:
  std::optional<at::TensorOptions> previous_;
};

// The options of this thread's innermost DeferredInitGuard, nullopt outside one.
std::optional<at::TensorOptions> deferred_init();

// torch::nn::EmbeddingOptions(num, dim); inside a DeferredInitGuard with an uninitialized
// weight (EmbeddingOptions::_weight), so torch::nn::Embedding skips its normal_ init.
torch::nn::EmbeddingOptions embedding_options(int64_t num_embeddings, int64_t embedding_dim);

namespace nn {

// torch::nn::Linear's parameters ("weight" [out, in], "bias" [out] unless bias(false)),
// initialization (outside a DeferredInitGuard: kaiming_uniform_(a = sqrt(5)) on the weight, then
// uniform(+-1/sqrt(in)) on the bias, the same draws as torch::nn::Linear) and forward
// (omni::linear: at::linear, or the bf16 decoding kernel of gemv.h), with the weights allocated per
// DeferredInitGuard inside one.
class LinearImpl : public torch::nn::Cloneable<LinearImpl> {
 public:
  LinearImpl(int64_t in_features, int64_t out_features)
      : LinearImpl(torch::nn::LinearOptions(in_features, out_features)) {}
  explicit LinearImpl(const torch::nn::LinearOptions& options);

  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;
  at::Tensor forward(const at::Tensor& input);

  torch::nn::LinearOptions options;
  at::Tensor weight, bias;
};
TORCH_MODULE(Linear);

}  // namespace nn
}  // namespace omni
