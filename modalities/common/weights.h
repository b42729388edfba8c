// Loading safetensors weights into libtorch modules with every name and shape checked.
#pragma once

#include <torch/nn/module.h>

#include <string>

#include "modalities/common/safetensors.h"

namespace omni {

// Copies tensors named `prefix + parameter/buffer name` into the module. Throws InputError that
// lists every missing key, unexpected key (under `prefix`) and shape mismatch, with the file name.
void load_weights(torch::nn::Module& module, const SafeTensorsFile& file,
                  const std::string& prefix = "");
// The module's parameters and buffers by name (with `prefix`), for save_safetensors.
TensorMap module_tensors(const torch::nn::Module& module, const std::string& prefix = "");
// A shape as "[2,3]" (for error messages).
std::string shape_str(at::IntArrayRef s);

}  // namespace omni
