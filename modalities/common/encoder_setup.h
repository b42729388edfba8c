// Shared setup of libtorch encoder nodes: device/dtype parameters, seeded random init, loading
// safetensors weights with the node's name in every error.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <functional>
#include <string>

#include "core/contract.h"

namespace torch::nn {
class Module;
}

namespace omni {

// The weights, random-init and placement parameters every encoder node declares (ImageEncoder,
// AudioEncoderNode inherit them), declared once.
struct EncoderParams {
  static constexpr Param<std::string> kWeights{"weights", "",
                                               "safetensors file; empty = random init from `seed`"};
  static constexpr Param<std::string> kPrefix{
      "prefix", "", "name prefix of this encoder's tensors in the weights file"};
  static constexpr Param<int64_t> kSeed{"seed", 0, "random init seed when no weights are given"};
  static constexpr Param<std::string> kDevice{"device", "cpu", "cpu, cuda or cuda:N"};
  static constexpr Param<std::string> kDtype{"dtype", "fp32", "fp32; bf16/fp16 on CUDA"};
};

struct DeviceSpec {
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType dtype = c10::kFloat;
};

// device: "cpu", "cuda", "cuda:N"; dtype: "fp32", "bf16", "fp16" (reduced precision needs CUDA).
// Throws ConfigError naming the parameter ("param 'device': ...", after `where` unless it is
// empty) for unknown values or a missing CUDA device. Nodes pass an empty `where`: the runtime's
// prefix names them. The texts are parsed by torch_compat's parse_device / parse_dtype (shared
// with the fusion nodes).
DeviceSpec parse_device(const std::string& device, const std::string& dtype,
                        const std::string& where);

// Runs `construct` (a module's random init) with random numbers from a generator seeded to `seed`:
// the same weights as torch::manual_seed(seed) then construct, but the process-wide generator's
// state is restored afterwards, so running a graph leaves the caller's torch::randn sequence alone.
// Serialised, so two nodes opening at once still get reproducible weights.
void with_seed(int64_t seed, const std::function<void()>& construct);

// Loads `weights` (a safetensors path; empty = keep the random init) into the module under
// `prefix`, then moves it to the device/dtype and sets eval mode. Errors (InputError) name the
// file, after `where` when given.
void load_and_place(torch::nn::Module& module, const std::string& weights,
                    const std::string& prefix, const DeviceSpec& spec,
                    const std::string& where = {});

}  // namespace omni
