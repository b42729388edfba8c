#include "modalities/common/torch_compat.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace omni {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

bool built_with_cuda() {
#ifdef OMNI_CUDA
  return true;
#else
  return false;
#endif
}

bool cuda_available() {
  // torch::cuda::is_available() is false (and never throws) without a driver or GPU.
  return torch::cuda::is_available();
}

int cuda_device_count() {
  return cuda_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
}

std::string libtorch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

at::Device parse_device(const std::string& text, const std::string& where) {
  std::string t = lower(text);
  if (t == "gpu") t = "cuda";
  if (t.rfind("gpu:", 0) == 0) t = "cuda:" + t.substr(4);
  if (t != "cpu" && t != "cuda" && t.rfind("cuda:", 0) != 0)
    throw ConfigError(where + ": unknown device '" + text + "' (expected cpu, cuda or cuda:N)");
  at::Device device(at::kCPU);
  try {
    device = at::Device(t);
  } catch (const std::exception& e) {
    throw ConfigError(where + ": bad device '" + text +
                      "' (expected cpu, cuda or cuda:N): " + e.what());
  }
  if (device.is_cuda()) {
    const int n = cuda_device_count();
    if (n == 0)
      throw ConfigError(
          where + ": device '" + text + "' asked for, but no CUDA device is " +
          "available (libtorch " + libtorch_version() +
          (built_with_cuda() ? ", CUDA build" : ", CPU-only build: see docs/CUDA.md") + ")");
    if (device.has_index() && device.index() >= n)
      throw ConfigError(where + ": device '" + text + "' does not exist (" + std::to_string(n) +
                        " CUDA device(s) visible)");
  }
  return device;
}

at::ScalarType parse_dtype(const std::string& text, const at::Device& device,
                           const std::string& where) {
  const std::string t = lower(text);
  at::ScalarType type;
  if (t == "fp32" || t == "float32" || t == "float") {
    type = at::kFloat;
  } else if (t == "bf16" || t == "bfloat16") {
    type = at::kBFloat16;
  } else if (t == "fp16" || t == "float16" || t == "half") {
    type = at::kHalf;
  } else {
    throw ConfigError(where + ": unknown dtype '" + text + "' (expected fp32, bf16 or fp16)");
  }
  if (type != at::kFloat && !device.is_cuda())
    throw ConfigError(where + ": dtype '" + text + "' needs a CUDA device (device is " +
                      device.str() + "); the CPU path runs fp32");
  return type;
}

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "fp32";
    case at::kBFloat16:
      return "bf16";
    case at::kHalf:
      return "fp16";
    default:
      return c10::toString(t);
  }
}

void set_blas_threads(int n) {
  if (n <= 0) return;
  // Looked up at run time: Debian's libtorch links the system BLAS (libblas.so.3, chosen by
  // update-alternatives), which may or may not be OpenBLAS.
  using SetThreads = void (*)(int);
  if (auto* f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
}

void set_compute_threads(int n) {
  if (n <= 0) return;
  at::set_num_threads(n);
  set_blas_threads(n);
}

void device_synchronize(const at::Device& device) {
  if (!device.is_cuda()) return;
  torch::cuda::synchronize(device.has_index() ? device.index() : -1);
}

}  // namespace omni
