#include "modalities/common/attention.h"

#include <ATen/ATen.h>
#include <torch/version.h>

#include <cmath>
#include <limits>

#if TORCH_VERSION_MAJOR >= 2
#define OMNI_HAVE_SDPA 1
#else
#define OMNI_HAVE_SDPA 0
#endif

namespace omni {
namespace {

// Combines the caller's mask and the causal rule into one boolean mask (true = attend), or an
// undefined tensor when neither applies.
at::Tensor combined_bool_mask(const at::Tensor& q, const at::Tensor& k, const at::Tensor& mask,
                              bool causal) {
  at::Tensor m;
  // One query at the end of the keys (a decoding step) may attend to all of them: no mask.
  if (causal && !(q.size(-2) == 1 && k.size(-2) >= 1)) {
    const int64_t lq = q.size(-2), lk = k.size(-2);
    // Query i sits at key position i + (lk - lq).
    m = at::ones({lq, lk}, q.options().dtype(at::kBool)).tril(lk - lq);
  }
  if (mask.defined() && mask.scalar_type() == at::kBool)
    m = m.defined() ? m.logical_and(mask) : mask;
  return m;
}

}  // namespace

at::Tensor attention_explicit(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const at::Tensor& mask, bool causal) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  // Softmax in at least fp32 so half-precision inputs do not lose the normaliser.
  const auto compute = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor scores = at::matmul(q.to(compute), k.to(compute).transpose(-2, -1)).mul_(scale);
  if (mask.defined() && mask.scalar_type() != at::kBool) scores = scores + mask.to(compute);
  at::Tensor m = combined_bool_mask(q, k, mask, causal);
  if (m.defined()) scores.masked_fill_(m.logical_not(), -std::numeric_limits<float>::infinity());
  at::Tensor p = at::softmax(scores, -1);
  // Rows with every key masked give NaN from softmax; they attend to nothing. The causal rule
  // alone (keys >= queries) always leaves each row a key, so skip that pass over [.., Lq, Lk].
  const bool causal_only = causal && !mask.defined();
  if (m.defined() && !(causal_only && k.size(-2) >= q.size(-2))) p = at::nan_to_num(p, 0.0);
  return at::matmul(p, v.to(compute)).to(q.scalar_type());
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& mask, bool causal) {
#if OMNI_HAVE_SDPA
  if (!mask.defined()) {
    // SDPA's is_causal aligns to the top-left corner; use it only for square attention.
    if (!causal || q.size(-2) == k.size(-2))
      return at::scaled_dot_product_attention(q, k, v, {}, 0.0, causal);
  }
  at::Tensor m = combined_bool_mask(q, k, mask, causal);
  // (No caller mask here means causal attention over a KV cache: Lq < Lk, bottom-right aligned.)
  if (mask.defined() && mask.scalar_type() != at::kBool) {
    // Additive float mask: fold the causal rule into it as -inf (a bool mask cannot carry both).
    at::Tensor add = mask.to(q.scalar_type());
    if (m.defined())
      add = add.masked_fill(m.logical_not(), -std::numeric_limits<float>::infinity());
    return at::scaled_dot_product_attention(q, k, v, add, 0.0, false);
  }
  // No mask left (one decoding query over the whole cache): pass none. libtorch >= 2 rejects an
  // undefined tensor given as the mask.
  if (!m.defined()) return at::scaled_dot_product_attention(q, k, v, {}, 0.0, false);
  return at::scaled_dot_product_attention(q, k, v, m, 0.0, false);
#else
  return attention_explicit(q, k, v, mask, causal);
#endif
}

bool attention_uses_sdpa() { return OMNI_HAVE_SDPA != 0; }

}  // namespace omni
