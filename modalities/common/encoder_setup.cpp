#include "modalities/common/encoder_setup.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/cuda.h>
#include <torch/nn/module.h>
#include <torch/utils.h>

#include <mutex>

#include "core/error.h"
#include "modalities/common/safetensors.h"
#include "modalities/common/torch_compat.h"
#include "modalities/common/weights.h"

namespace omni {

namespace {
std::string with_where(const std::string& where, const std::string& what) {
  return where.empty() ? what : where + " " + what;
}
}  // namespace

DeviceSpec parse_device(const std::string& device, const std::string& dtype,
                        const std::string& where) {
  DeviceSpec s;
  // torch_compat: the one parser of device/dtype text
  s.device = parse_device(device, with_where(where, "param 'device'"));
  s.dtype = parse_dtype(dtype, s.device, with_where(where, "param 'dtype'"));
  return s;
}

void with_seed(int64_t seed, const std::function<void()>& construct) {
  // torch::nn modules initialise their parameters from the default CPU generator and take no
  // generator argument. So the construction gets a generator of its own by borrowing the default
  // one: its state is saved, it is seeded (as torch::manual_seed would), and the saved state is put
  // back afterwards, even if `construct` throws. The weights are those of manual_seed(seed) +
  // construct, and the caller's random sequence (torch::randn, ...) continues as if nothing ran.
  static std::mutex mu;  // one seeded construction at a time
  std::lock_guard<std::mutex> lock(mu);
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  at::Tensor saved;
  {
    std::lock_guard<std::mutex> g(gen.mutex());
    saved = gen.get_state();
    gen.set_current_seed(static_cast<uint64_t>(seed));
  }
  struct Restore {
    at::Generator& gen;
    const at::Tensor& state;
    ~Restore() {
      std::lock_guard<std::mutex> g(gen.mutex());
      gen.set_state(state);
    }
  } restore{gen, saved};
  construct();
}

void load_and_place(torch::nn::Module& module, const std::string& weights,
                    const std::string& prefix, const DeviceSpec& spec, const std::string& where) {
  if (!weights.empty()) {
    try {
      auto file = SafeTensorsFile::open(weights);
      load_weights(module, *file, prefix);
    } catch (const std::exception& e) {
      throw InputError((where.empty() ? "" : where + ": ") + "loading weights from '" + weights +
                       "': " + e.what());
    }
  }
  module.to(spec.device, spec.dtype);
  module.eval();
}

}  // namespace omni
