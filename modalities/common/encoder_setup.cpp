#include "modalities/common/encoder_setup.h"

#include <torch/cuda.h>
#include <torch/nn/module.h>
#include <torch/utils.h>

#include <mutex>

#include "core/error.h"
#include "modalities/common/safetensors.h"
#include "modalities/common/weights.h"

namespace omni {

DeviceSpec parse_device(const std::string& device, const std::string& dtype,
                        const std::string& where) {
  DeviceSpec s;
  try {
    s.device = c10::Device(device);
  } catch (const std::exception&) {
    throw ConfigError(where + ": device '" + device + "' is not cpu, cuda or cuda:N");
  }
  if (!s.device.is_cpu() && !s.device.is_cuda())
    throw ConfigError(where + ": device '" + device + "' is not cpu, cuda or cuda:N");
  if (s.device.is_cuda() && !torch::cuda::is_available())
    throw ConfigError(where + ": device '" + device +
                      "' requested but this libtorch has no usable CUDA device");
  if (dtype == "fp32") {
    s.dtype = c10::kFloat;
  } else if (dtype == "bf16" || dtype == "fp16") {
    if (!s.device.is_cuda())
      throw ConfigError(where + ": dtype " + dtype + " needs a CUDA device (device is '" + device +
                        "')");
    s.dtype = dtype == "bf16" ? c10::kBFloat16 : c10::kHalf;
  } else {
    throw ConfigError(where + ": dtype '" + dtype + "' is not fp32, bf16 or fp16");
  }
  return s;
}

void with_seed(int64_t seed, const std::function<void()>& construct) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  torch::manual_seed(static_cast<uint64_t>(seed));
  construct();
}

void load_and_place(torch::nn::Module& module, const std::string& weights,
                    const std::string& prefix, const DeviceSpec& spec, const std::string& where) {
  if (!weights.empty()) {
    try {
      auto file = SafeTensorsFile::open(weights);
      load_weights(module, *file, prefix);
    } catch (const Error& e) {
      throw InputError(where + ": loading weights from '" + weights + "': " + e.what());
    } catch (const std::exception& e) {
      throw InputError(where + ": loading weights from '" + weights + "': " + e.what());
    }
  }
  module.to(spec.device, spec.dtype);
  module.eval();
}

}  // namespace omni
