#include "modalities/audio/audio_encoder.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/activation.h>

#include <cmath>
#include <sstream>
#include <string>

#include "core/error.h"
#include "modalities/common/encoder_block.h"

namespace omni {

at::Tensor whisper_sinusoids(int64_t length, int64_t channels, at::ScalarType compute) {
  if (channels % 2 != 0 || channels < 4)
    throw ConfigError("sinusoidal positions need an even width >= 4, got " +
                      std::to_string(channels));
  if (compute != at::kDouble && compute != at::kFloat)
    throw ConfigError("sinusoidal positions are computed in float32 or float64");
  const double inc = std::log(10000.0) / static_cast<double>(channels / 2 - 1);
  at::Tensor inv = at::exp(at::arange(channels / 2, compute).mul(-inc));
  at::Tensor scaled = at::arange(length, compute).unsqueeze(1).mul(inv.unsqueeze(0));
  return at::cat({scaled.sin(), scaled.cos()}, 1).to(at::kFloat);
}

AudioEncoderImpl::AudioEncoderImpl(const AudioEncoderOptions& o) : options(o) {
  if (o.n_mels() <= 0 || o.width() < 4 || o.width() % 2 != 0 || o.depth() < 0 || o.out_dim() <= 0)
    throw ConfigError(
        "AudioEncoder: need n_mels > 0, an even width >= 4, depth >= 0, out_dim > 0 "
        "(got n_mels " +
        std::to_string(o.n_mels()) + ", width " + std::to_string(o.width()) + ")");
  const int64_t d = o.width();
  conv1 = register_module("conv1",
                          torch::nn::Conv1d(torch::nn::Conv1dOptions(o.n_mels(), d, 3).padding(1)));
  conv2 = register_module(
      "conv2", torch::nn::Conv1d(torch::nn::Conv1dOptions(d, d, 3).stride(2).padding(1)));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.depth(); ++i)
    blocks->push_back(EncoderBlock(EncoderBlockOptions(d, o.heads()).mlp_ratio(o.mlp_ratio())));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  proj = register_module("proj", torch::nn::Linear(d, o.out_dim()));
}

at::Tensor AudioEncoderImpl::forward(const at::Tensor& mel) {
  const bool batched = mel.dim() == 3;
  if ((mel.dim() != 2 && mel.dim() != 3) || mel.size(-2) != options.n_mels() || mel.size(-1) < 1) {
    std::ostringstream os;
    os << "AudioEncoder: expected log-mel [B, " << options.n_mels() << ", T>=1] or ["
       << options.n_mels() << ", T], got " << mel.sizes();
    throw InputError(os.str());
  }
  namespace F = torch::nn::functional;
  at::Tensor x = batched ? mel : mel.unsqueeze(0);
  x = F::gelu(conv1(x));
  x = F::gelu(conv2(x)).transpose(1, 2);  // [B, ceil(T/2), d]
  x = x + whisper_sinusoids(x.size(1), options.width()).to(x.options()).unsqueeze(0);
  for (const auto& blk : *blocks) x = blk->as<EncoderBlockImpl>()->forward(x);
  // Average pairs of frames; ceil_mode keeps a lone last frame as its own token (nothing dropped).
  x = at::avg_pool1d(x.transpose(1, 2), {2}, {2}, {0}, /*ceil_mode=*/true,
                     /*count_include_pad=*/true)
          .transpose(1, 2);
  x = proj(norm(x));
  return batched ? x : x.squeeze(0);
}

}  // namespace omni
