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

// Sets libtorch's intra-op threads and the thread pool of the BLAS behind it together (n > 0;
// n <= 0 leaves both alone). libtorch 1.13 does not pass its setting on to OpenBLAS, whose pool
// (one thread per core, spinning in sched_yield between calls) then competes with the caller's
// own threads: with 2 graph workers on 2 cores the demo's batch graph ran 1.6x slower, and a
// single-threaded fusion forward 1.3x slower, until OpenBLAS was held to n threads too.
void set_compute_threads(int n);
// Only the BLAS's pool (OpenBLAS; no-op for another BLAS), n > 0. Where libtorch's big products
// run in oneDNN on its OpenMP threads (bf16), one BLAS thread leaves those the cores.
void set_blas_threads(int n);

// Waits for all work queued on `device` (no-op on the CPU). For benchmarks and tests; the
// pipeline itself synchronises through streams and events.
void device_synchronize(const at::Device& device);

}  // namespace omni
