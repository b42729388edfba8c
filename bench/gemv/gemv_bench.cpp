// Decoding's matrix-vector products: one token through the projections of `--layers` decoder
// layers of Qwen2.5-Omni-3B's language model (q, k, v with bias; o; gate, up; down: hidden 2048,
// intermediate 11008, bf16 weights, 154 MB per layer, 8 layers by default so the weights stream
// from memory, not from the caches), omnipipe's kernel (modalities/common/gemv.h) against
// libtorch's at::linear, alternating (torch, ours, torch, ours, ...) for `--reps` rounds. Reports
// the weight bytes streamed per second of each and the median of the rounds' ratios with its range,
// and checks that the two agree within one bf16 rounding. Prints a JSON summary as its last line.
// --dtype fp32: the same with fp32 weights (twice the bytes; omnipipe's fp32 kernel).
// --mapped: the weights are written to a scratch file and used from its read-only mapping, as
// omnipipe uses a checkpoint's weights (page-cache pages, 4 KB each), instead of from anonymous
// memory (which the kernel may back with 2 MB pages).
//   gemv_bench [--threads 2] [--layers 8] [--reps 9] [--rows 1] [--mapped DIR] [--dtype bf16]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <torch/utils.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "modalities/common/gemv.h"
#include "modalities/common/torch_compat.h"

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Proj {
  at::Tensor w, b;
};

}  // namespace

int main(int argc, char** argv) {
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int layers = 8, reps = 9, rows = 1;
  std::string mapped;
  bool fp32 = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (a == "--threads")
      threads = v;
    else if (a == "--layers")
      layers = v;
    else if (a == "--reps")
      reps = v;
    else if (a == "--rows")
      rows = v;
    else if (a == "--mapped")
      mapped = argv[i + 1];
    else if (a == "--dtype" &&
             (std::string(argv[i + 1]) == "bf16" || std::string(argv[i + 1]) == "fp32"))
      fp32 = std::string(argv[i + 1]) == "fp32";
    else {
      std::fprintf(
          stderr,
          "usage: gemv_bench [--threads N] [--layers N] [--reps N] [--rows 1-4] [--mapped DIR] "
          "[--dtype bf16|fp32]\n");
      return 2;
    }
  }
  if (threads < 1 || layers < 1 || reps < 1 || rows < 1 || rows > 4) {
    std::fprintf(stderr, "gemv_bench: --threads, --layers, --reps >= 1; --rows 1-4\n");
    return 2;
  }
  const omni::GemvIsa isa = omni::gemv_isa();
  if (isa == omni::GemvIsa::kNone) {
    std::fprintf(stderr, "gemv_bench: no gemv kernel on this CPU (or OMNI_GEMV=off)\n");
    return 1;
  }
  omni::set_compute_threads(threads);
  at::NoGradGuard no_grad;
  torch::manual_seed(1);

  const at::ScalarType dtype = fp32 ? at::kFloat : at::kBFloat16;
  const int64_t elem = fp32 ? 4 : 2;
  const int64_t d = 2048, ffn = 11008, kv = 256;
  std::vector<Proj> projs;
  double bytes = 0;
  for (int l = 0; l < layers; ++l) {
    for (const auto& [n, k, bias] :
         std::vector<std::tuple<int64_t, int64_t, bool>>{{d, d, true},
                                                         {kv, d, true},
                                                         {kv, d, true},
                                                         {d, d, false},
                                                         {ffn, d, false},
                                                         {ffn, d, false},
                                                         {d, ffn, false}}) {
      Proj p{at::randn({n, k}).mul_(0.02).to(dtype),
             bias ? at::randn({n}).to(dtype) : at::Tensor()};
      bytes += static_cast<double>(p.w.numel()) * elem;
      projs.push_back(std::move(p));
    }
  }
  if (!mapped.empty()) {
    // One file of all the weights, mapped back; each weight becomes a view of the mapping (the
    // mapping lives as long as the program).
    const std::string path = mapped + "/gemv_bench_weights.bin";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
      std::perror(path.c_str());
      return 1;
    }
    for (const Proj& p : projs) {
      const auto* src = static_cast<const char*>(p.w.data_ptr());
      size_t left = static_cast<size_t>(p.w.numel()) * elem;
      while (left > 0) {
        const ssize_t put = ::write(fd, src, left);
        if (put <= 0) {
          std::perror(path.c_str());
          return 1;
        }
        src += put;
        left -= static_cast<size_t>(put);
      }
    }
    void* base = ::mmap(nullptr, static_cast<size_t>(bytes), PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    ::unlink(path.c_str());
    if (base == MAP_FAILED) {
      std::perror("mmap");
      return 1;
    }
    auto* at_byte = static_cast<char*>(base);
    for (Proj& p : projs) {
      const int64_t nbytes = p.w.numel() * elem;
      p.w = at::from_blob(at_byte, p.w.sizes(), at::TensorOptions().dtype(dtype));
      at_byte += nbytes;
    }
  }
  const at::Tensor xd = at::randn({rows, d}).to(dtype);
  const at::Tensor xf = at::randn({rows, ffn}).to(dtype);
  auto gemv = [&](const at::Tensor& x, const Proj& p) {
    return fp32 ? omni::f32_gemv(x, p.w, p.b, isa) : omni::bf16_gemv(x, p.w, p.b, isa);
  };
  auto input = [&](const Proj& p) { return p.w.size(1) == d ? xd : xf; };

  // One pass: every projection once; returns seconds.
  auto pass = [&](bool ours) {
    const double t = now_s();
    for (const Proj& p : projs) {
      at::Tensor y = ours ? *gemv(input(p), p) : at::linear(input(p), p.w, p.b);
      (void)y;
    }
    return now_s() - t;
  };

  // Agreement on the first layer.
  double worst = 0;
  for (int i = 0; i < 7; ++i) {
    const Proj& p = projs[static_cast<size_t>(i)];
    const at::Tensor a = at::linear(input(p), p.w, p.b).to(at::kFloat);
    const at::Tensor b = gemv(input(p), p)->to(at::kFloat);
    worst = std::max(worst, ((a - b).abs() / (a.abs() + 1e-2)).max().item<double>());
  }

  pass(false);
  pass(true);
  std::vector<double> t_torch, t_ours, ratio;
  for (int r = 0; r < reps; ++r) {
    t_torch.push_back(pass(false));
    t_ours.push_back(pass(true));
    ratio.push_back(t_torch.back() / t_ours.back());
  }
  const double gb_torch = bytes / median(t_torch) / 1e9, gb_ours = bytes / median(t_ours) / 1e9;
  const double lo = *std::min_element(ratio.begin(), ratio.end());
  const double hi = *std::max_element(ratio.begin(), ratio.end());
  std::printf(
      "%s decoding products, %d layers (%.2f GB of weights, %s), %d row(s) of x, "
      "%d threads, %d alternating rounds\n",
      fp32 ? "fp32" : "bf16", layers, bytes / 1e9,
      mapped.empty() ? "anonymous memory" : "mapped file", rows, threads, reps);
  std::printf("  at::linear (libtorch %s): %.1f GB/s (%.1f ms per pass)\n",
              omni::libtorch_version().c_str(), gb_torch, median(t_torch) * 1e3);
  std::printf("  omnipipe %s kernel: %.1f GB/s (%.1f ms per pass)\n", omni::to_string(isa).c_str(),
              gb_ours, median(t_ours) * 1e3);
  std::printf("  paired ratio %.3f (rounds %.3f-%.3f); largest relative difference %.2g\n",
              median(ratio), lo, hi, worst);
  std::printf(
      "{\"layers\": %d, \"weights_gb\": %.4f, \"rows\": %d, \"threads\": %d, \"reps\": %d, "
      "\"mapped\": %s, \"dtype\": \"%s\", \"isa\": \"%s\", \"torch_gb_per_s\": %.3f, "
      "\"ours_gb_per_s\": %.3f, "
      "\"ratio_vs_torch\": %.4f, \"ratio_min\": %.4f, \"ratio_max\": %.4f, "
      "\"max_relative_difference\": %.3g}\n",
      layers, bytes / 1e9, rows, threads, reps, mapped.empty() ? "false" : "true",
      fp32 ? "fp32" : "bf16", omni::to_string(isa).c_str(), gb_torch, gb_ours, median(ratio), lo,
      hi, worst);
  return 0;
}
