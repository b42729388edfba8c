// FusionTransformer forward on CPU (fp32, width 512, 8 layers, sequence 1024 by default): tokens/s
// and achieved GFLOP/s as a fraction of the matrix-product peak this same program measures with a
// large at::mm, the two alternating (mm, forward, mm, forward, ...: the fraction is the median of
// the rounds' fractions, so a noisy neighbour slows both sides of a round alike). Prints one line
// per thread count and a JSON summary.
//   fusion_bench [--threads 1,2] [--seq 1024] [--dim 512] [--layers 8] [--reps 3] [--device cpu]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "fusion/transformer.h"
#include "modalities/common/attention.h"
#include "modalities/common/torch_compat.h"

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void sync(const at::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// Median seconds of `reps` runs after one warm-up.
template <class F>
double time_median(int reps, const at::Device& d, F&& f) {
  f();
  sync(d);
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const double s = now_s();
    f();
    sync(d);
    t.push_back(now_s() - s);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<int> parse_list(const char* s) {
  std::vector<int> out;
  std::string str(s), item;
  for (size_t i = 0; i <= str.size(); ++i) {
    if (i == str.size() || str[i] == ',') {
      if (!item.empty()) out.push_back(std::stoi(item));
      item.clear();
    } else {
      item.push_back(str[i]);
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> threads{1, 2};
  int64_t seq = 1024, dim = 512, layers = 8, heads = 8, kv_heads = 2, mm = 2048;
  int reps = 3;
  std::string device = "cpu";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--threads")
      threads = parse_list(argv[i + 1]);
    else if (a == "--seq")
      seq = std::stoll(argv[i + 1]);
    else if (a == "--dim")
      dim = std::stoll(argv[i + 1]);
    else if (a == "--layers")
      layers = std::stoll(argv[i + 1]);
    else if (a == "--heads")
      heads = std::stoll(argv[i + 1]);
    else if (a == "--kv-heads")
      kv_heads = std::stoll(argv[i + 1]);
    else if (a == "--mm")
      mm = std::stoll(argv[i + 1]);
    else if (a == "--reps")
      reps = std::stoi(argv[i + 1]);
    else if (a == "--device")
      device = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  const at::Device dev(device);
  torch::NoGradGuard no_grad;
  std::printf("libtorch default intra-op threads: %d; attention path: %s\n", at::get_num_threads(),
              omni::attention_uses_sdpa() ? "sdpa" : "explicit");

  auto o =
      omni::FusionTransformerOptions().vocab(272).dim(dim).layers(layers).heads(heads).kv_heads(
          kv_heads);
  torch::manual_seed(0);
  omni::FusionTransformer model(o);
  model->to(dev);
  model->eval();
  const int64_t hd = o.head_dim(), f = o.ffn_hidden(), L = seq, d = dim;
  // Useful FLOPs (2 per multiply-add): projections, the causal half of the score and value
  // products (query i sees i + 1 keys: L (L + 1) / 2 pairs), SwiGLU. Work a kernel spends on
  // masked pairs does not count (the explicit path computes whole query blocks up to the
  // diagonal; before 2026-11-29 it computed, and this bench counted, the whole L x L matrix).
  const double pairs = 0.5 * double(L) * double(L + 1);
  const double per_layer = 2.0 * L * d * (heads * hd) * 2       // q, o
                           + 2.0 * L * d * (kv_heads * hd) * 2  // k, v
                           + 2.0 * pairs * (heads * hd) * 2     // q k^T, p v
                           + 2.0 * L * d * f * 3;               // gate, up, down
  const double flops = per_layer * layers;
  at::Tensor x = at::randn({1, L, d}, at::TensorOptions().device(dev));
  at::Tensor pos =
      at::arange(L, at::TensorOptions().dtype(at::kLong).device(dev)).unsqueeze(0).repeat({3, 1});
  at::Tensor a = at::randn({mm, mm}, at::TensorOptions().device(dev));
  at::Tensor b = at::randn({mm, mm}, at::TensorOptions().device(dev));

  std::printf(
      "model: dim %lld, layers %lld, heads %lld/%lld kv, ffn %lld, seq %lld; %.2f GFLOP "
      "per forward\n",
      (long long)d, (long long)layers, (long long)heads, (long long)kv_heads, (long long)f,
      (long long)L, flops / 1e9);
  std::string json = "[";
  for (int nt : threads) {
    // libtorch's and OpenBLAS's pools both (OpenBLAS otherwise keeps one spinning thread per
    // core, and "1 thread" would measure two).
    if (dev.is_cpu()) omni::set_compute_threads(nt);
    std::vector<double> t_mms, t_fws, fractions;
    for (int r = 0; r < reps; ++r) {
      t_mms.push_back(time_median(1, dev, [&] { at::mm(a, b); }));
      t_fws.push_back(time_median(1, dev, [&] { model->forward(x, pos); }));
      fractions.push_back((flops / t_fws.back()) / (2.0 * mm * mm * mm / t_mms.back()));
    }
    const double t_mm = median(t_mms), t_fw = median(t_fws);
    const double peak = 2.0 * mm * mm * mm / t_mm / 1e9;
    const double achieved = flops / t_fw / 1e9;
    const double fraction = median(fractions);
    std::printf(
        "threads %d: mm %lldx%lld %.1f GFLOP/s | forward %.3f s, %.0f tokens/s, %.1f "
        "GFLOP/s = %.0f%% of mm peak (median of %d rounds' fractions; they spread %.0f..%.0f%%)\n",
        nt, (long long)mm, (long long)mm, peak, t_fw, L / t_fw, achieved, 100.0 * fraction, reps,
        100.0 * *std::min_element(fractions.begin(), fractions.end()),
        100.0 * *std::max_element(fractions.begin(), fractions.end()));
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "%s{\"threads\":%d,\"mm_gflops\":%.2f,\"forward_s\":%.4f,\"tokens_per_s\":%.1f,"
                  "\"gflops\":%.2f,\"fraction_of_peak\":%.3f}",
                  json.size() > 1 ? "," : "", nt, peak, t_fw, L / t_fw, achieved, fraction);
    json += buf;
  }
  json += "]";
  std::printf("%s\n", json.c_str());
  return 0;
}
