// Decoding's matrix-vector products on the CPU: y = x W^T (+ b) for one to four rows of x against
// a bf16 (or fp32) weight matrix. Decoding one token reads every weight of the language model once
// (6.2 GB for a 3B model), so its speed is the speed of streaming W from memory. libtorch 1.13's
// bf16 linear (oneDNN 2.6 through ideep) streamed it at about 60% of what these kernels reach
// (docs/PERFORMANCE.md, "Decoding and prefill on the CPU"); they read W once, front to back,
// and accumulate in fp32 (AVX512-BF16 dot products, one row of W at a time; or AVX2 + FMA after
// widening bf16 to fp32, 2-4 rows at a time), rounding each output to bf16 once, as oneDNN does.
// fp32 weights take the same shapes (AVX512F or AVX2 + FMA): libtorch 1.13's fp32 linear of one
// row went to OpenBLAS at 3-8 GB/s, with its own threads fighting libtorch's for the cores.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>

namespace omni {

enum class GemvIsa {
  kNone,        // no kernel: at::linear
  kAvx2,        // AVX2 + FMA, bf16 widened to fp32
  kAvx512Bf16,  // AVX512-BF16 dot products (vdpbf16ps)
};

// The best kernel this CPU runs, unless OMNI_GEMV (off, avx2, avx512bf16; read once) asks for
// another (one the CPU lacks falls back to the best it has).
GemvIsa gemv_isa();
std::string to_string(GemvIsa isa);

// x W^T (+ bias) with the kernel `isa` when it applies: CPU tensors, x bf16 [..., K] with at most
// 4 rows (the product of the leading dimensions), W bf16 [N, K] contiguous, bias bf16 [N] or
// undefined, and no gradient to record. Otherwise nullopt (the caller uses at::linear). The result
// is [..., N] bf16; parallel over the rows of W on libtorch's intra-op threads.
std::optional<at::Tensor> bf16_gemv(const at::Tensor& x, const at::Tensor& weight,
                                    const at::Tensor& bias, GemvIsa isa = gemv_isa());

// The same for fp32: x, W and bias fp32; the result [..., N] fp32 (AVX512F where the CPU has
// AVX512-BF16, else AVX2 + FMA).
std::optional<at::Tensor> f32_gemv(const at::Tensor& x, const at::Tensor& weight,
                                   const at::Tensor& bias, GemvIsa isa = gemv_isa());

// at::linear(x, weight, bias), through bf16_gemv or f32_gemv where one applies.
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

// One decoding step's attention with grouped key/value heads, without copying the cache per
// query head: q [B, KV, G, D] (the G query heads that share a key/value head), k and v
// [B, KV, T, D], every query seeing every key (the step's one query comes after them all). The
// same math as attention() on k and v repeated G times: fp32 scores scaled by 1/sqrt(D), an fp32
// softmax and fp32 sums of v (for bf16 tensors rounded to bf16 once). For CPU tensors, all bf16 or
// all fp32, no gradient, when gemv_isa() is not kNone (AVX2 + FMA); otherwise nullopt. Parallel
// over the B x KV heads.
// (libtorch's batched products here went to OpenBLAS, whose own threads then fought libtorch's
// OpenMP threads for the cores: decoding at a 920-token context ran at half speed.)
std::optional<at::Tensor> decode_attention(const at::Tensor& q, const at::Tensor& k,
                                           const at::Tensor& v);

}  // namespace omni
