// Shared by the Qwen2.5-Omni language model and generation tests: the tiny checkpoint, the
// language model loaded from it, and transformers' references
// (scripts/fixtures/make_qwen_text_refs.py).
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "modalities/common/checkpoint.h"
#include "modalities/common/safetensors.h"
#include "models/qwen2_5_omni/text_model.h"

namespace omni::qwen::testing {

inline const std::filesystem::path kCheckpointDir =
    std::filesystem::path(OMNI_SOURCE_DIR) / "tests/fixtures/hf/qwen2_5_omni_tiny";

inline std::shared_ptr<Checkpoint> checkpoint() {
  static const std::shared_ptr<Checkpoint> c = Checkpoint::open(kCheckpointDir.string());
  return c;
}

inline const SafeTensorsFile& refs() {
  static const std::shared_ptr<SafeTensorsFile> f =
      SafeTensorsFile::open((std::filesystem::path(OMNI_SOURCE_DIR) /
                             "tests/fixtures/hf/qwen2_5_omni_text_refs.safetensors")
                                .string());
  return *f;
}

inline at::Tensor fx(const std::string& name) { return refs().get(name).clone(); }

// A fresh fp32 language model loaded from the tiny checkpoint (every tensor, nothing left over).
inline TextModel load_text_model() {
  auto ckpt = checkpoint();
  TextModel m(TextModelOptions::from_config(*ckpt->tower_config("text")));
  const LoadReport rep = ckpt->load_into(*m, {"text."});
  EXPECT_EQ(rep.tensors, int64_t(m->parameters().size()));
  m->eval();
  return m;
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1e30;
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace omni::qwen::testing
