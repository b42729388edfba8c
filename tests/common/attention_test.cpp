// The attention shim: attention() (SDPA where libtorch >= 2 has it) and attention_explicit()
// against a naive per-element reference, with causal alignment, boolean and additive masks.
#include "modalities/common/attention.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cmath>
#include <limits>

namespace omni {
namespace {

// Loops over every query/key pair in double precision.
at::Tensor naive(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                 const at::Tensor& mask, bool causal) {
  const int64_t B = q.size(0), H = q.size(1), Lq = q.size(2), Lk = k.size(2), D = q.size(3);
  at::Tensor qd = q.to(at::kDouble).cpu(), kd = k.to(at::kDouble).cpu(),
             vd = v.to(at::kDouble).cpu();
  at::Tensor out = at::zeros({B, H, Lq, D}, at::kDouble);
  auto Q = qd.accessor<double, 4>(), K = kd.accessor<double, 4>(), V = vd.accessor<double, 4>();
  auto O = out.accessor<double, 4>();
  at::Tensor m = mask.defined() ? mask.expand({B, H, Lq, Lk}).cpu() : at::Tensor();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Lq; ++i) {
        std::vector<double> s(Lk, -std::numeric_limits<double>::infinity());
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < Lk; ++j) {
          if (causal && j > i + (Lk - Lq)) continue;
          double add = 0;
          if (m.defined()) {
            if (m.scalar_type() == at::kBool) {
              if (!m[b][h][i][j].item<bool>()) continue;
            } else {
              add = m[b][h][i][j].item<double>();
            }
          }
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += Q[b][h][i][d] * K[b][h][j][d];
          s[j] = dot / std::sqrt(double(D)) + add;
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (int64_t j = 0; j < Lk; ++j) z += std::isinf(s[j]) ? 0 : std::exp(s[j] - mx);
        for (int64_t j = 0; j < Lk; ++j) {
          if (std::isinf(s[j])) continue;
          const double p = std::exp(s[j] - mx) / z;
          for (int64_t d = 0; d < D; ++d) O[b][h][i][d] += p * V[b][h][j][d];
        }
      }
  return out;
}

void expect_close(const at::Tensor& a, const at::Tensor& b, double tol) {
  ASSERT_EQ(a.sizes(), b.sizes());
  EXPECT_LE((a.to(at::kDouble).cpu() - b.to(at::kDouble).cpu()).abs().max().item<double>(), tol);
}

struct Case {
  int64_t lq, lk;
  bool causal;
  int mask;  // 0 none, 1 bool, 2 additive
};

class AttentionShim : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionShim, BothPathsMatchNaiveReference) {
  const Case c = GetParam();
  at::manual_seed(3);
  at::Tensor q = at::randn({2, 3, c.lq, 8}), k = at::randn({2, 3, c.lk, 8}),
             v = at::randn({2, 3, c.lk, 8});
  at::Tensor mask;
  if (c.mask == 1) {
    mask = at::rand({2, 1, c.lq, c.lk}) > 0.3;
    mask.select(-1, 0).fill_(true);  // every row keeps at least one key
  } else if (c.mask == 2) {
    mask = at::randn({1, 3, c.lq, c.lk});
  }
  const at::Tensor ref = naive(q, k, v, mask, c.causal);
  expect_close(attention_explicit(q, k, v, mask, c.causal), ref, 1e-5);
  expect_close(attention(q, k, v, mask, c.causal), ref, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Layouts, AttentionShim,
                         ::testing::Values(Case{5, 5, false, 0}, Case{5, 5, true, 0},
                                           Case{3, 7, true, 0},  // appended chunk vs cache
                                           Case{1, 6, true, 0},  // one decoding step
                                           Case{4, 4, false, 1}, Case{4, 6, true, 1},
                                           Case{4, 4, false, 2}, Case{2, 5, true, 2}));

// Past 1M scores the explicit path runs the queries in blocks (causal blocks skip the keys no row
// of theirs can see); the same numbers as the naive reference.
INSTANTIATE_TEST_SUITE_P(QueryBlocks, AttentionShim,
                         ::testing::Values(Case{1100, 1100, true, 0}, Case{1000, 1300, true, 0},
                                           Case{1100, 1100, false, 0}, Case{900, 1200, false, 1},
                                           Case{800, 1400, true, 1}, Case{700, 1600, true, 2}));

TEST(AttentionShim, ExplicitFullyMaskedRowGivesZeros) {
  at::Tensor q = at::randn({1, 1, 2, 4}), k = at::randn({1, 1, 3, 4}), v = at::randn({1, 1, 3, 4});
  at::Tensor mask = at::ones({2, 3}, at::kBool);
  mask[0].fill_(false);
  at::Tensor out = attention_explicit(q, k, v, mask, false);
  EXPECT_TRUE(at::equal(out[0][0][0], at::zeros({4})));
  expect_close(out[0][0][1], naive(q, k, v, mask, false)[0][0][1], 1e-5);
}

TEST(AttentionShim, HalfPrecisionInputsKeepTheirDtype) {
  at::Tensor q = at::randn({1, 2, 4, 8}, at::kDouble);
  at::Tensor out =
      attention_explicit(q.to(at::kBFloat16), q.to(at::kBFloat16), q.to(at::kBFloat16), {}, true);
  EXPECT_EQ(out.scalar_type(), at::kBFloat16);
  expect_close(out, naive(q, q, q, {}, true), 5e-2);
}

TEST(AttentionShim, CudaMatchesReferenceWhenAvailable) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  at::Tensor q = at::randn({1, 2, 3, 8}), k = at::randn({1, 2, 6, 8}), v = at::randn({1, 2, 6, 8});
  const at::Tensor ref = naive(q, k, v, {}, true);
  expect_close(attention(q.cuda(), k.cuda(), v.cuda(), {}, true), ref, 1e-4);
  expect_close(attention_explicit(q.cuda(), k.cuda(), v.cuda(), {}, true), ref, 1e-4);
}

}  // namespace
}  // namespace omni
