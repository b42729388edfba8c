#include "modalities/common/gemv.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#define OMNI_X86 1
#endif

namespace omni {
namespace {

constexpr int64_t kMaxRows = 4;  // rows of x one call takes
constexpr int kRowBlock = 4;     // rows of W in flight (AVX2); a thread's rows come in multiples

inline float bf16_to_float(uint16_t v) {
  return static_cast<float>(c10::BFloat16(v, c10::BFloat16::from_bits()));
}

// The two element types: bf16 (its bits) and fp32.
inline float to_float(uint16_t v) { return bf16_to_float(v); }
inline float to_float(float v) { return v; }
template <class T>
inline T from_float(float v) {
  if constexpr (std::is_same_v<T, float>)
    return v;
  else
    return c10::BFloat16(v).x;  // round to nearest even, c10::BFloat16's conversion
}

// The outputs of rows [r, r + R) of W for the M rows of x, plus the bias (bf16: rounded once).
template <int M, int R, class T>
inline void store(const float (&acc)[M][R], const T* bias, int64_t r, int64_t n, T* y) {
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < R; ++j) {
      const float v = acc[m][j] + (bias != nullptr ? to_float(bias[r + j]) : 0.0f);
      y[m * n + r + j] = from_float<T>(v);
    }
  }
}

#if OMNI_X86

// ---- AVX512: 4 accumulators of 16 fp32 lanes per row of x.
#define OMNI_TARGET_AVX512F __attribute__((target("avx512f")))

template <int M>
OMNI_TARGET_AVX512F inline void zero_lanes(__m512 (&acc)[M][4]) {
  for (int m = 0; m < M; ++m)
    for (int u = 0; u < 4; ++u) acc[m][u] = _mm512_setzero_ps();
}

// Each row's 4 x 16 lanes summed pairwise through memory (GCC 12's _mm512_reduce_add_ps warns from
// inside its own header, -Wuninitialized on _mm256_undefined_pd).
template <int M>
OMNI_TARGET_AVX512F inline void sum_lanes(const __m512 (&acc)[M][4], float (&out)[M][1]) {
  for (int m = 0; m < M; ++m) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, _mm512_add_ps(_mm512_add_ps(acc[m][0], acc[m][1]),
                                         _mm512_add_ps(acc[m][2], acc[m][3])));
    for (int half = 8; half > 0; half /= 2)
      for (int j = 0; j < half; ++j) lanes[j] += lanes[j + half];
    out[m][0] = lanes[0];
  }
}

// ---- AVX512-BF16: 32 bf16 products per instruction, accumulated in 16 fp32 lanes.
#define OMNI_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

// One row of W against the M rows of x, read front to back as one stream (the hardware
// prefetcher follows one sequential stream per thread best: 4 rows read side by side were
// 10-15% slower on the 3B model's decoding), with 4 independent accumulators per row of x.
template <int M>
OMNI_TARGET_BF16 void dot_avx512bf16(const uint16_t* x, int64_t k, const uint16_t* w,
                                     float (&out)[M][1]) {
  __m512 acc[M][4];
  zero_lanes<M>(acc);
  int64_t i = 0;
  for (; i + 128 <= k; i += 128) {
    __m512bh wv[4];
    for (int u = 0; u < 4; ++u) wv[u] = (__m512bh)_mm512_loadu_si512(w + i + 32 * u);
    for (int m = 0; m < M; ++m)
      for (int u = 0; u < 4; ++u)
        acc[m][u] = _mm512_dpbf16_ps(acc[m][u],
                                     (__m512bh)_mm512_loadu_si512(x + m * k + i + 32 * u), wv[u]);
  }
  for (; i < k; i += 32) {
    // Zero-masked loads at the end: the lanes past it multiply 0 by 0.
    const __mmask32 mask = k - i >= 32 ? static_cast<__mmask32>(~0u)
                                       : static_cast<__mmask32>((uint64_t{1} << (k - i)) - 1);
    const __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(mask, w + i);
    for (int m = 0; m < M; ++m)
      acc[m][0] =
          _mm512_dpbf16_ps(acc[m][0], (__m512bh)_mm512_maskz_loadu_epi16(mask, x + m * k + i), wv);
  }
  sum_lanes<M>(acc, out);
}

// ---- AVX512F, fp32 weights: the same one-stream shape, 16 fp32 products per instruction.

template <int M>
OMNI_TARGET_AVX512F void dot_avx512f(const float* x, int64_t k, const float* w,
                                     float (&out)[M][1]) {
  __m512 acc[M][4];
  zero_lanes<M>(acc);
  int64_t i = 0;
  for (; i + 64 <= k; i += 64) {
    __m512 wv[4];
    for (int u = 0; u < 4; ++u) wv[u] = _mm512_loadu_ps(w + i + 16 * u);
    for (int m = 0; m < M; ++m)
      for (int u = 0; u < 4; ++u)
        acc[m][u] = _mm512_fmadd_ps(_mm512_loadu_ps(x + m * k + i + 16 * u), wv[u], acc[m][u]);
  }
  for (; i < k; i += 16) {
    const __mmask16 mask =
        k - i >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (k - i)) - 1);
    const __m512 wv = _mm512_maskz_loadu_ps(mask, w + i);
    for (int m = 0; m < M; ++m)
      acc[m][0] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, x + m * k + i), wv, acc[m][0]);
  }
  sum_lanes<M>(acc, out);
}

// ---- AVX2 + FMA: 8 weights per step, bf16 ones widened to fp32 (a 16-bit shift); x is given in
// fp32.
#define OMNI_TARGET_AVX2 __attribute__((target("avx2,fma")))

OMNI_TARGET_AVX2 inline __m256 load8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
OMNI_TARGET_AVX2 inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }

OMNI_TARGET_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int M, int R, class T>
OMNI_TARGET_AVX2 void dot_avx2(const float* x, int64_t k, const T* w, float (&out)[M][R]) {
  __m256 acc[M][R];
  for (int m = 0; m < M; ++m)
    for (int j = 0; j < R; ++j) acc[m][j] = _mm256_setzero_ps();
  const int64_t full = k & ~int64_t{7};
  for (int64_t i = 0; i < full; i += 8) {
    __m256 wv[R];
    for (int j = 0; j < R; ++j) wv[j] = load8(w + j * k + i);
    for (int m = 0; m < M; ++m) {
      const __m256 xv = _mm256_loadu_ps(x + m * k + i);
      for (int j = 0; j < R; ++j) acc[m][j] = _mm256_fmadd_ps(xv, wv[j], acc[m][j]);
    }
  }
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < R; ++j) {
      float s = hsum(acc[m][j]);
      for (int64_t i = full; i < k; ++i) s += x[m * k + i] * to_float(w[j * k + i]);
      out[m][j] = s;
    }
  }
}

// One (batch, key/value head): the G query rows against T keys of length D. q is fp32 [G, D];
// scores is scratch [G, T]; out is [G, D] in the cache's type.
template <class T>
OMNI_TARGET_AVX2 void attend_head(const float* q, int64_t g_count, const T* k, const T* v,
                                  int64_t t_len, int64_t d, float scale, float* scores, float* acc,
                                  T* out) {
  const int64_t full = d & ~int64_t{7};
  // Scores: each key row widened once and used by all G queries.
  for (int64_t t = 0; t < t_len; ++t) {
    const T* kt = k + t * d;
    for (int64_t g = 0; g < g_count; ++g) {
      const float* qg = q + g * d;
      __m256 s = _mm256_setzero_ps();
      for (int64_t i = 0; i < full; i += 8)
        s = _mm256_fmadd_ps(_mm256_loadu_ps(qg + i), load8(kt + i), s);
      float r = hsum(s);
      for (int64_t i = full; i < d; ++i) r += qg[i] * to_float(kt[i]);
      scores[g * t_len + t] = r * scale;
    }
  }
  // Softmax per query row, in fp32.
  for (int64_t g = 0; g < g_count; ++g) {
    float* sg = scores + g * t_len;
    float mx = sg[0];
    for (int64_t t = 1; t < t_len; ++t) mx = std::max(mx, sg[t]);
    float sum = 0;
    for (int64_t t = 0; t < t_len; ++t) {
      sg[t] = std::exp(sg[t] - mx);
      sum += sg[t];
    }
    const float inv = 1.0f / sum;
    for (int64_t t = 0; t < t_len; ++t) sg[t] *= inv;
  }
  // Weighted sum of the value rows, each widened once.
  std::fill(acc, acc + g_count * d, 0.0f);
  for (int64_t t = 0; t < t_len; ++t) {
    const T* vt = v + t * d;
    for (int64_t i = 0; i < full; i += 8) {
      const __m256 vv = load8(vt + i);
      for (int64_t g = 0; g < g_count; ++g) {
        float* a = acc + g * d + i;
        _mm256_storeu_ps(
            a, _mm256_fmadd_ps(_mm256_set1_ps(scores[g * t_len + t]), vv, _mm256_loadu_ps(a)));
      }
    }
    for (int64_t i = full; i < d; ++i)
      for (int64_t g = 0; g < g_count; ++g)
        acc[g * d + i] += scores[g * t_len + t] * to_float(vt[i]);
  }
  for (int64_t i = 0; i < g_count * d; ++i) out[i] = from_float<T>(acc[i]);
}

#endif  // OMNI_X86

// Rows [r0, r1) of W: blocks of R rows, then one at a time; dot(r, acc) fills acc[M][rows] for
// the rows from r.
template <int M, int R, class T, class Dot>
void row_blocks(int64_t r0, int64_t r1, const T* bias, int64_t n, T* y, Dot&& dot) {
  int64_t r = r0;
  for (; r + R <= r1; r += R) {
    float acc[M][R];
    dot(r, acc);
    store<M, R>(acc, bias, r, n, y);
  }
  for (; r < r1; ++r) {
    float acc[M][1];
    dot(r, acc);
    store<M, 1>(acc, bias, r, n, y);
  }
}

// The rows of W an accumulator array float[M][R] is for (R).
template <class Acc>
constexpr int kRowsOf = static_cast<int>(std::extent_v<std::remove_reference_t<Acc>, 1>);

// x is the input in its own type, xf the same rows in fp32 (the same pointer for fp32).
template <int M, class T>
void rows(GemvIsa isa, const T* x, const float* xf, int64_t k, const T* w, const T* bias, int64_t n,
          int64_t r0, int64_t r1, T* y) {
#if OMNI_X86
  if (isa == GemvIsa::kAvx512Bf16) {  // (AVX512-BF16 implies AVX512F)
    row_blocks<M, 1>(r0, r1, bias, n, y, [&](int64_t r, auto& acc) {
      if constexpr (std::is_same_v<T, float>)
        dot_avx512f<M>(xf, k, w + r * k, acc);
      else
        dot_avx512bf16<M>(x, k, w + r * k, acc);
    });
  } else {
    // 16 ymm registers: M x R accumulators + R rows of W + x.
    row_blocks<M, (M <= 2 ? 4 : 2)>(r0, r1, bias, n, y, [&](int64_t r, auto& acc) {
      dot_avx2<M, kRowsOf<decltype(acc)>>(xf, k, w + r * k, acc);
    });
  }
#else
  (void)isa, (void)x, (void)xf, (void)k, (void)w, (void)bias, (void)n, (void)r0, (void)r1, (void)y;
#endif
}

// Runs work(begin, end) over [0, n) on at most `threads` of libtorch's intra-op threads, each one
// contiguous run whose length is a multiple of `align` (but the last). Our own OpenMP region, not
// at::parallel_for: ATen's header template runs its body serially in a file compiled without
// -fopenmp (every file of this project but this one, for one shared precompiled header; see
// CMakeLists.txt), and a torch wheel brings its own OpenMP runtime whose thread setting ours
// would not see.
template <class F>
void split(int64_t n, int64_t threads, int64_t align, const F& work) {
  threads = std::min<int64_t>(threads, at::get_num_threads());
  if (threads <= 1 || at::in_parallel_region()) {
    work(0, n);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(static_cast <int>(threads))
  {
    const int64_t count = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t chunk = ((n + count - 1) / count + align - 1) / align * align;
    if (t * chunk < n) work(t * chunk, std::min(n, (t + 1) * chunk));
  }
#else
  work(0, n);
#endif
}

GemvIsa best_isa() {
#if OMNI_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl"))
    return GemvIsa::kAvx512Bf16;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return GemvIsa::kAvx2;
#endif
  return GemvIsa::kNone;
}

// What this CPU runs, asked once (bf16_gemv checks it on every call).
GemvIsa cpu_isa() {
  static const GemvIsa isa = best_isa();
  return isa;
}

GemvIsa chosen_isa() {
  const GemvIsa best = cpu_isa();
  const char* env = std::getenv("OMNI_GEMV");
  if (env == nullptr || *env == '\0') return best;
  const std::string want(env);
  if (want == "off") return GemvIsa::kNone;
  if (want == "avx2" && best != GemvIsa::kNone) return GemvIsa::kAvx2;
  return best;
}

}  // namespace

GemvIsa gemv_isa() {
  static const GemvIsa isa = chosen_isa();
  return isa;
}

std::string to_string(GemvIsa isa) {
  switch (isa) {
    case GemvIsa::kAvx2:
      return "avx2";
    case GemvIsa::kAvx512Bf16:
      return "avx512bf16";
    case GemvIsa::kNone:
      break;
  }
  return "off";
}

namespace {

// The element type's pointer into a tensor of scalar type `dtype` (bf16: its bits).
template <class T>
const T* elems(const at::Tensor& t) {
  return static_cast<const T*>(t.data_ptr());
}
template <class T>
T* elems_mut(at::Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

template <class T>
std::optional<at::Tensor> gemv(const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias, GemvIsa isa) {
  constexpr at::ScalarType kType = std::is_same_v<T, float> ? at::kFloat : at::kBFloat16;
  if (isa == GemvIsa::kNone || isa > cpu_isa()) return std::nullopt;
  if (!x.defined() || !weight.defined() || !x.device().is_cpu() || !weight.device().is_cpu() ||
      x.scalar_type() != kType || weight.scalar_type() != kType || weight.dim() != 2 ||
      !weight.is_contiguous() || x.dim() < 1)
    return std::nullopt;
  const int64_t k = weight.size(1), n = weight.size(0);
  if (x.size(-1) != k || k == 0 || n == 0) return std::nullopt;
  const int64_t m = x.numel() / k;
  if (m < 1 || m > kMaxRows) return std::nullopt;
  if (bias.defined() && (!bias.device().is_cpu() || bias.scalar_type() != kType ||
                         bias.dim() != 1 || bias.size(0) != n))
    return std::nullopt;
  if (c10::GradMode::is_enabled() &&
      (x.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad())))
    return std::nullopt;

  const at::Tensor xc = x.contiguous();
  const at::Tensor bc = bias.defined() ? bias.contiguous() : bias;
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = n;
  at::Tensor y = at::empty(shape, x.options());

  const T* xp = elems<T>(xc);
  const T* wp = elems<T>(weight);
  const T* bp = bc.defined() ? elems<T>(bc) : nullptr;
  T* yp = elems_mut<T>(y);
  // The fp32 kernels read x in fp32: bf16 rows are converted once (K x M floats).
  std::vector<float> converted;
  const float* xf = nullptr;
  if constexpr (std::is_same_v<T, float>) {
    xf = xp;
  } else if (isa == GemvIsa::kAvx2) {
    converted.resize(static_cast<size_t>(m * k));
    for (int64_t i = 0; i < m * k; ++i) converted[static_cast<size_t>(i)] = to_float(xp[i]);
    xf = converted.data();
  }
  auto work = [&](int64_t r0, int64_t r1) {
    switch (m) {
      case 1:
        rows<1>(isa, xp, xf, k, wp, bp, n, r0, r1, yp);
        break;
      case 2:
        rows<2>(isa, xp, xf, k, wp, bp, n, r0, r1, yp);
        break;
      case 3:
        rows<3>(isa, xp, xf, k, wp, bp, n, r0, r1, yp);
        break;
      default:
        rows<4>(isa, xp, xf, k, wp, bp, n, r0, r1, yp);
        break;
    }
  };
  // Each thread at least 32 K elements of W, in whole row blocks.
  const int64_t min_rows = std::max<int64_t>(kRowBlock, (int64_t{32} << 10) / k);
  split(n, (n + min_rows - 1) / min_rows, kRowBlock, work);
  return y;
}

template <class T>
std::optional<at::Tensor> decode_attention_as(const at::Tensor& q, const at::Tensor& k,
                                              const at::Tensor& v) {
#if OMNI_X86
  const int64_t b = q.size(0), kv = q.size(1), g = q.size(2), d = q.size(3), t_len = k.size(2);
  const at::Tensor qf = q.to(at::kFloat).contiguous();
  const at::Tensor kc = k.contiguous(), vc = v.contiguous();
  at::Tensor out = at::empty({b, kv, g, d}, q.options());
  const float* qp = qf.data_ptr<float>();
  const T* kp = elems<T>(kc);
  const T* vp = elems<T>(vc);
  T* op = elems_mut<T>(out);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const int64_t heads = b * kv;
  auto work = [&](int64_t h0, int64_t h1) {
    std::vector<float> scores(static_cast<size_t>(g * t_len)), acc(static_cast<size_t>(g * d));
    for (int64_t h = h0; h < h1; ++h)
      attend_head<T>(qp + h * g * d, g, kp + h * t_len * d, vp + h * t_len * d, t_len, d, scale,
                     scores.data(), acc.data(), op + h * g * d);
  };
  split(heads, heads, 1, work);
  return out;
#else
  (void)q, (void)k, (void)v;
  return std::nullopt;
#endif
}

}  // namespace

std::optional<at::Tensor> bf16_gemv(const at::Tensor& x, const at::Tensor& weight,
                                    const at::Tensor& bias, GemvIsa isa) {
  return gemv<uint16_t>(x, weight, bias, isa);
}

std::optional<at::Tensor> f32_gemv(const at::Tensor& x, const at::Tensor& weight,
                                   const at::Tensor& bias, GemvIsa isa) {
  return gemv<float>(x, weight, bias, isa);
}

std::optional<at::Tensor> decode_attention(const at::Tensor& q, const at::Tensor& k,
                                           const at::Tensor& v) {
  if (gemv_isa() == GemvIsa::kNone) return std::nullopt;
  for (const at::Tensor* t : {&q, &k, &v})
    if (!t->defined() || !t->device().is_cpu() || t->scalar_type() != q.scalar_type() ||
        t->dim() != 4)
      return std::nullopt;
  if (q.scalar_type() != at::kBFloat16 && q.scalar_type() != at::kFloat) return std::nullopt;
  const int64_t b = q.size(0), kv = q.size(1), g = q.size(2), d = q.size(3), t_len = k.size(2);
  if (k.size(0) != b || k.size(1) != kv || k.size(3) != d || !v.sizes().equals(k.sizes()) ||
      b * kv * g * d == 0 || t_len == 0)
    return std::nullopt;
  if (c10::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad()))
    return std::nullopt;
  return q.scalar_type() == at::kFloat ? decode_attention_as<float>(q, k, v)
                                       : decode_attention_as<uint16_t>(q, k, v);
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (auto y = bf16_gemv(x, weight, bias)) return *std::move(y);
  if (auto y = f32_gemv(x, weight, bias)) return *std::move(y);
  return at::linear(x, weight, bias);
}

}  // namespace omni
