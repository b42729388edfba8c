// GPU benchmarks (issue 8): bf16 matrix-product ceiling, attention (SDPA), the fusion transformer
// forward at width 1024 / 16 layers / seq 2048 / batch 8, and encoder throughput. Timed with
// CUDA events on the current stream (never wall clocks), after warm-up iterations. Prints a
// table and, with --json FILE, one JSON object (scripts/gpu-check folds it into its summary).
//
// Usage: gpu_bench [--json FILE] [--quick] [--only matmul,attention,fusion,image,audio]
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <set>
#include <sstream>
#include <string>

#include "modalities/common/attention.h"
#include "modalities/common/torch_compat.h"

namespace omni {
namespace {

using nlohmann::json;

// Dense (no sparsity) bf16 tensor-core peak in TFLOP/s, from the vendor data sheets. The SXM
// parts (H100 SXM, H200) share the Hopper bf16 peak; PCIe/NVL boards are clocked lower.
double bf16_peak_tflops(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H100") && has("PCIe")) return 756.0;
  if (has("H100") && has("NVL")) return 835.0;
  if (has("H100") || has("H200") || has("H800") || has("GH200")) return 989.0;
  if (has("A100")) return 312.0;
  if (has("L40S")) return 362.0;
  if (has("A10G") || has("A10")) return 125.0;
  if (has("L4")) return 121.0;
  return 0.0;  // unknown: only the measured matmul ceiling is reported
}

// Mean milliseconds per call of `fn`, measured with CUDA events around `iters` calls queued
// back to back on the current stream, after `warmup` calls.
double time_ms(const std::function<void()>& fn, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) fn();
  at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
  const auto stream = at::cuda::getCurrentCUDAStream();
  start.record(stream);
  for (int i = 0; i < iters; ++i) fn();
  stop.record(stream);
  stop.synchronize();
  return static_cast<double>(start.elapsed_time(stop)) / iters;
}

struct Options {
  std::string json_path;
  bool quick = false;
  std::set<std::string> only;
  bool want(const std::string& s) const { return only.empty() || only.count(s) > 0; }
};

json bench_matmul(const Options& o) {
  const int64_t n = o.quick ? 4096 : 8192;
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  at::Tensor a = at::randn({n, n}, opts), b = at::randn({n, n}, opts), c;
  const double ms = time_ms([&] { c = at::matmul(a, b); }, 3, o.quick ? 5 : 10);
  const double tflops = 2.0 * n * n * n / (ms * 1e-3) / 1e12;
  std::printf("matmul bf16 %ldx%ldx%ld: %.3f ms, %.1f TFLOP/s\n", long(n), long(n), long(n), ms,
              tflops);
  return {{"n", n}, {"ms", ms}, {"tflops", tflops}};
}

json bench_attention(const Options& o) {
  const int64_t b = 8, h = 16, l = o.quick ? 1024 : 2048, d = 64;
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  at::Tensor q = at::randn({b, h, l, d}, opts), k = at::randn({b, h, l, d}, opts),
             v = at::randn({b, h, l, d}, opts), out;
  const double ms = time_ms([&] { out = attention(q, k, v, {}, /*causal=*/true); }, 3, 10);
  // QK^T and PV, each 2*L*L*D per head, halved by the causal mask.
  const double flops = 4.0 * b * h * l * l * d * 0.5;
  const double tflops = flops / (ms * 1e-3) / 1e12;
  std::printf("attention bf16 causal B%ld H%ld L%ld D%ld (sdpa=%d): %.3f ms, %.1f TFLOP/s\n",
              long(b), long(h), long(l), long(d), int(attention_uses_sdpa()), ms, tflops);
  return {{"batch", b},
          {"heads", h},
          {"seq", l},
          {"head_dim", d},
          {"ms", ms},
          {"tflops", tflops},
          {"sdpa", attention_uses_sdpa()}};
}

}  // namespace
}  // namespace omni

#include "bench/gpu/gpu_bench_models.inc"

int main(int argc, char** argv) {
  using namespace omni;
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) {
      o.json_path = argv[++i];
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--only" && i + 1 < argc) {
      std::stringstream ss(argv[++i]);
      for (std::string s; std::getline(ss, s, ',');) o.only.insert(s);
    } else {
      std::fprintf(stderr, "usage: gpu_bench [--json FILE] [--quick] [--only a,b,...]\n");
      return 2;
    }
  }
  json out;
  out["libtorch"] = libtorch_version();
  if (!cuda_available()) {
    std::printf("gpu_bench: no CUDA device available; nothing to measure\n");
    out["gpu"] = nullptr;
  } else {
    try {
      const auto* prop = at::cuda::getCurrentDeviceProperties();
      const std::string name = prop->name;
      const double peak = bf16_peak_tflops(name);
      std::printf("gpu_bench on %s (%d SMs), bf16 dense peak %.0f TFLOP/s (data sheet)\n",
                  name.c_str(), prop->multiProcessorCount, peak);
      out["gpu"] = name;
      out["sms"] = prop->multiProcessorCount;
      out["bf16_peak_tflops"] = peak;
      double ceiling = 0.0;
      if (o.want("matmul")) {
        out["matmul"] = bench_matmul(o);
        ceiling = out["matmul"]["tflops"].get<double>();
      }
      if (o.want("attention")) out["attention"] = bench_attention(o);
      bench_models(o, peak, ceiling, out);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "gpu_bench: %s\n", e.what());
      out["error"] = e.what();
      if (!o.json_path.empty()) std::ofstream(o.json_path) << out.dump(1) << "\n";
      return 1;
    }
  }
  if (!o.json_path.empty()) std::ofstream(o.json_path) << out.dump(1) << "\n";
  return 0;
}
