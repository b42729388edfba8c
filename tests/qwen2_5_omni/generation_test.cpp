// Generation with the Qwen2.5-Omni thinker's language model against transformers'
// `thinker.generate` on the tiny checkpoint: greedy ids and every step's logits (KV-cache path)
// for a prompt with an image block (rope_deltas != 0), the same logits from one pass without a
// cache (transformers' positions over the whole sequence), a prompt that stops on an eos id of
// generation_config.json, streaming, seeded sampling, and transformers' logits warpers.
// References: scripts/fixtures/make_qwen_text_refs.py.
#include "models/qwen2_5_omni/generation.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "tests/qwen2_5_omni/qwen_text_fixture.h"

namespace omni::qwen {
namespace {

using testing::checkpoint;
using testing::fx;
using testing::load_text_model;
using testing::max_abs_diff;
using testing::refs;

constexpr double kTol = 1e-4;

std::vector<int64_t> to_vec(const at::Tensor& t) {
  const at::Tensor c = t.reshape({-1}).to(at::kLong).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

GenerationOptions greedy(int64_t n) {
  GenerationOptions o;
  o.max_new_tokens = n;
  o.eos_token_ids = checkpoint()->eos_token_ids();
  o.output_logits = true;
  return o;
}

TEST(QwenGeneration, EosIdsFromGenerationConfig) {
  EXPECT_EQ(checkpoint()->eos_token_ids(), (std::vector<int64_t>{511, 510}));
  const GenerationOptions o =
      GenerationOptions::from_generation_config(checkpoint()->generation_config(), 8);
  EXPECT_EQ(o.eos_token_ids, (std::vector<int64_t>{511, 510}));
  EXPECT_FALSE(o.do_sample);
  EXPECT_EQ(o.max_new_tokens, 8);
  EXPECT_EQ(o.top_k, 50);  // transformers' default
  const GenerationOptions s = GenerationOptions::from_generation_config({{"do_sample", true},
                                                                         {"temperature", 0.7},
                                                                         {"top_p", 0.9},
                                                                         {"top_k", 20},
                                                                         {"max_new_tokens", 100},
                                                                         {"eos_token_id", 5}});
  EXPECT_TRUE(s.do_sample);
  EXPECT_DOUBLE_EQ(s.temperature, 0.7);
  EXPECT_DOUBLE_EQ(s.top_p, 0.9);
  EXPECT_EQ(s.top_k, 20);
  EXPECT_EQ(s.max_new_tokens, 100);
  EXPECT_EQ(s.eos_token_ids, (std::vector<int64_t>{5}));
  EXPECT_THROW(GenerationOptions::from_generation_config({{"eos_token_id", "x"}}), ConfigError);
}

TEST(QwenGeneration, GreedyIdsAndStepLogitsMatchTransformers) {
  TextModel m = load_text_model();
  const at::Tensor embeds = fx("c_embeds"), pos = fx("c_pos");
  const int64_t L = embeds.size(1);
  ASSERT_FALSE(at::equal(pos[0], pos[1]));  // the prompt holds an image block
  std::vector<int64_t> streamed;
  const GenerationResult r =
      generate(*m, embeds, pos, greedy(8), [&](int64_t id) { streamed.push_back(id); });
  EXPECT_EQ(r.ids, to_vec(fx("c_ids")));
  EXPECT_EQ(streamed, r.ids);
  EXPECT_FALSE(r.stopped_at_eos);
  ASSERT_TRUE(r.logits.defined());
  std::printf("ids %s; step logits: max |ours - transformers| = %.3g\n", c10::str(r.ids).c_str(),
              max_abs_diff(r.logits, fx("c_step_logits")));
  EXPECT_LE(max_abs_diff(r.logits, fx("c_step_logits")), kTol);
  // transformers' rope delta: max prompt position + 1 - prompt length (negative here: the image
  // block spans fewer positions than tokens).
  EXPECT_EQ(r.rope_delta, pos.max().item<int64_t>() + 1 - L);
  EXPECT_LT(r.rope_delta, 0);
  // The positions transformers gives the generated tokens over the whole sequence are ours:
  // cache position + delta on all three axes.
  const at::Tensor full_pos = fx("c_full_pos");
  const int64_t N = int64_t(r.ids.size());
  ASSERT_EQ(full_pos.size(2), L + N - 1);
  const at::Tensor expect =
      (at::arange(L, L + N - 1, at::kLong) + r.rope_delta).view({1, 1, -1}).expand({3, 1, N - 1});
  EXPECT_TRUE(at::equal(full_pos.slice(2, L), expect));
  EXPECT_TRUE(at::equal(full_pos.slice(2, 0, L), pos));
}

TEST(QwenGeneration, FullRecomputeMatchesTheCachePath) {
  TextModel m = load_text_model();
  at::NoGradGuard g;
  const at::Tensor embeds = fx("c_embeds"), ids = fx("c_ids");
  const int64_t L = embeds.size(1), N = ids.size(1);
  // Prompt embeddings + the generated tokens but the last, in one pass without a cache, at
  // transformers' positions.
  const at::Tensor all = at::cat({embeds, m->embed(ids.slice(1, 0, N - 1))}, 1);
  const at::Tensor full = m->forward(all, fx("c_full_pos"))[0];
  std::printf("full recompute: max |ours - transformers| = %.3g\n",
              max_abs_diff(full, fx("c_full_logits")));
  EXPECT_LE(max_abs_diff(full, fx("c_full_logits")), kTol);
  const GenerationResult r = generate(*m, embeds, fx("c_pos"), greedy(8));
  EXPECT_LE(max_abs_diff(full.slice(0, L - 1), r.logits), kTol);
}

TEST(QwenGeneration, StopsAtAnEosId) {
  // The tiny model's greedy continuations never reach its eos ids (511, 510), so the reference
  // generation was given one more eos id that its continuation reaches after 4 tokens.
  TextModel m = load_text_model();
  const std::vector<int64_t> want = to_vec(fx("e_ids")), eos = to_vec(fx("e_eos"));
  ASSERT_EQ(want.size(), 4u);
  ASSERT_EQ(eos.size(), 3u);
  EXPECT_EQ(std::vector<int64_t>(eos.begin(), eos.begin() + 2), checkpoint()->eos_token_ids());
  EXPECT_EQ(want.back(), eos[2]);
  GenerationOptions o = greedy(8);
  o.eos_token_ids = eos;
  std::vector<int64_t> streamed;
  const GenerationResult r =
      generate(*m, fx("e_embeds"), fx("e_pos"), o, [&](int64_t id) { streamed.push_back(id); });
  EXPECT_EQ(r.ids, want);  // as transformers returns them: ending with the eos id
  EXPECT_TRUE(r.stopped_at_eos);
  EXPECT_EQ(streamed, want);
  EXPECT_LE(max_abs_diff(r.logits, fx("e_step_logits")), kTol);
  // With the generation config's eos ids only it runs on to max_new_tokens.
  const GenerationResult r2 = generate(*m, fx("e_embeds"), fx("e_pos"), greedy(8));
  EXPECT_EQ(r2.ids.size(), 8u);
  EXPECT_FALSE(r2.stopped_at_eos);
  EXPECT_TRUE(std::equal(want.begin(), want.end(), r2.ids.begin()));
  // Any id of the list stops it, wherever it stands in the list.
  o.eos_token_ids = {eos[2], 511};
  EXPECT_EQ(generate(*m, fx("e_embeds"), fx("e_pos"), o).ids, want);
}

TEST(QwenGeneration, CacheKeepsEveryFedToken) {
  TextModel m = load_text_model();
  KVCache cache;
  const at::Tensor embeds = fx("c_embeds");
  const GenerationResult r = generate(*m, embeds, fx("c_pos"), greedy(8), {}, &cache);
  EXPECT_EQ(cache.length(), embeds.size(1) + int64_t(r.ids.size()) - 1);
  GenerationOptions none = greedy(0);
  KVCache c2;
  EXPECT_TRUE(generate(*m, embeds, fx("c_pos"), none, {}, &c2).ids.empty());
}

TEST(QwenGeneration, SeededSamplingIsReproducibleAndTopKOneIsGreedy) {
  TextModel m = load_text_model();
  const at::Tensor embeds = fx("c_embeds"), pos = fx("c_pos");
  GenerationOptions s;
  s.max_new_tokens = 8;
  s.do_sample = true;
  s.temperature = 1.5;
  s.top_k = 0;
  s.top_p = 1.0;
  std::set<std::vector<int64_t>> outcomes;
  for (uint64_t seed : {1, 2, 3, 4, 5}) {
    s.seed = seed;
    const auto a = generate(*m, embeds, pos, s).ids;
    const auto b = generate(*m, embeds, pos, s).ids;
    EXPECT_EQ(a, b) << "seed " << seed;
    outcomes.insert(a);
  }
  EXPECT_GT(outcomes.size(), 1u);  // the seed matters
  // Sampling never touches torch's global generator.
  at::manual_seed(99);
  const at::Tensor before = at::rand({4});
  at::manual_seed(99);
  generate(*m, embeds, pos, s);
  EXPECT_TRUE(at::equal(at::rand({4}), before));
  // top_k = 1 leaves one candidate: greedy's ids, whatever the seed and temperature.
  s.top_k = 1;
  for (uint64_t seed : {7, 8}) {
    s.seed = seed;
    EXPECT_EQ(generate(*m, embeds, pos, s).ids, to_vec(fx("c_ids")));
  }
}

TEST(QwenGeneration, FiltersMatchTransformersWarpers) {
  const at::Tensor logits = fx("warp_logits");
  const nlohmann::json cases = nlohmann::json::parse(refs().metadata().at("warp_cases"));
  ASSERT_GE(cases.size(), 5u);
  for (const auto& [name, c] : cases.items()) {
    GenerationOptions o;
    o.temperature = c[0].get<double>();
    o.top_k = c[1].get<int64_t>();
    o.top_p = c[2].get<double>();
    const at::Tensor want = fx("warp_" + name), got = filter_logits(logits, o);
    const at::Tensor kept = want.isfinite();
    EXPECT_TRUE(at::equal(got.isfinite(), kept)) << name << ": " << got << want;
    EXPECT_LE(max_abs_diff(got.masked_select(kept), want.masked_select(kept)), 1e-6) << name;
  }
}

TEST(QwenGeneration, TextCaseOfTheEndToEndFixture) {
  // A second checkpoint and generator (tests/fixtures/hf/qwen2_5_omni_e2e, a chat-template prompt
  // through transformers' full Qwen2.5-Omni pipeline): its text-only case needs no encoder, so
  // the language model alone must give its prompt logits and greedy ids.
  const std::filesystem::path dir =
      std::filesystem::path(OMNI_SOURCE_DIR) / "tests/fixtures/hf/qwen2_5_omni_e2e";
  if (!std::filesystem::exists(dir / "reference/text.safetensors"))
    GTEST_SKIP() << "no end-to-end fixture";
  auto ckpt = Checkpoint::open(dir.string());
  TextModel m(TextModelOptions::from_config(*ckpt->tower_config("text")));
  ckpt->load_into(*m, {"text."});
  auto ref = SafeTensorsFile::open((dir / "reference/text.safetensors").string());
  std::ifstream jf(dir / "reference/text.json");
  const nlohmann::json facts = nlohmann::json::parse(jf);
  const at::Tensor ids = ref->get("input_ids").unsqueeze(0), pos = ref->get("position_ids");
  at::NoGradGuard g;
  const at::Tensor embeds = m->embed(ids);
  const at::Tensor logits = m->forward(embeds, pos)[0];
  const at::Tensor rows = ref->get("logit_rows");
  const double d = max_abs_diff(logits.index_select(0, rows), ref->get("logits"));
  std::printf("e2e text case: prompt logits max |ours - transformers| = %.3g\n", d);
  EXPECT_LE(d, kTol);
  GenerationOptions o = GenerationOptions::from_generation_config(ckpt->generation_config(), 8);
  o.eos_token_ids = ckpt->eos_token_ids();
  const GenerationResult r = generate(*m, embeds, pos, o);
  EXPECT_EQ(r.ids, facts.at("generated_ids").get<std::vector<int64_t>>());
  EXPECT_EQ(r.rope_delta, facts.at("rope_delta").get<int64_t>());
}

TEST(QwenGeneration, BadRequestsAreErrors) {
  TextModel m = load_text_model();
  const at::Tensor embeds = fx("c_embeds"), pos = fx("c_pos");
  GenerationOptions s = greedy(2);
  s.do_sample = true;
  s.temperature = 0;
  EXPECT_THROW(generate(*m, embeds, pos, s), ConfigError);
  s.temperature = 1;
  s.top_p = 0;
  EXPECT_THROW(generate(*m, embeds, pos, s), ConfigError);
  GenerationOptions e = greedy(2);
  e.eos_token_ids = {512};
  EXPECT_THROW(generate(*m, embeds, pos, e), ConfigError);
  EXPECT_THROW(generate(*m, at::cat({embeds, embeds}, 0), pos, greedy(2)), InputError);
  EXPECT_THROW(generate(*m, embeds, pos.slice(2, 1), greedy(2)), InputError);
  EXPECT_THROW(generate(*m, embeds.slice(1, 0, 0), pos.slice(2, 0, 0), greedy(2)), InputError);
}

}  // namespace
}  // namespace omni::qwen
