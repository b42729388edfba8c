// Qwen2.5-Omni's vision tower (thinker.visual: Qwen2.5-VL's ViT), computed as transformers does:
// a 3-D patch embedding over temporal_patch_size frames (no bias), 2-D rotary positions (h, w),
// blocks of RMSNorm -> attention (q/k/v/proj with biases) and RMSNorm -> SwiGLU MLP (with biases),
// window attention (windows of window_size pixels over the merged grid) except in the
// fullatt_block_indexes blocks (attention over each frame), and the merger (RMSNorm ln_q, then
// Linear -> GELU -> Linear over each 2x2 group of patches). Rows are processed in transformers'
// window order and returned in the processor's order.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "modalities/common/deferred_init.h"

namespace omni::qwen {

struct VisionTowerOptions {
  // transformers' Qwen2_5OmniVisionEncoderConfig defaults.
  int64_t depth = 32;
  int64_t hidden_size = 3584;
  int64_t intermediate_size = 3420;
  int64_t num_heads = 16;
  int64_t in_channels = 3;
  int64_t patch_size = 14;
  int64_t temporal_patch_size = 2;
  int64_t spatial_merge_size = 2;
  int64_t window_size = 112;  // pixels
  int64_t out_hidden_size = 3584;
  std::vector<int64_t> fullatt_block_indexes = {7, 15, 23, 31};
  std::string hidden_act = "silu";  // the blocks' MLP: silu, gelu, gelu_pytorch_tanh, quick_gelu
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;  // fixed in transformers (not read from the config)
  // Not a model setting: attention runs over query chunks whose float32 scores stay within this
  // many bytes (a frame of a large image in a full-attention block would otherwise need
  // heads * patches^2 * 4 bytes at once). Results do not depend on it.
  int64_t attention_chunk_bytes = int64_t{256} << 20;

  int64_t head_dim() const { return hidden_size / num_heads; }
  int64_t patch_dim() const { return in_channels * temporal_patch_size * patch_size * patch_size; }
  int64_t merge_unit() const { return spatial_merge_size * spatial_merge_size; }
  // Merged-grid cells per window side (window_size / spatial_merge_size / patch_size).
  int64_t window_cells() const { return window_size / spatial_merge_size / patch_size; }
  // Throws ConfigError for non-positive sizes, hidden_size not a multiple of num_heads, a head
  // dim not a multiple of 4 (the 2-D rotary), a window smaller than one merged cell or an unknown
  // activation. fullatt_block_indexes entries outside [0, depth) never match a block (as in
  // transformers, so a config whose depth was cut keeps loading).
  void validate() const;
  // From a vision_config object (Qwen2.5-Omni's thinker_config.vision_config; Qwen2.5-VL's
  // "in_chans" is accepted for in_channels). Absent keys keep transformers' defaults; rope_theta
  // from rope_parameters.rope_theta (or rope_theta).
  static VisionTowerOptions from_config(const nlohmann::json& vision_config);
};

// The row layout transformers computes from grid_thw (transformers.vision_utils), on the host.
struct VisionLayout {
  int64_t patches = 0;                     // sum of t*h*w
  std::vector<int64_t> window_index;       // merged cell index per window-order position
  std::vector<int64_t> reverse_index;      // window-order position of each merged cell (argsort)
  std::vector<int64_t> cu_window_seqlens;  // patch boundaries of the windows (empty ones dropped)
  std::vector<int64_t> cu_seqlens;         // patch boundaries of the frames (t per image/video)
  std::vector<std::array<int64_t, 2>> position_ids;  // (h, w) per patch, processor order
};
// Checks grid_thw ([n, 3] integer, positive, h and w multiples of spatial_merge_size) and, when
// `rows` >= 0, that it describes `rows` patches; throws InputError otherwise.
VisionLayout vision_layout(const at::Tensor& grid_thw, const VisionTowerOptions& o,
                           int64_t rows = -1);

// RMSNorm with transformers' cast order: normalise in float32, cast back, multiply by the weight.
class VisionRmsNormImpl : public torch::nn::Module {
 public:
  VisionRmsNormImpl(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;
  double eps;
};
TORCH_MODULE(VisionRmsNorm);

// How rows (in window order) group into segments that attend only among themselves (windows or
// frames): built once per forward from VisionLayout boundaries, on the rows' device, shared by the
// blocks. Segments of unequal length are padded to the longest (padded keys masked out).
struct VisionAttentionPlan {
  int64_t segments = 0, max_len = 0;
  bool uniform = true;  // every segment has max_len rows: a plain reshape, no gather or mask
  at::Tensor gather;    // [segments * max_len] int64: row per padded slot (0 for padding)
  at::Tensor key_mask;  // [segments, 1, 1, max_len] bool: true = a real row
  at::Tensor real;      // int64 padded slots of the real rows, in row order
  static VisionAttentionPlan build(const std::vector<int64_t>& cu_seqlens,
                                   const at::TensorOptions& device);
};

class VisionAttentionImpl : public torch::nn::Module {
 public:
  VisionAttentionImpl(int64_t dim, int64_t heads, int64_t chunk_bytes = int64_t{256} << 20);
  // x [L, dim] (window order); cos/sin [L, head_dim] float32.
  at::Tensor forward(const at::Tensor& x, const VisionAttentionPlan& segments,
                     const at::Tensor& cos, const at::Tensor& sin);
  int64_t heads, chunk_bytes;
  omni::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, proj{nullptr};
};
TORCH_MODULE(VisionAttention);

class VisionMlpImpl : public torch::nn::Module {
 public:
  VisionMlpImpl(int64_t dim, int64_t hidden, std::string act);
  at::Tensor forward(const at::Tensor& x);
  std::string act;
  omni::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(VisionMlp);

class VisionBlockImpl : public torch::nn::Module {
 public:
  explicit VisionBlockImpl(const VisionTowerOptions& o);
  at::Tensor forward(const at::Tensor& x, const VisionAttentionPlan& segments,
                     const at::Tensor& cos, const at::Tensor& sin);
  VisionRmsNorm norm1{nullptr}, norm2{nullptr};
  VisionAttention attn{nullptr};
  VisionMlp mlp{nullptr};
};
TORCH_MODULE(VisionBlock);

// Parameter names are transformers' under thinker.visual. (our "vision."): patch_embed.proj.weight
// [hidden, C, T, P, P], blocks.N.{norm1,norm2}.weight, blocks.N.attn.{q,k,v,proj}.{weight,bias},
// blocks.N.mlp.{gate_proj,up_proj,down_proj}.{weight,bias}, merger.ln_q.weight,
// merger.mlp.{0,2}.{weight,bias}. The rotary inverse frequencies are computed, not stored.
class VisionTowerImpl : public torch::nn::Module {
 public:
  explicit VisionTowerImpl(VisionTowerOptions o);
  // pixel_values [N, C*T*P*P] (Qwen2VLImageProcessor layout, any floating dtype: cast to the
  // weights' dtype), grid_thw [n, 3] integer (one row per image or video, any device) ->
  // [N / merge^2, out_hidden_size] in the weights' dtype, rows in transformers' order. Throws
  // InputError for a bad shape or a grid that does not describe the rows.
  at::Tensor forward(const at::Tensor& pixel_values, const at::Tensor& grid_thw);
  // The blocks' output before the merger, in window order ([N, hidden]; for tests).
  at::Tensor forward_blocks(const at::Tensor& pixel_values, const VisionLayout& layout);

  const VisionTowerOptions& options() const { return options_; }

  torch::nn::Conv3d patch_embed_proj{nullptr};  // registered as patch_embed.proj
  torch::nn::ModuleList blocks{nullptr};
  VisionRmsNorm merger_ln_q{nullptr};         // merger.ln_q
  torch::nn::Sequential merger_mlp{nullptr};  // merger.mlp: Linear, GELU, Linear

 private:
  VisionTowerOptions options_;
};
TORCH_MODULE(VisionTower);

}  // namespace omni::qwen
