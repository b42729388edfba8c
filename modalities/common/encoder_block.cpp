#include "modalities/common/encoder_block.h"

#include <torch/nn/functional/activation.h>

#include <string>

#include "core/error.h"
#include "modalities/common/attention.h"

namespace omni {

EncoderBlockImpl::EncoderBlockImpl(const EncoderBlockOptions& o) : options(o) {
  if (o.width() <= 0 || o.heads() <= 0 || o.width() % o.heads() != 0 || o.mlp_ratio() <= 0) {
    throw ConfigError("EncoderBlock: width " + std::to_string(o.width()) +
                      " must be a positive multiple of heads " + std::to_string(o.heads()) +
                      " (mlp_ratio " + std::to_string(o.mlp_ratio()) + ")");
  }
  const int64_t d = o.width();
  norm1 =
      register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(o.eps())));
  qkv = register_module("qkv", torch::nn::Linear(d, 3 * d));
  proj = register_module("proj", torch::nn::Linear(d, d));
  norm2 =
      register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(o.eps())));
  fc1 = register_module("fc1", torch::nn::Linear(d, d * o.mlp_ratio()));
  fc2 = register_module("fc2", torch::nn::Linear(d * o.mlp_ratio(), d));
}

at::Tensor EncoderBlockImpl::forward(const at::Tensor& x, const at::Tensor& mask) {
  const int64_t b = x.size(0), l = x.size(1), d = options.width(), h = options.heads();
  // [B, L, 3, H, Dh] -> three [B, H, L, Dh]
  at::Tensor t = qkv(norm1(x)).view({b, l, 3, h, d / h}).permute({2, 0, 3, 1, 4});
  at::Tensor a = attention(t[0], t[1], t[2], mask, /*causal=*/false);
  at::Tensor y = x + proj(a.transpose(1, 2).reshape({b, l, d}));
  return y + fc2(torch::nn::functional::gelu(fc1(norm2(y))));
}

}  // namespace omni
