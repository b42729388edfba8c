// ViT image encoder (libtorch): patch embedding, 2-D positions, pre-LN blocks, final LayerNorm,
// optional 2x2 patch merge, projection to the fusion width.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>

#include "modalities/image/image_tokens.h"

namespace omni {

struct ViTOptions {
  TORCH_ARG(int64_t, image_size) = 224;  // side the learned position table is made for
  TORCH_ARG(int64_t, patch_size) = 16;
  TORCH_ARG(int64_t, width) = 192;
  TORCH_ARG(int64_t, depth) = 4;
  TORCH_ARG(int64_t, heads) = 3;
  TORCH_ARG(int64_t, mlp_ratio) = 4;
  TORCH_ARG(bool, merge) = false;     // 2x2 patch merge (Qwen2-VL style MLP merger)
  TORCH_ARG(int64_t, out_dim) = 256;  // fusion width
  // "learned": a table for image_size, bicubically interpolated for other grids;
  // "sinusoidal": fixed 2-D sin/cos computed for any grid (width must be a multiple of 4).
  TORCH_ARG(std::string, positions) = "learned";
};

// Parameter names: patch_embed.{weight,bias}, pos_embed ([grid*grid, width], learned only),
// blocks.<i>.* (EncoderBlock), norm.*, then proj.* (no merge) or merge_fc1.*, merge_fc2.*.
class ViTImpl : public torch::nn::Module {
 public:
  explicit ViTImpl(const ViTOptions& options);
  // images: [B, 3, H, W] in the module's dtype/device, H and W multiples of the token unit.
  // Returns [B, N, out_dim] with N = image_tokens(H, W), tokens in raster order of the grid.
  at::Tensor forward(const at::Tensor& images);
  VisualGrid grid(int64_t height, int64_t width) const {
    return image_token_grid(height, width, options.patch_size(), options.merge());
  }
  int64_t image_tokens(int64_t height, int64_t width) const { return grid(height, width).tokens(); }
  // Positions [gh * gw, width] for a patch grid (before merge).
  at::Tensor positions(int64_t gh, int64_t gw) const;

  ViTOptions options;
  torch::nn::Conv2d patch_embed{nullptr};
  at::Tensor pos_embed;
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear proj{nullptr}, merge_fc1{nullptr}, merge_fc2{nullptr};
};
TORCH_MODULE(ViT);

}  // namespace omni
