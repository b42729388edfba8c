// The fusion transformer's masked, batched forward and batched decoding: the same blocks as the
// plain forward (a causal mask gives the plain forward's numbers), padded rows do not leak into
// each other, and generate_batch gives each row what generate() gives it alone.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "fusion/heads.h"
#include "fusion/transformer.h"

namespace omni {
namespace {

FusionTransformer make_model() {
  torch::manual_seed(3);
  FusionTransformer m(FusionTransformerOptions().vocab(40).dim(32).layers(2).heads(4).kv_heads(2));
  m->eval();
  // Sharper than the init so that greedy decoding does not stall on one token.
  at::NoGradGuard g;
  m->tok_embeddings->weight.mul_(20);
  return m;
}

at::Tensor text_positions(int64_t begin, int64_t n) {
  return at::arange(begin, begin + n, at::kLong).unsqueeze(0).expand({3, n}).contiguous();
}

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

TEST(FusionBatched, CausalMaskGivesThePlainForward) {
  auto m = make_model();
  at::NoGradGuard g;
  const at::Tensor e = m->embed_ids(at::randint(0, 40, {2, 7}, at::kLong));
  const at::Tensor p = text_positions(0, 7);
  KVCache c1, c2;
  const at::Tensor plain = m->forward(e.slice(1, 0, 3), p.slice(1, 0, 3), &c1);
  const at::Tensor plain2 = m->forward(e.slice(1, 3), p.slice(1, 3), &c1);
  const at::Tensor causal3 = at::ones({3, 3}, at::kBool).tril().unsqueeze(0).expand({2, 3, 3});
  const at::Tensor masked = m->forward_masked(e.slice(1, 0, 3), p.slice(1, 0, 3), c2, causal3);
  const at::Tensor causal4 =
      at::ones({4, 7}, at::kBool).tril(3).unsqueeze(0).expand({2, 4, 7}).contiguous();
  const at::Tensor masked2 = m->forward_masked(e.slice(1, 3), p.slice(1, 3), c2, causal4);
  EXPECT_LE(max_diff(plain, masked), 1e-6);
  EXPECT_LE(max_diff(plain2, masked2), 1e-6);
  EXPECT_EQ(c2.length(), 7);
}

TEST(FusionBatched, BadMaskOrCacheIsAnInputError) {
  auto m = make_model();
  at::NoGradGuard g;
  const at::Tensor e = m->embed_ids(at::randint(0, 40, {2, 3}, at::kLong));
  const at::Tensor p = text_positions(0, 3);
  KVCache c;
  EXPECT_THROW(m->forward_masked(e, p, c, at::ones({2, 3, 4}, at::kBool)), InputError);
  EXPECT_THROW(m->forward_masked(e, p, c, at::ones({2, 3, 3}, at::kFloat)), InputError);
  EXPECT_THROW(m->forward_masked(e, p, c, at::Tensor()), InputError);
  // A cache of 3 rows cannot serve 2.
  KVCache three;
  m->forward(m->embed_ids(at::randint(0, 40, {3, 2}, at::kLong)), text_positions(0, 2), &three);
  EXPECT_THROW(m->forward_masked(e, text_positions(2, 3), three, at::ones({2, 3, 5}, at::kBool)),
               InputError);
  DecodeOptions d;
  EXPECT_THROW(generate_batch(*m, {e.slice(0, 0, 1)}, {text_positions(0, 2)}, d), InputError);
  EXPECT_THROW(generate_batch(*m, {e.slice(0, 0, 1)}, {}, d), InputError);
}

// Prompts of different lengths after a shared prefix, batched, against each alone.
TEST(FusionBatched, GenerateBatchEqualsGeneratePerRow) {
  auto m = make_model();
  at::NoGradGuard g;
  const int64_t P = 6;
  const at::Tensor prefix_e = m->embed_ids(at::randint(0, 40, {1, P}, at::kLong));
  int64_t decoded = 0;  // tokens generated over all cases (the comparison must not be vacuous)
  for (bool with_prefix : {true, false}) {
    KVCache prefix;
    if (with_prefix) m->forward(prefix_e, text_positions(0, P), &prefix);
    const int64_t start = with_prefix ? P : 0;
    std::vector<at::Tensor> embeds, positions;
    for (int64_t n : {3, 1, 5}) {
      embeds.push_back(m->embed_ids(at::randint(0, 40, {1, n}, at::kLong)));
      positions.push_back(text_positions(start, n));
    }
    for (bool greedy : {true, false}) {
      DecodeOptions d;
      d.max_new_tokens = 6;
      d.greedy = greedy;
      d.seed = 11;
      d.stop_tokens = {7};
      const auto batch = generate_batch(*m, embeds, positions, d, &prefix);
      ASSERT_EQ(batch.size(), embeds.size());
      EXPECT_EQ(prefix.length(), with_prefix ? P : 0);  // the prefix is left as it was
      for (size_t i = 0; i < embeds.size(); ++i) {
        KVCache alone = prefix;
        const GenerateResult r = generate(*m, embeds[i], positions[i], d, &alone);
        EXPECT_EQ(batch[i].tokens, r.tokens) << "row " << i << " greedy " << greedy;
        EXPECT_EQ(batch[i].stopped, r.stopped) << "row " << i;
        decoded += int64_t(r.tokens.size());
        ASSERT_TRUE(batch[i].prompt_logits.defined());
        EXPECT_LE(max_diff(batch[i].prompt_logits, r.prompt_logits), 1e-5) << "row " << i;
      }
    }
  }
  EXPECT_GE(decoded, 12);
}

}  // namespace
}  // namespace omni
