// The decoding kernels (modalities/common/gemv.h) against libtorch's fp32 product of the same
// values (bf16 and fp32 weights): every kernel this CPU runs, over row counts, lengths with and
// without a tail, row counts of W that are and are not multiples of the row block, with and without
// bias; and the cases they must leave to at::linear.
#include "modalities/common/gemv.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/utils.h>

#include <vector>

#include "modalities/common/attention.h"
#include "modalities/common/deferred_init.h"

namespace omni {
namespace {

std::vector<GemvIsa> runnable() {
  std::vector<GemvIsa> out;
  for (const GemvIsa isa : {GemvIsa::kAvx2, GemvIsa::kAvx512Bf16}) {
    const at::Tensor x = at::ones({1, 4}, at::kBFloat16), w = at::ones({2, 4}, at::kBFloat16);
    if (bf16_gemv(x, w, {}, isa)) out.push_back(isa);
  }
  return out;
}

// The product in fp32 of the bf16 values, then the bias: what the kernels compute before their
// one rounding to bf16.
at::Tensor reference(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  at::Tensor y = at::matmul(x.to(at::kFloat), w.to(at::kFloat).t());
  return b.defined() ? y + b.to(at::kFloat) : y;
}

// Within one rounding to bf16 (2^-8 relative) plus fp32 summation-order noise.
void expect_close(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.scalar_type(), at::kBFloat16) << what;
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const at::Tensor g = got.to(at::kFloat);
  const at::Tensor bound = want.abs() * (1.0 / 256) + 1e-3;
  const at::Tensor over = (g - want).abs() > bound;
  EXPECT_EQ(over.sum().item<int64_t>(), 0)
      << what << ": max difference " << (g - want).abs().max().item<float>();
}

// fp32 kernels: the same products summed in another order; bounded by fp32 rounding of the sum of
// the products' magnitudes.
void expect_close_f32(const at::Tensor& got, const at::Tensor& x, const at::Tensor& w,
                      const at::Tensor& b, const std::string& what) {
  ASSERT_EQ(got.scalar_type(), at::kFloat) << what;
  const at::Tensor want = reference(x, w, b);
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  at::Tensor bound = at::matmul(x.abs(), w.abs().t()) * 1e-5 + 1e-6;
  if (b.defined()) bound = bound + b.abs() * 1e-6;
  const at::Tensor over = (got - want).abs() > bound;
  EXPECT_EQ(over.sum().item<int64_t>(), 0)
      << what << ": max difference " << (got - want).abs().max().item<float>();
}

TEST(Gemv, KernelsMatchTheFp32ProductOfTheSameValues) {
  const std::vector<GemvIsa> isas = runnable();
  if (isas.empty()) GTEST_SKIP() << "no gemv kernel runs on this CPU";
  at::NoGradGuard no_grad;
  torch::manual_seed(3);
  for (const GemvIsa isa : isas) {
    for (const int64_t m : {1, 2, 3, 4}) {
      for (const int64_t k : {1, 7, 31, 32, 33, 100, 2053}) {
        for (const int64_t n : {1, 3, 4, 5, 67}) {
          for (const bool with_bias : {false, true}) {
            const at::Tensor x = at::randn({m, k});
            const at::Tensor w = at::randn({n, k});
            const at::Tensor b = with_bias ? at::randn({n}) : at::Tensor();
            const std::string what = to_string(isa) + " m=" + std::to_string(m) +
                                     " k=" + std::to_string(k) + " n=" + std::to_string(n) +
                                     (with_bias ? " bias" : "");
            const at::Tensor xb = x.to(at::kBFloat16), wb = w.to(at::kBFloat16),
                             bb = with_bias ? b.to(at::kBFloat16) : b;
            const auto y = bf16_gemv(xb, wb, bb, isa);
            ASSERT_TRUE(y.has_value()) << what;
            expect_close(*y, reference(xb, wb, bb), what);
            const auto yf = f32_gemv(x, w, b, isa);
            ASSERT_TRUE(yf.has_value()) << what << " fp32";
            expect_close_f32(*yf, x, w, b, what + " fp32");
          }
        }
      }
    }
  }
}

TEST(Gemv, LeadingDimensionsAndThreadsDoNotChangeTheBits) {
  const std::vector<GemvIsa> isas = runnable();
  if (isas.empty()) GTEST_SKIP() << "no gemv kernel runs on this CPU";
  at::NoGradGuard no_grad;
  torch::manual_seed(4);
  const at::Tensor x = at::randn({2, 1, 640}).to(at::kBFloat16);
  const at::Tensor w = at::randn({1001, 640}).to(at::kBFloat16);
  const at::Tensor b = at::randn({1001}).to(at::kBFloat16);
  const int threads = at::get_num_threads();
  for (const GemvIsa isa : isas) {
    at::set_num_threads(1);
    const at::Tensor one = *bf16_gemv(x, w, b, isa);
    at::set_num_threads(2);
    const at::Tensor two = *bf16_gemv(x, w, b, isa);
    EXPECT_EQ(one.sizes(), (std::vector<int64_t>{2, 1, 1001}));
    EXPECT_TRUE(one.equal(two)) << to_string(isa);
    // Each row of x alone gives the same bits as the two together.
    EXPECT_TRUE(one[1].equal(*bf16_gemv(x[1], w, b, isa))) << to_string(isa);
    expect_close(one, reference(x, w, b), to_string(isa));
    // fp32 weights, likewise.
    const at::Tensor xf = x.to(at::kFloat), wf = w.to(at::kFloat), bf = b.to(at::kFloat);
    at::set_num_threads(1);
    const at::Tensor one_f = *f32_gemv(xf, wf, bf, isa);
    at::set_num_threads(2);
    const at::Tensor two_f = *f32_gemv(xf, wf, bf, isa);
    EXPECT_TRUE(one_f.equal(two_f)) << to_string(isa) << " fp32";
    EXPECT_TRUE(one_f[1].equal(*f32_gemv(xf[1], wf, bf, isa))) << to_string(isa) << " fp32";
  }
  at::set_num_threads(threads);
}

TEST(Gemv, LeavesWhatItDoesNotCoverToAtLinear) {
  at::NoGradGuard no_grad;
  const at::Tensor x = at::randn({1, 16}).to(at::kBFloat16);
  const at::Tensor w = at::randn({8, 16}).to(at::kBFloat16);
  EXPECT_FALSE(bf16_gemv(x, w, {}, GemvIsa::kNone));
  for (const GemvIsa isa : runnable()) {
    EXPECT_FALSE(bf16_gemv(x.to(at::kFloat), w.to(at::kFloat), {}, isa)) << "fp32";
    EXPECT_FALSE(bf16_gemv(x, w.to(at::kFloat), {}, isa)) << "fp32 weight";
    EXPECT_FALSE(bf16_gemv(at::randn({5, 16}).to(at::kBFloat16), w, {}, isa)) << "5 rows";
    EXPECT_FALSE(bf16_gemv(x, w.t().contiguous().t(), {}, isa)) << "strided weight";
    EXPECT_FALSE(bf16_gemv(at::randn({1, 8}).to(at::kBFloat16), w, {}, isa)) << "wrong K";
    EXPECT_FALSE(bf16_gemv(x, w, at::randn({8}), isa)) << "fp32 bias";
    EXPECT_FALSE(bf16_gemv(x, w, at::randn({7}).to(at::kBFloat16), isa)) << "short bias";
    EXPECT_TRUE(bf16_gemv(x, w, {}, isa));
    const at::Tensor x32 = x.to(at::kFloat), w32 = w.to(at::kFloat);
    EXPECT_FALSE(f32_gemv(x, w32, {}, isa)) << "bf16 x, fp32 weight";
    EXPECT_FALSE(f32_gemv(x32, w, {}, isa)) << "fp32 x, bf16 weight";
    EXPECT_FALSE(f32_gemv(at::randn({5, 16}), w32, {}, isa)) << "fp32, 5 rows";
    EXPECT_FALSE(f32_gemv(x32, w32.t().contiguous().t(), {}, isa)) << "fp32, strided weight";
    EXPECT_FALSE(f32_gemv(x32, w32, at::randn({8}).to(at::kBFloat16), isa)) << "bf16 bias";
    EXPECT_FALSE(f32_gemv(x32.to(at::kDouble), w32.to(at::kDouble), {}, isa)) << "fp64";
    EXPECT_TRUE(f32_gemv(x32, w32, at::randn({8}), isa));
  }
  // What the kernels leave is at::linear's own result, bit for bit.
  const at::Tensor xf = at::randn({6, 16}).to(at::kBFloat16);
  EXPECT_TRUE(omni::linear(xf, w).equal(at::linear(xf, w)));
  EXPECT_TRUE(omni::linear(xf.to(at::kFloat), w.to(at::kFloat))
                  .equal(at::linear(xf.to(at::kFloat), w.to(at::kFloat))));
}

TEST(Gemv, GradientsStillFlowThroughLinear) {
  const at::Tensor x = at::randn({1, 16}).to(at::kBFloat16);
  const at::Tensor w = at::randn({8, 16}).to(at::kBFloat16).requires_grad_(true);
  for (const GemvIsa isa : runnable()) EXPECT_FALSE(bf16_gemv(x, w, {}, isa)) << "grad mode";
  const at::Tensor y = omni::linear(x, w);
  EXPECT_TRUE(y.requires_grad());
  y.to(at::kFloat).sum().backward();
  EXPECT_TRUE(w.grad().defined());
  {
    at::NoGradGuard no_grad;
    EXPECT_FALSE(omni::linear(x, w).requires_grad());
  }
}

TEST(Gemv, Bf16LinearModuleDecodesThroughTheKernel) {
  if (gemv_isa() == GemvIsa::kNone) GTEST_SKIP() << "no gemv kernel (this CPU or OMNI_GEMV=off)";
  at::NoGradGuard no_grad;
  torch::manual_seed(5);
  nn::Linear lin(48, 24);
  lin->to(at::kBFloat16);
  const at::Tensor x = at::randn({1, 1, 48}).to(at::kBFloat16);
  const at::Tensor y = lin(x);
  EXPECT_TRUE(y.equal(*bf16_gemv(x, lin->weight, lin->bias)));
  expect_close(y, reference(x, lin->weight, lin->bias), "module");
}

// The grouped decoding attention against attention_explicit on k and v repeated per query head
// (what the text model did before), in fp32 from the same bf16 values; and with fp32 tensors.
TEST(DecodeAttention, MatchesAttentionOnRepeatedHeads) {
  if (gemv_isa() == GemvIsa::kNone) GTEST_SKIP() << "no gemv kernel (this CPU or OMNI_GEMV=off)";
  at::NoGradGuard no_grad;
  torch::manual_seed(6);
  for (const int64_t b : {1, 2}) {
    for (const int64_t kv : {1, 2}) {
      for (const int64_t g : {1, 7, 8}) {
        for (const int64_t t : {1, 5, 37, 300}) {
          for (const int64_t d : {20, 128}) {
            const at::Tensor q = at::randn({b, kv, g, d}).to(at::kBFloat16);
            const at::Tensor k = (at::randn({b, kv, t, d}) * 2).to(at::kBFloat16);
            const at::Tensor v = at::randn({b, kv, t, d}).to(at::kBFloat16);
            const auto got = decode_attention(q, k, v);
            const std::string what = "b=" + std::to_string(b) + " kv=" + std::to_string(kv) +
                                     " g=" + std::to_string(g) + " t=" + std::to_string(t) +
                                     " d=" + std::to_string(d);
            ASSERT_TRUE(got.has_value()) << what;
            const auto got_f =
                decode_attention(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat));
            ASSERT_TRUE(got_f.has_value()) << what << " fp32";
            // Reference: each query head its own row against its key/value head, repeated.
            const at::Tensor qh = q.to(at::kFloat).reshape({b, kv * g, 1, d});
            const at::Tensor kh =
                k.to(at::kFloat).unsqueeze(2).expand({b, kv, g, t, d}).reshape({b, kv * g, t, d});
            const at::Tensor vh =
                v.to(at::kFloat).unsqueeze(2).expand({b, kv, g, t, d}).reshape({b, kv * g, t, d});
            const at::Tensor want = attention_explicit(qh, kh, vh, {}, true).reshape({b, kv, g, d});
            expect_close(*got, want, what);
            ASSERT_EQ(got_f->scalar_type(), at::kFloat) << what;
            EXPECT_LT((*got_f - want).abs().max().item<float>(), 1e-4) << what << " fp32";
          }
        }
      }
    }
  }
}

TEST(DecodeAttention, ThreadsDoNotChangeTheBitsAndOtherInputsAreLeft) {
  if (gemv_isa() == GemvIsa::kNone) GTEST_SKIP() << "no gemv kernel (this CPU or OMNI_GEMV=off)";
  at::NoGradGuard no_grad;
  const at::Tensor q = at::randn({1, 2, 8, 64}).to(at::kBFloat16);
  const at::Tensor k = at::randn({1, 2, 50, 64}).to(at::kBFloat16);
  const at::Tensor v = at::randn({1, 2, 50, 64}).to(at::kBFloat16);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = *decode_attention(q, k, v);
  at::set_num_threads(2);
  const at::Tensor two = *decode_attention(q, k, v);
  at::set_num_threads(threads);
  EXPECT_TRUE(one.equal(two));
  // Non-contiguous inputs give the same answer as their contiguous copies.
  const at::Tensor kt = k.transpose(2, 3).contiguous().transpose(2, 3);
  EXPECT_TRUE(decode_attention(q, kt, v)->equal(one));
  EXPECT_FALSE(decode_attention(q.to(at::kFloat), k, v)) << "fp32 query";
  EXPECT_FALSE(decode_attention(q, k.to(at::kFloat), v.to(at::kFloat))) << "fp32 cache";
  EXPECT_FALSE(decode_attention(q, k, v.narrow(2, 0, 49))) << "v shorter than k";
  EXPECT_FALSE(decode_attention(q, k.narrow(1, 0, 1), v.narrow(1, 0, 1))) << "heads";
  EXPECT_FALSE(decode_attention(q[0], k[0], v[0])) << "3-d";
  EXPECT_FALSE(decode_attention(q.to(at::kDouble), k.to(at::kDouble), v.to(at::kDouble))) << "fp64";
  EXPECT_TRUE(decode_attention(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat)));
}

}  // namespace
}  // namespace omni
