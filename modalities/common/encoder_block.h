// The pre-LN transformer encoder block shared by the ViT and the audio encoder:
// x + MHA(LN(x)), then x + MLP(LN(x)) with a GELU MLP; attention goes through omni::attention.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

namespace omni {

struct EncoderBlockOptions {
  EncoderBlockOptions(int64_t width, int64_t heads) : width_(width), heads_(heads) {}
  TORCH_ARG(int64_t, width);
  TORCH_ARG(int64_t, heads);
  TORCH_ARG(int64_t, mlp_ratio) = 4;  // MLP hidden width = width * mlp_ratio
  TORCH_ARG(double, eps) = 1e-5;      // LayerNorm epsilon
};

// Parameter names (for safetensors): norm1.{weight,bias}, qkv.{weight,bias} ([3*width, width],
// q then k then v), proj.*, norm2.*, fc1.*, fc2.*.
class EncoderBlockImpl : public torch::nn::Module {
 public:
  explicit EncoderBlockImpl(const EncoderBlockOptions& options);
  // x: [B, L, width]. `mask`: optional, as omni::attention takes it ([.., L, L], bool = may
  // attend).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask = {});

  EncoderBlockOptions options;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Linear qkv{nullptr}, proj{nullptr}, fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(EncoderBlock);

}  // namespace omni
