#include "modalities/common/weights.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <set>
#include <sstream>

#include "core/error.h"

namespace omni {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? "," : "") << s[i];
  o << "]";
  return o.str();
}

void load_weights(torch::nn::Module& module, const SafeTensorsFile& file,
                  const std::string& prefix) {
  std::vector<std::string> missing, mismatched;
  std::set<std::string> used;
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (destination, source)
  auto visit = [&](const std::string& name, const at::Tensor& dst) {
    const std::string key = prefix + name;
    if (!file.contains(key)) {
      missing.push_back(key);
      return;
    }
    used.insert(key);
    const auto shape = file.shape(key);
    if (at::IntArrayRef(shape) != dst.sizes()) {
      mismatched.push_back(key + " (file " + shape_str(shape) + ", module " +
                           shape_str(dst.sizes()) + ")");
      return;
    }
    copies.emplace_back(dst, file.get(key));
  };
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    visit(item.key(), item.value());
  for (const auto& item : module.named_buffers(/*recurse=*/true)) visit(item.key(), item.value());
  std::vector<std::string> unexpected;
  for (const auto& n : file.names())
    if (n.compare(0, prefix.size(), prefix) == 0 && !used.count(n)) unexpected.push_back(n);

  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string msg = "weights file '" + file.path() + "' does not match the module" +
                      (prefix.empty() ? "" : " (prefix '" + prefix + "')") + ":";
    if (!missing.empty()) msg += " missing keys: " + join(missing) + ";";
    if (!unexpected.empty()) msg += " unexpected keys: " + join(unexpected) + ";";
    if (!mismatched.empty()) msg += " shape mismatches: " + join(mismatched) + ";";
    msg.pop_back();
    throw InputError(msg);
  }
  // Copy only after everything checked, so a bad file leaves the module untouched.
  at::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) {
    try {
      dst.copy_(src);  // converts dtype/device as needed
    } catch (const c10::Error& e) {
      throw InputError("weights file '" + file.path() +
                       "': cannot copy a tensor into the module: " + e.what_without_backtrace());
    }
  }
}

TensorMap module_tensors(const torch::nn::Module& module, const std::string& prefix) {
  TensorMap out;
  for (const auto& item : module.named_parameters(true)) out[prefix + item.key()] = item.value();
  for (const auto& item : module.named_buffers(true)) out[prefix + item.key()] = item.value();
  return out;
}

}  // namespace omni
