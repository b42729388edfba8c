// The Qwen2.5-Omni thinker's language model against transformers (Qwen2_5OmniThinkerTextModel +
// lm_head) on the tiny checkpoint: logits for plain and 3-D (mrope) positions, the KV cache in
// multi-token and single-token steps, the bf16 model, the RMSNorm cast order, config parsing and
// errors. References: scripts/fixtures/make_qwen_text_refs.py.
#include "models/qwen2_5_omni/text_model.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tests/qwen2_5_omni/qwen_text_fixture.h"

namespace omni::qwen {
namespace {

using testing::checkpoint;
using testing::fx;
using testing::load_text_model;
using testing::max_abs_diff;

constexpr double kTol = 1e-4;  // fp32 logits vs transformers

at::Tensor plain_positions(int64_t B, int64_t L) {
  return at::arange(L, at::kLong).view({1, 1, L}).expand({3, B, L}).contiguous();
}

TEST(QwenTextModel, OptionsFromTheCheckpointConfig) {
  const TextModelOptions o = TextModelOptions::from_config(*checkpoint()->tower_config("text"));
  EXPECT_EQ(o.vocab_size, 512);
  EXPECT_EQ(o.hidden_size, 32);
  EXPECT_EQ(o.intermediate_size, 48);
  EXPECT_EQ(o.num_hidden_layers, 2);
  EXPECT_EQ(o.num_attention_heads, 4);
  EXPECT_EQ(o.num_key_value_heads, 2);
  EXPECT_EQ(o.resolved_head_dim(), 8);
  EXPECT_EQ(o.mrope_section, (std::vector<int64_t>{2, 1, 1}));
  EXPECT_DOUBLE_EQ(o.rope_theta, 1000000.0);
  EXPECT_DOUBLE_EQ(o.rms_norm_eps, 1e-6);
  EXPECT_FALSE(o.tie_word_embeddings);
}

TEST(QwenTextModel, OlderConfigLayoutAndBadConfigs) {
  // transformers 4.x hub configs: rope_theta at the top, mrope_section in rope_scaling.
  nlohmann::json c = *checkpoint()->tower_config("text");
  c.erase("rope_parameters");
  c["rope_theta"] = 5000.0;
  c["rope_scaling"] = {{"type", "mrope"}, {"mrope_section", {1, 2, 1}}};
  const TextModelOptions o = TextModelOptions::from_config(c);
  EXPECT_DOUBLE_EQ(o.rope_theta, 5000.0);
  EXPECT_EQ(o.mrope_section, (std::vector<int64_t>{1, 2, 1}));

  auto with = [&](const std::string& ptr, const nlohmann::json& v) {
    nlohmann::json b = *checkpoint()->tower_config("text");
    b[nlohmann::json::json_pointer(ptr)] = v;
    return b;
  };
  EXPECT_THROW(TextModelOptions::from_config(with("/rope_parameters/rope_type", "yarn")),
               ConfigError);
  EXPECT_THROW(TextModelOptions::from_config(with("/rope_parameters/mrope_section", {2, 2, 1})),
               ConfigError);  // sums to 5, head_dim / 2 is 4
  EXPECT_THROW(TextModelOptions::from_config(with("/num_key_value_heads", 3)), ConfigError);
  EXPECT_THROW(TextModelOptions::from_config(with("/hidden_act", "gelu")), ConfigError);
  EXPECT_THROW(TextModelOptions::from_config(with("/use_sliding_window", true)), ConfigError);
  EXPECT_THROW(TextModelOptions::from_config(with("/vocab_size", "many")), ConfigError);
  nlohmann::json missing = *checkpoint()->tower_config("text");
  missing.erase("hidden_size");
  EXPECT_THROW(TextModelOptions::from_config(missing), ConfigError);
}

TEST(QwenTextModel, LoadsEveryTensorUnderTransformersNames) {
  TextModel m = load_text_model();
  const auto params = m->named_parameters();
  EXPECT_TRUE(params.contains("layers.0.self_attn.q_proj.bias"));
  EXPECT_TRUE(params.contains("layers.1.self_attn.v_proj.bias"));
  EXPECT_FALSE(params.contains("layers.0.self_attn.o_proj.bias"));
  EXPECT_FALSE(params.contains("layers.0.mlp.gate_proj.bias"));
  EXPECT_TRUE(params.contains("lm_head.weight"));
  // The head is separate from the embedding in this checkpoint.
  EXPECT_FALSE(at::equal(m->lm_head->weight, m->embed_tokens->weight));
  EXPECT_TRUE(at::equal(m->lm_head->weight, checkpoint()->get("text.lm_head.weight")));
}

TEST(QwenTextModel, LogitsWithPlainPositions) {
  TextModel m = load_text_model();
  at::NoGradGuard g;
  const at::Tensor ids = fx("a_ids");
  const at::Tensor out = m->forward(m->embed(ids), plain_positions(ids.size(0), ids.size(1)));
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  std::printf("plain positions: max |ours - transformers| = %.3g\n",
              max_abs_diff(out, fx("a_logits")));
  EXPECT_LE(max_abs_diff(out, fx("a_logits")), kTol);
  // [3, L] positions are shared by the batch.
  const int64_t L = ids.size(1);
  const at::Tensor out2 =
      m->forward(m->embed(ids), at::arange(L, at::kLong).view({1, L}).expand({3, L}));
  EXPECT_LE(max_abs_diff(out2, fx("a_logits")), kTol);
}

TEST(QwenTextModel, LogitsWithThreeDimensionalPositions) {
  TextModel m = load_text_model();
  at::NoGradGuard g;
  const at::Tensor pos = fx("b_pos");
  ASSERT_FALSE(at::equal(pos[0], pos[1]));  // the axes differ inside the block
  const at::Tensor out = m->forward(m->embed(fx("b_ids")), pos);
  std::printf("3-D positions: max |ours - transformers| = %.3g\n",
              max_abs_diff(out, fx("b_logits")));
  EXPECT_LE(max_abs_diff(out, fx("b_logits")), kTol);
  // The same ids with plain positions give other logits: the positions matter.
  const at::Tensor plain = m->forward(m->embed(fx("b_ids")), plain_positions(1, pos.size(2)));
  EXPECT_GT(max_abs_diff(plain, fx("b_logits")), 1e-3);
}

TEST(QwenTextModel, EveryMropeSectionMatters) {
  // The checkpoint's theta (1e6) turns the last frequency pairs of head_dim 8 by ~1e-4 rad per
  // position: too little to show a wrong section. The same weights with theta 10 and sections
  // [1, 1, 2] (transformers' module built with that rope config) turn every pair.
  TextModelOptions o = TextModelOptions::from_config(*checkpoint()->tower_config("text"));
  o.rope_theta = std::stod(testing::refs().metadata().at("f_rope_theta"));
  o.mrope_section = nlohmann::json::parse(testing::refs().metadata().at("f_mrope_section"))
                        .get<std::vector<int64_t>>();
  ASSERT_EQ(o.mrope_section, (std::vector<int64_t>{1, 1, 2}));
  TextModel m(o);
  checkpoint()->load_into(*m, {"text."});
  at::NoGradGuard g;
  const at::Tensor out = m->forward(m->embed(fx("f_ids")), fx("f_pos"));
  EXPECT_LE(max_abs_diff(out, fx("f_logits")), kTol);
  // Any other split of the four pairs gives other logits.
  for (const std::vector<int64_t>& other :
       {std::vector<int64_t>{2, 1, 1}, {1, 2, 1}, {0, 2, 2}, {1, 0, 3}}) {
    o.mrope_section = other;
    TextModel w(o);
    checkpoint()->load_into(*w, {"text."});
    EXPECT_GT(max_abs_diff(w->forward(w->embed(fx("f_ids")), fx("f_pos")), fx("f_logits")), 1e-3)
        << other[0] << other[1] << other[2];
  }
}

TEST(QwenTextModel, KvCacheStepsMatchOneFullPass) {
  TextModel m = load_text_model();
  at::NoGradGuard g;
  const at::Tensor ids = fx("b_ids"), pos = fx("b_pos"), want = fx("b_logits");
  const int64_t L = ids.size(1);
  // A prefix, then a multi-token step on top of the cache (causal within the step), then single
  // tokens.
  KVCache cache;
  std::vector<at::Tensor> parts;
  const std::vector<std::pair<int64_t, int64_t>> steps = {{0, 5}, {5, 9}, {9, 10}, {10, L}};
  for (auto [a, b] : steps) {
    parts.push_back(
        m->forward(m->embed(ids.slice(1, a, b)), pos.slice(2, a, b).contiguous(), &cache));
    EXPECT_EQ(cache.length(), b);
  }
  EXPECT_LE(max_abs_diff(at::cat(parts, 1), want), kTol);
  EXPECT_EQ(cache.k.size(), 2u);
  EXPECT_EQ(cache.k[0].sizes(), (at::IntArrayRef{1, 2, L, 8}));
  // A cache of another batch size is refused.
  EXPECT_THROW(m->forward(m->embed(fx("a_ids")).slice(1, 0, 1), plain_positions(2, 1), &cache),
               InputError);
}

TEST(QwenTextModel, Bfloat16MatchesTransformersBfloat16) {
  TextModel m = load_text_model();
  m->to(at::kBFloat16);
  at::NoGradGuard g;
  EXPECT_EQ(m->dtype(), at::kBFloat16);
  const at::Tensor a = m->forward(m->embed(fx("a_ids")), plain_positions(2, 11));
  const at::Tensor b = m->forward(m->embed(fx("b_ids")), fx("b_pos"));
  EXPECT_EQ(a.scalar_type(), at::kFloat);
  // Tolerance: 0.05 absolute. bf16 keeps 8 significant bits and these logits are O(1) (one bf16
  // step in [1, 2) is 0.0078). Our CPU kernels (libtorch 1.13, explicit attention with an fp32
  // softmax) and transformers' (torch 2.x SDPA) round differently inside the matmuls; observed:
  // 0.0078 against transformers' bf16 logits, about the same against the fp32 ones. The bf16
  // RMSNorm cast order is checked exactly in RmsNormCastOrderInBfloat16.
  const double da = max_abs_diff(a, fx("d_a_logits")), db = max_abs_diff(b, fx("d_b_logits"));
  const double fa = max_abs_diff(a, fx("a_logits")), fb = max_abs_diff(b, fx("b_logits"));
  std::printf("bf16 vs transformers bf16: %.4g %.4g; bf16 vs fp32 reference: %.4g %.4g\n", da, db,
              fa, fb);
  EXPECT_LE(da, 0.05);
  EXPECT_LE(db, 0.05);
  // Same argmax as transformers' bf16 model almost everywhere.
  // Built in bf16 directly (options.dtype) and loaded: the same model.
  TextModelOptions o = m->options();
  o.dtype = at::kBFloat16;
  TextModel direct(o);
  for (const auto& p : direct->parameters()) EXPECT_EQ(p.scalar_type(), at::kBFloat16);
  checkpoint()->load_into(*direct, {"text."});
  EXPECT_TRUE(at::equal(direct->forward(direct->embed(fx("a_ids")), plain_positions(2, 11)), a));
  const double agree =
      (a.argmax(-1) == fx("d_a_logits").argmax(-1)).to(at::kDouble).mean().item<double>();
  EXPECT_GE(agree, 0.9);
}

TEST(QwenTextModel, RmsNormCastOrderInBfloat16) {
  // transformers: normalise in fp32, cast to bf16, then multiply the (bf16) weight. Multiplying
  // in fp32 and rounding once differs in the last bit for many elements.
  TextModel m = load_text_model();
  m->to(at::kBFloat16);
  at::NoGradGuard g;
  const at::Tensor x = fx("norm_x"), want = fx("norm_y");
  ASSERT_EQ(x.scalar_type(), at::kBFloat16);
  const at::Tensor y = m->norm(x);
  ASSERT_EQ(y.scalar_type(), at::kBFloat16);
  const double mismatched = (y != want).to(at::kDouble).mean().item<double>();
  EXPECT_LE(mismatched, 0.02) << "fraction of elements differing from transformers' RMSNorm";
  EXPECT_LE(max_abs_diff(y, want), 0.02 * want.abs().max().item<double>());
  // The other order (the demo model's) is measurably different on the same input.
  RMSNorm other(32, 1e-6, /*weight_after_cast=*/false);
  other->to(at::kBFloat16);
  other->weight.copy_(m->norm->weight);
  const double other_mismatched = (other(x) != want).to(at::kDouble).mean().item<double>();
  EXPECT_GT(other_mismatched, 0.1);
}

TEST(QwenTextModel, TiedHeadUsesTheEmbedding) {
  TextModelOptions o = TextModelOptions::from_config(*checkpoint()->tower_config("text"));
  o.tie_word_embeddings = true;
  TextModel m(o);
  EXPECT_FALSE(m->lm_head);
  EXPECT_FALSE(m->named_parameters().contains("lm_head.weight"));
  at::NoGradGuard g;
  const at::Tensor h = at::randn({1, 3, 32});
  // (h's three rows go through the fp32 decoding kernel: another summation order)
  EXPECT_TRUE(at::allclose(m->logits(h), at::matmul(h, m->embed_tokens->weight.t()), 1e-5, 1e-5));
}

TEST(QwenTextModel, BadInputsAreInputErrors) {
  TextModel m = load_text_model();
  at::NoGradGuard g;
  EXPECT_THROW(m->embed(at::tensor({1, 512}, at::kLong).view({1, 2})), InputError);
  EXPECT_THROW(m->embed(at::tensor({-1}, at::kLong).view({1, 1})), InputError);
  EXPECT_THROW(m->embed(at::zeros({1, 2})), InputError);  // float ids
  const at::Tensor e = m->embed(at::tensor({1, 2, 3}, at::kLong).view({1, 3}));
  EXPECT_THROW(m->forward(e, plain_positions(1, 4)), InputError);     // L mismatch
  EXPECT_THROW(m->forward(e, at::arange(3, at::kLong)), InputError);  // 1-D positions
  EXPECT_THROW(m->forward(e, plain_positions(1, 3).to(at::kFloat)), InputError);
  EXPECT_THROW(m->forward(at::zeros({1, 3, 16}), plain_positions(1, 3)), InputError);  // width
  EXPECT_THROW(m->forward(at::zeros({1, 0, 32}), plain_positions(1, 0)), InputError);  // empty
}

}  // namespace
}  // namespace omni::qwen
