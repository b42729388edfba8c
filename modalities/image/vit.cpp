#include "modalities/image/vit.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/init.h>

#include <cmath>
#include <sstream>

#include "core/error.h"
#include "modalities/common/encoder_block.h"

namespace omni {
namespace {

// MAE-style fixed 2-D sin/cos: the first half of the channels encode the row, the second the
// column; each half is [sin(p * w_i), cos(p * w_i)] with w_i = 10000^(-i / (d/4)).
at::Tensor sincos_2d(int64_t gh, int64_t gw, int64_t d, const at::TensorOptions& opts) {
  const int64_t q = d / 4;
  at::Tensor omega = at::arange(q, at::kDouble).div(q);
  omega = at::pow(10000.0, -omega);
  at::Tensor rows = at::arange(gh, at::kDouble).unsqueeze(1).mul(omega);  // [gh, q]
  at::Tensor cols = at::arange(gw, at::kDouble).unsqueeze(1).mul(omega);  // [gw, q]
  at::Tensor er = at::cat({rows.sin(), rows.cos()}, 1).unsqueeze(1).expand({gh, gw, 2 * q});
  at::Tensor ec = at::cat({cols.sin(), cols.cos()}, 1).unsqueeze(0).expand({gh, gw, 2 * q});
  return at::cat({er, ec}, 2).reshape({gh * gw, d}).to(opts);
}

std::string shape_string(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

}  // namespace

ViTImpl::ViTImpl(const ViTOptions& o) : options(o) {
  const bool learned = o.positions() == "learned";
  if (!learned && o.positions() != "sinusoidal")
    throw ConfigError("ViT: positions must be 'learned' or 'sinusoidal', got '" + o.positions() +
                      "'");
  if (o.patch_size() <= 0 || o.image_size() <= 0 || o.image_size() % o.patch_size() != 0 ||
      o.depth() < 0 || o.out_dim() <= 0)
    throw ConfigError("ViT: image_size " + std::to_string(o.image_size()) +
                      " must be a positive multiple of patch_size " +
                      std::to_string(o.patch_size()) + "; depth >= 0; out_dim > 0");
  if (!learned && o.width() % 4 != 0)
    throw ConfigError("ViT: sinusoidal positions need width divisible by 4, got " +
                      std::to_string(o.width()));
  const int64_t d = o.width(), p = o.patch_size();
  patch_embed = register_module("patch_embed",
                                torch::nn::Conv2d(torch::nn::Conv2dOptions(3, d, p).stride(p)));
  if (learned) {
    const int64_t g = o.image_size() / p;
    pos_embed = register_parameter("pos_embed", at::empty({g * g, d}));
    torch::nn::init::normal_(pos_embed, 0.0, 0.02);
  }
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.depth(); ++i)
    blocks->push_back(EncoderBlock(EncoderBlockOptions(d, o.heads()).mlp_ratio(o.mlp_ratio())));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  if (o.merge()) {
    merge_fc1 = register_module("merge_fc1", torch::nn::Linear(4 * d, 4 * d));
    merge_fc2 = register_module("merge_fc2", torch::nn::Linear(4 * d, o.out_dim()));
  } else {
    proj = register_module("proj", torch::nn::Linear(d, o.out_dim()));
  }
}

at::Tensor ViTImpl::positions(int64_t gh, int64_t gw) const {
  const int64_t d = options.width();
  if (!pos_embed.defined()) return sincos_2d(gh, gw, d, patch_embed->weight.options());
  const int64_t g = options.image_size() / options.patch_size();
  if (gh == g && gw == g) return pos_embed;
  // Other sizes: bicubic interpolation of the table (as CLIP/SigLIP ports do), in fp32.
  at::Tensor t = pos_embed.to(at::kFloat).reshape({1, g, g, d}).permute({0, 3, 1, 2});
  t = at::upsample_bicubic2d(t, {gh, gw}, /*align_corners=*/false);
  return t.permute({0, 2, 3, 1}).reshape({gh * gw, d}).to(pos_embed.scalar_type());
}

at::Tensor ViTImpl::forward(const at::Tensor& images) {
  if (images.dim() != 4 || images.size(1) != 3)
    throw InputError("ViT: expected images [B, 3, H, W], got " + shape_string(images));
  grid(images.size(2), images.size(3));  // validates divisibility with a clear message
  const int64_t p = options.patch_size(), d = options.width();
  const int64_t b = images.size(0), gh = images.size(2) / p, gw = images.size(3) / p;
  at::Tensor x = patch_embed(images).flatten(2).transpose(1, 2);  // [B, gh*gw, d]
  x = x + positions(gh, gw).unsqueeze(0);
  for (const auto& blk : *blocks) x = blk->as<EncoderBlockImpl>()->forward(x);
  x = norm(x);
  if (!options.merge()) return proj(x);
  x = x.view({b, gh / 2, 2, gw / 2, 2, d}).permute({0, 1, 3, 2, 4, 5});
  x = x.reshape({b, (gh / 2) * (gw / 2), 4 * d});
  return merge_fc2(torch::nn::functional::gelu(merge_fc1(x)));
}

}  // namespace omni
