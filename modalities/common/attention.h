// The one place that knows which libtorch version we build against: attention through
// scaled_dot_product_attention when libtorch >= 2.0 provides it, an explicit implementation
// otherwise (identical results, tested against a naive reference).
#pragma once

#include <ATen/core/Tensor.h>

namespace omni {

// q: [B, H, Lq, D], k/v: [B, H, Lk, D] (same H; repeat KV heads for GQA before calling).
// `mask`: optional boolean [.., Lq, Lk] (true = may attend) or additive float mask.
// `causal`: query i (aligned to the END of the keys) attends to keys <= i + (Lk - Lq).
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& mask = {}, bool causal = false);
// Always the explicit math (for tests comparing the two paths).
at::Tensor attention_explicit(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const at::Tensor& mask = {}, bool causal = false);
// True when attention() uses at::scaled_dot_product_attention.
bool attention_uses_sdpa();

}  // namespace omni
