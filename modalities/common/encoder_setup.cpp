#include "modalities/common/encoder_setup.h"

#include <torch/cuda.h>
#include <torch/nn/module.h>
#include <torch/utils.h>

#include <mutex>

#include "core/error.h"
#include "modalities/common/safetensors.h"
#include "modalities/common/torch_compat.h"
#include "modalities/common/weights.h"

namespace omni {

DeviceSpec parse_device(const std::string& device, const std::string& dtype,
                        const std::string& where) {
  DeviceSpec s;
  s.device = parse_device(device, where);  // torch_compat: the one parser of device/dtype text
  s.dtype = parse_dtype(dtype, s.device, where);
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
