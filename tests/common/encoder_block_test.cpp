// EncoderBlock against a naive re-statement of pre-LN attention + GELU MLP.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "modalities/common/encoder_block.h"

namespace omni {
namespace {

at::Tensor naive_layer_norm(const at::Tensor& x, const torch::nn::LayerNorm& ln) {
  at::Tensor mu = x.mean(-1, true);
  at::Tensor var = (x - mu).pow(2).mean(-1, true);
  return (x - mu) / (var + 1e-5).sqrt() * ln->weight + ln->bias;
}

at::Tensor naive_gelu(const at::Tensor& x) { return 0.5 * x * (1 + at::erf(x / std::sqrt(2.0))); }

// One sequence at a time, one head at a time, explicit softmax.
at::Tensor naive(EncoderBlockImpl& b, const at::Tensor& x, const at::Tensor& mask) {
  const int64_t d = b.options.width(), h = b.options.heads(), dh = d / h;
  std::vector<at::Tensor> outs;
  for (int64_t s = 0; s < x.size(0); ++s) {
    at::Tensor xs = x[s];
    at::Tensor qkv = at::matmul(naive_layer_norm(xs, b.norm1), b.qkv->weight.t()) + b.qkv->bias;
    std::vector<at::Tensor> heads;
    for (int64_t i = 0; i < h; ++i) {
      at::Tensor q = qkv.slice(1, i * dh, (i + 1) * dh);
      at::Tensor k = qkv.slice(1, d + i * dh, d + (i + 1) * dh);
      at::Tensor v = qkv.slice(1, 2 * d + i * dh, 2 * d + (i + 1) * dh);
      at::Tensor sc = at::matmul(q, k.t()) / std::sqrt(double(dh));
      if (mask.defined()) sc = sc.masked_fill(mask.logical_not(), -1e30);
      heads.push_back(at::matmul(at::softmax(sc, -1), v));
    }
    at::Tensor y = xs + at::matmul(at::cat(heads, 1), b.proj->weight.t()) + b.proj->bias;
    at::Tensor m =
        naive_gelu(at::matmul(naive_layer_norm(y, b.norm2), b.fc1->weight.t()) + b.fc1->bias);
    outs.push_back(y + at::matmul(m, b.fc2->weight.t()) + b.fc2->bias);
  }
  return at::stack(outs);
}

TEST(EncoderBlock, MatchesNaiveReference) {
  torch::manual_seed(3);
  EncoderBlock blk(EncoderBlockOptions(24, 3).mlp_ratio(2));
  torch::NoGradGuard ng;
  // Non-trivial norm parameters so they are exercised.
  blk->norm1->weight.uniform_(0.5, 1.5);
  blk->norm2->bias.uniform_(-0.3, 0.3);
  const at::Tensor x = torch::randn({2, 7, 24});
  EXPECT_TRUE(at::allclose(blk->forward(x), naive(*blk, x, {}), 1e-4, 1e-5));
  const at::Tensor mask = torch::rand({7, 7}) > 0.3;
  mask.fill_diagonal_(true);
  EXPECT_TRUE(at::allclose(blk->forward(x, mask), naive(*blk, x, mask), 1e-4, 1e-5));
}

TEST(EncoderBlock, ParameterNamesAndConfigErrors) {
  EncoderBlock blk(EncoderBlockOptions(8, 2));
  std::vector<std::string> names;
  for (const auto& p : blk->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names,
            (std::vector<std::string>{"norm1.weight", "norm1.bias", "qkv.weight", "qkv.bias",
                                      "proj.weight", "proj.bias", "norm2.weight", "norm2.bias",
                                      "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
  EXPECT_THROW(EncoderBlock(EncoderBlockOptions(10, 3)), ConfigError);
}

}  // namespace
}  // namespace omni
