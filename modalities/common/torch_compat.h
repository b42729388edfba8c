// The libtorch version/device shim: device and dtype parsing, CUDA availability and
// synchronisation that compile against Debian's libtorch 1.13 (CPU) and PyTorch 2.x (CUDA) alike.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace omni {

// True when this build was configured with OMNI_CUDA=ON (CUDA libtorch, CUDA code paths).
bool built_with_cuda();
// True when libtorch can run on a CUDA device now (CUDA libtorch + driver + GPU).
bool cuda_available();
// Number of visible CUDA devices (0 without a driver or GPU).
int cuda_device_count();
// "2.12.0", from the headers we compiled against.
std::string libtorch_version();

// Parses a device parameter: "cpu", "cuda", "cuda:N" (also "gpu" for "cuda"). Throws ConfigError
// naming `where` (e.g. "node 'enc' param 'device'") when the text is wrong or when a CUDA device
// is asked for and none is available.
at::Device parse_device(const std::string& text, const std::string& where);
// Parses a dtype parameter: "fp32"/"float32"/"float", "bf16"/"bfloat16", "fp16"/"float16"/"half".
// Half precisions on the CPU are refused (ConfigError): libtorch's CPU kernels for them are slow
// or missing, and omnipipe's CPU flavour is fp32.
at::ScalarType parse_dtype(const std::string& text, const at::Device& device,
                           const std::string& where);
// "fp32", "bf16", "fp16" (or libtorch's name for other types).
std::string dtype_name(at::ScalarType t);

// Waits for all work queued on `device` (no-op on the CPU). For benchmarks and tests; the
// pipeline itself synchronises through streams and events.
void device_synchronize(const at::Device& device);

}  // namespace omni
