#include "modalities/common/deferred_init.h"

#include "modalities/common/gemv.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <cmath>

namespace omni {
namespace {

thread_local std::optional<at::TensorOptions> t_deferred;

}  // namespace

DeferredInitGuard::DeferredInitGuard(at::TensorOptions options) : previous_(t_deferred) {
  t_deferred = options;
}

DeferredInitGuard::~DeferredInitGuard() { t_deferred = previous_; }

std::optional<at::TensorOptions> deferred_init() { return t_deferred; }

torch::nn::EmbeddingOptions embedding_options(int64_t num_embeddings, int64_t embedding_dim) {
  torch::nn::EmbeddingOptions o(num_embeddings, embedding_dim);
  if (t_deferred) o._weight(at::empty({num_embeddings, embedding_dim}, *t_deferred));
  return o;
}

namespace nn {

LinearImpl::LinearImpl(const torch::nn::LinearOptions& options_) : options(options_) { reset(); }

void LinearImpl::reset() {
  const int64_t in = options.in_features(), out = options.out_features();
  if (t_deferred) {
    weight = register_parameter("weight", at::empty({out, in}, *t_deferred));
    bias = options.bias() ? register_parameter("bias", at::empty({out}, *t_deferred))
                          : register_parameter("bias", {}, /*requires_grad=*/false);
    return;
  }
  weight = register_parameter("weight", at::empty({out, in}));
  bias = options.bias() ? register_parameter("bias", at::empty({out}))
                        : register_parameter("bias", {}, /*requires_grad=*/false);
  reset_parameters();
}

void LinearImpl::reset_parameters() {
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const int64_t fan_in = std::get<0>(torch::nn::init::_calculate_fan_in_and_fan_out(weight));
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

void LinearImpl::pretty_print(std::ostream& stream) const {
  stream << "omni::nn::Linear(in_features=" << options.in_features()
         << ", out_features=" << options.out_features() << ", bias=" << std::boolalpha
         << options.bias() << ")";
}

at::Tensor LinearImpl::forward(const at::Tensor& input) {
  return omni::linear(input, weight, bias);
}

}  // namespace nn
}  // namespace omni
