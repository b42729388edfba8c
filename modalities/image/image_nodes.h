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

struct Frame;  // modalities/media/frame.h

// The preprocessing parameters ImagePreprocess and ImageEncoder share (the side parameter is each
// node's own: `size` / `image_size`).
struct PreprocessParams {
  static constexpr Param<std::string> kMode{
      "mode", "siglip",
      "preprocessing: clip (shortest side + centre crop), siglip (direct resize, mean=std=0.5) or "
      "qwen (smart_resize)"};
  static constexpr Param<int64_t> kFactor{"factor", 28, "qwen: output sides are multiples of this"};
  static constexpr Param<int64_t> kMinPixels{"min_pixels", 56 * 56,
                                             "qwen: lower bound on output pixels"};
  static constexpr Param<int64_t> kMaxPixels{"max_pixels", 28 * 28 * 1280,
                                             "qwen: upper bound on output pixels"};
};
// Declares mode, then `size` when given, then factor, min_pixels and max_pixels.
Contract& add_preprocess_params(Contract& c, const Param<int64_t>* size);
// Reads them back (ConfigError for inconsistent values); `size` is the side parameter.
PreprocessOptions preprocess_options_from(const Context& ctx, const Param<int64_t>& size);

#if OMNI_WITH_MEDIA
class ImagePreprocess : public Node {
 public:
  static constexpr Input<Frame> kIn{"in", "decoded RGB frames"};
  static constexpr Output<at::Tensor> kOut{"out", "float32 [3, H, W] on the CPU, same timestamp"};
  static constexpr Param<int64_t> kSize{"size", 224, "clip/siglip output side in pixels"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

 private:
  PreprocessOptions options_;
};
#endif

class ImageEncoder : public Node, public EncoderParams {
 public:
  ImageEncoder() = default;
  // A program that holds the ViT already (e.g. shared by a graph per clip) passes it here: open()
  // then uses it as it is, placed where it lives (the architecture, weights, seed, device and
  // dtype parameters are not used). It must not change while a graph uses it.
  explicit ImageEncoder(ViT shared) : vit_(std::move(shared)), shared_(true) {}
  static constexpr OptionalInput<at::Tensor> kImage{"image", "preprocessed float [3, H, W] images"};
#if OMNI_WITH_MEDIA
  static constexpr OptionalInput<Frame> kFrame{"frame",
                                               "RGB frames, preprocessed with mode/image_size"};
#endif
  static constexpr Output<TokenChunk> kTokens{"tokens",
                                              "one TokenChunk per image/frame, at its timestamp"};
  static constexpr Param<int64_t> kImageSize{
      "image_size", 224,
      "side the learned positions are made for; also the clip/siglip size for Frame inputs"};
  static constexpr Param<int64_t> kPatchSize{"patch_size", 16, "patch side in pixels"};
  static constexpr Param<int64_t> kWidth{"width", 192, "transformer width"};
  static constexpr Param<int64_t> kDepth{"depth", 4, "transformer blocks"};
  static constexpr Param<int64_t> kHeads{"heads", 3, "attention heads"};
  static constexpr Param<int64_t> kMlpRatio{"mlp_ratio", 4, "MLP hidden width / width"};
  static constexpr Param<bool> kMerge{"merge", false,
                                      "2x2 patch merge before the projection (4x fewer tokens)"};
  static constexpr Param<int64_t> kOutDim{"out_dim", 256, "output (fusion) width"};
  static constexpr Param<std::string> kPositions{
      "positions", "learned", "learned (interpolated for other sizes) or sinusoidal"};
  static constexpr Param<std::string> kModality{"modality", "image",
                                                "image or video (tags the TokenChunks)"};
  static constexpr Param<int64_t> kBatch{
      "batch", 1, "images of the same size encoded per forward (video frames)"};
  static constexpr Param<std::string> kStream{
      "stream", "", "stream id on the TokenChunks (default: <node>/<modality>)"};
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
  bool shared_ = false;
  DeviceSpec spec_;
  std::unique_ptr<DeviceStager> stager_;  // CUDA: pinned buffers + side-stream copies
  Modality modality_ = Modality::kImage;
  PreprocessOptions pre_;
  int64_t batch_ = 1;
  std::string stream_;
  std::vector<Item> pending_;
};

}  // namespace omni
