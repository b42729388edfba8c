#include "modalities/common/attention.h"

#include <ATen/ATen.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

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

// Scores held at once by the explicit path (elements): past this the queries go in blocks.
// 1M fp32 scores (4 MiB) stay in the L2/L3 caches and under glibc's mmap threshold, so the
// softmax does not stream a [B, H, L, L] matrix through memory and every forward does not map
// and fault in fresh zeroed pages (both were visible in fusion_bench's profile at L = 1024).
constexpr int64_t kScoreBlockElements = int64_t(1) << 20;

at::Tensor attention_dense(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
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

}  // namespace

at::Tensor attention_explicit(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const at::Tensor& mask, bool causal) {
  const int64_t lq = q.size(-2), lk = k.size(-2);
  const int64_t rows_of_scores = lq > 0 ? q.numel() / (q.size(-1) * lq) * lk : 0;
  const int64_t block = rows_of_scores > 0 ? kScoreBlockElements / rows_of_scores : lq;
  // Small problems, and causal attention with more queries than keys (rows that see no key),
  // in one piece.
  if (block >= lq || (causal && lk < lq)) return attention_dense(q, k, v, mask, causal);
  const int64_t rows = std::max<int64_t>(block, 16);
  const bool mask_rows = mask.defined() && mask.dim() >= 2 && mask.size(-2) == lq;
  const bool mask_cols = mask.defined() && mask.dim() >= 1 && mask.size(-1) == lk;
  std::vector<at::Tensor> parts;
  for (int64_t s = 0; s < lq; s += rows) {
    const int64_t e = std::min(lq, s + rows);
    // Causal: the block's last query sees keys up to e + (lk - lq); the ones after it are masked
    // for every row of the block and are not computed at all. Within the block, query i sits
    // at key i + (kend - (e - s)) = s + i + (lk - lq), as attention_dense aligns it.
    const int64_t kend = causal ? e + (lk - lq) : lk;
    at::Tensor m = mask;
    if (mask_rows) m = m.narrow(-2, s, e - s);
    if (mask_cols) m = m.narrow(-1, 0, kend);
    parts.push_back(attention_dense(q.narrow(-2, s, e - s), k.narrow(-2, 0, kend),
                                    v.narrow(-2, 0, kend), m, causal));
  }
  return at::cat(parts, -2);
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
