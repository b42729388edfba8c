// DeferredInitGuard and omni::nn::Linear: outside a guard the same parameters, random draws and
// outputs as torch::nn::Linear; inside one, uninitialized weights in the guard's dtype and device
// (what a checkpoint then loads into), for Linear and torch::nn::Embedding via embedding_options.
#include "modalities/common/deferred_init.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/utils.h>

#include <string>
#include <vector>

namespace omni {
namespace {

std::vector<std::string> names(const torch::nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& item : m.named_parameters()) out.push_back(item.key());
  return out;
}

TEST(DeferredInit, LinearMatchesTorchOutsideAGuard) {
  EXPECT_FALSE(deferred_init().has_value());
  for (const bool bias : {true, false}) {
    const auto opts = torch::nn::LinearOptions(5, 3).bias(bias);
    torch::manual_seed(7);
    torch::nn::Linear ref(opts);
    torch::manual_seed(7);
    nn::Linear ours(opts);
    EXPECT_EQ(names(*ours), names(*ref));
    EXPECT_EQ(ours->weight.scalar_type(), at::kFloat);
    EXPECT_TRUE(ours->weight.equal(ref->weight));
    EXPECT_EQ(ours->bias.defined(), bias);
    if (bias) {
      EXPECT_TRUE(ours->bias.equal(ref->bias));
    }
    EXPECT_TRUE(ours->weight.requires_grad());
    const at::Tensor x = at::randn({2, 5});
    EXPECT_TRUE(ours(x).equal(ref(x)));
  }
}

TEST(DeferredInit, GuardAllocatesInItsOptionsAndNests) {
  {
    DeferredInitGuard outer(at::TensorOptions().dtype(at::kBFloat16));
    ASSERT_TRUE(deferred_init().has_value());
    EXPECT_EQ(deferred_init()->dtype(), at::kBFloat16);
    nn::Linear l(6, 4);
    EXPECT_EQ(l->weight.scalar_type(), at::kBFloat16);
    EXPECT_EQ(l->weight.sizes(), (std::vector<int64_t>{4, 6}));
    EXPECT_EQ(l->bias.scalar_type(), at::kBFloat16);
    EXPECT_TRUE(l->weight.requires_grad());
    EXPECT_EQ(names(*l), (std::vector<std::string>{"weight", "bias"}));
    torch::nn::Embedding e(embedding_options(10, 4));
    EXPECT_EQ(e->weight.scalar_type(), at::kBFloat16);
    EXPECT_EQ(e->weight.sizes(), (std::vector<int64_t>{10, 4}));
    {
      DeferredInitGuard inner(at::TensorOptions().dtype(at::kDouble));
      EXPECT_EQ(nn::Linear(2, 2)->weight.scalar_type(), at::kDouble);
    }
    EXPECT_EQ(deferred_init()->dtype(), at::kBFloat16);
  }
  EXPECT_FALSE(deferred_init().has_value());
  EXPECT_FALSE(embedding_options(10, 4)._weight().defined());
  EXPECT_EQ(nn::Linear(2, 2)->weight.scalar_type(), at::kFloat);
}

}  // namespace
}  // namespace omni
