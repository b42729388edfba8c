// Image graph nodes: ImagePreprocess (Frame -> [3, H, W] tensor, needs OMNI_WITH_MEDIA) and
// ImageEncoder (ViT; preprocessed Tensor or Frame in, TokenChunk out).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/contract.h"
#include "core/node.h"
#include "modalities/common/device_stager.h"
#include "modalities/common/encoder_setup.h"
#include "modalities/common/token_chunk.h"
#include "modalities/image/preprocess.h"
#include "modalities/image/vit.h"

namespace omni {

#if OMNI_WITH_MEDIA
class ImagePreprocess : public Node {
 public:
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

 private:
  PreprocessOptions options_;
};
#endif

// Reads preprocessing params (mode, size, factor, min_pixels, max_pixels) declared by
// add_preprocess_params(); `size_param` names the side parameter ("size" or "image_size").
PreprocessOptions preprocess_options_from(const Params& p, const std::string& size_param);
Contract& add_preprocess_params(Contract& c, bool with_size);

class ImageEncoder : public Node {
 public:
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;
  void close(Context& ctx) override;  // flushes a partial batch

  // Tokens this node emits for a preprocessed height x width image (the sequencer's function).
  int64_t image_tokens(int h, int w) const { return vit_->image_tokens(h, w); }
  ViT& model() { return vit_; }

 private:
  struct Item {
    at::Tensor image;  // [3, H, W] float CPU or device
    Timestamp ts;
  };
  void flush(Context& ctx);

  ViT vit_{nullptr};
  DeviceSpec spec_;
  std::unique_ptr<DeviceStager> stager_;  // CUDA: pinned buffers + side-stream copies
  Modality modality_ = Modality::kImage;
  PreprocessOptions pre_;
  int64_t batch_ = 1;
  std::string stream_;
  std::vector<Item> pending_;
};

}  // namespace omni
