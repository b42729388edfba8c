#include "models/qwen2_5_omni/vision_tower.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "core/error.h"
#include "modalities/common/attention.h"
#include "modalities/common/checkpoint_config.h"

namespace omni::qwen {
namespace {

std::string grid_row_text(int64_t i, int64_t t, int64_t h, int64_t w) {
  return "grid_thw row " + std::to_string(i) + " (" + std::to_string(t) + ", " + std::to_string(h) +
         ", " + std::to_string(w) + ")";
}

at::Tensor host_i64(const std::vector<int64_t>& v, const at::TensorOptions& device) {
  at::Tensor t = at::empty({static_cast<int64_t>(v.size())}, at::TensorOptions(at::kLong));
  std::copy(v.begin(), v.end(), t.data_ptr<int64_t>());
  return t.to(device.device());
}

bool known_act(const std::string& a) {
  return a == "silu" || a == "gelu" || a == "gelu_pytorch_tanh" || a == "quick_gelu";
}

at::Tensor activation(const at::Tensor& x, const std::string& act) {
  if (act == "silu") return at::silu(x);
  if (act == "gelu") return at::gelu(x);
  if (act == "gelu_pytorch_tanh") return at::gelu(x, "tanh");
  return x * at::sigmoid(x * 1.702);  // quick_gelu
}

// transformers' rotate_half: (x1, x2) -> (-x2, x1) over the last dimension.
at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({x.slice(-1, half).neg(), x.slice(-1, 0, half)}, -1);
}

}  // namespace

// ---- options ------------------------------------------------------------------------------

void VisionTowerOptions::validate() const {
  auto fail = [](const std::string& m) { throw ConfigError("vision tower config: " + m); };
  for (auto [name, v] : {std::pair<const char*, int64_t>{"depth", depth},
                         {"hidden_size", hidden_size},
                         {"intermediate_size", intermediate_size},
                         {"num_heads", num_heads},
                         {"in_channels", in_channels},
                         {"patch_size", patch_size},
                         {"temporal_patch_size", temporal_patch_size},
                         {"spatial_merge_size", spatial_merge_size},
                         {"window_size", window_size},
                         {"out_hidden_size", out_hidden_size}}) {
    if (v <= 0) fail(std::string(name) + " must be positive, got " + std::to_string(v));
    if (v > kMaxConfigDimension)
      fail(std::string(name) + " " + std::to_string(v) + " is over the " +
           std::to_string(kMaxConfigDimension) + " a config may give a size");
  }
  // A patch's values (in_channels * temporal_patch_size * patch_size^2) and a merged cell stay
  // far from overflowing (Qwen2.5-Omni: 3, 2, 14 and 2).
  if (in_channels > 16 || temporal_patch_size > 64 || patch_size > 1024 || spatial_merge_size > 64)
    fail(
        "in_channels, temporal_patch_size, patch_size and spatial_merge_size must be at most 16, "
        "64, 1024 and 64");
  if (hidden_size % num_heads != 0)
    fail("hidden_size " + std::to_string(hidden_size) + " is not a multiple of num_heads " +
         std::to_string(num_heads));
  if (head_dim() % 4 != 0)
    fail("head dim " + std::to_string(head_dim()) +
         " must be a multiple of 4 (2-D rotary over h and w)");
  if (window_cells() < 1)
    fail("window_size " + std::to_string(window_size) + " is smaller than one merged cell (" +
         std::to_string(spatial_merge_size * patch_size) + " pixels)");
  if (!known_act(hidden_act))
    fail("hidden_act \"" + hidden_act + "\" is not supported (silu, gelu, gelu_pytorch_tanh, " +
         "quick_gelu)");
  if (!(rope_theta > 0)) fail("rope_theta must be positive");
  if (!(rms_norm_eps > 0)) fail("rms_norm_eps must be positive");
  if (attention_chunk_bytes <= 0) fail("attention_chunk_bytes must be positive");
}

VisionTowerOptions VisionTowerOptions::from_config(const nlohmann::json& c) {
  if (!c.is_object()) throw ConfigError("vision tower config: vision_config must be an object");
  VisionTowerOptions o;
  auto get_int = [&](const char* key, int64_t& dst) {
    if (!c.contains(key) || c[key].is_null()) return false;
    const auto& v = c[key];
    if (!v.is_number_integer())
      throw ConfigError(std::string("vision tower config: ") + key + " must be an integer, got " +
                        v.dump());
    dst = v.get<int64_t>();
    return true;
  };
  if (!get_int("depth", o.depth)) get_int("num_hidden_layers", o.depth);
  get_int("hidden_size", o.hidden_size);
  get_int("intermediate_size", o.intermediate_size);
  if (!get_int("num_heads", o.num_heads)) get_int("num_attention_heads", o.num_heads);
  if (!get_int("in_channels", o.in_channels)) get_int("in_chans", o.in_channels);
  get_int("patch_size", o.patch_size);
  get_int("temporal_patch_size", o.temporal_patch_size);
  get_int("spatial_merge_size", o.spatial_merge_size);
  get_int("window_size", o.window_size);
  get_int("out_hidden_size", o.out_hidden_size);
  if (c.contains("fullatt_block_indexes") && !c["fullatt_block_indexes"].is_null()) {
    const auto& f = c["fullatt_block_indexes"];
    if (!f.is_array())
      throw ConfigError("vision tower config: fullatt_block_indexes must be a list");
    o.fullatt_block_indexes.clear();
    for (const auto& v : f) {
      if (!v.is_number_integer())
        throw ConfigError("vision tower config: fullatt_block_indexes entries must be integers");
      o.fullatt_block_indexes.push_back(v.get<int64_t>());
    }
  }
  if (c.contains("hidden_act") && c["hidden_act"].is_string())
    o.hidden_act = c["hidden_act"].get<std::string>();
  const nlohmann::json* rope = nullptr;
  if (c.contains("rope_parameters") && c["rope_parameters"].is_object())
    rope = &c["rope_parameters"];
  if (rope && rope->contains("rope_type") && (*rope)["rope_type"].is_string() &&
      (*rope)["rope_type"].get<std::string>() != "axial" &&
      (*rope)["rope_type"].get<std::string>() != "default")
    throw ConfigError("vision tower config: rope_type \"" +
                      (*rope)["rope_type"].get<std::string>() + "\" is not supported (axial)");
  if (rope && rope->contains("rope_theta") && (*rope)["rope_theta"].is_number())
    o.rope_theta = (*rope)["rope_theta"].get<double>();
  else if (c.contains("rope_theta") && c["rope_theta"].is_number())
    o.rope_theta = c["rope_theta"].get<double>();
  o.validate();
  return o;
}

// ---- layout -------------------------------------------------------------------------------

VisionLayout vision_layout(const at::Tensor& grid_thw, const VisionTowerOptions& o, int64_t rows) {
  if (!grid_thw.defined() || grid_thw.dim() != 2 || grid_thw.size(1) != 3 || grid_thw.size(0) < 1)
    throw InputError(
        "vision tower: grid_thw must be [n, 3] with n >= 1 (one (t, h, w) row per "
        "image or video), got " +
        (grid_thw.defined() ? "shape " + c10::str(grid_thw.sizes())
                            : std::string("an undefined tensor")));
  if (at::isFloatingType(grid_thw.scalar_type()) || grid_thw.scalar_type() == at::kBool)
    throw InputError("vision tower: grid_thw must be an integer tensor, got " +
                     std::string(c10::toString(grid_thw.scalar_type())));
  const at::Tensor g = grid_thw.to(at::kCPU, at::kLong).contiguous();
  const int64_t n = g.size(0), m = o.spatial_merge_size;
  const int64_t* gp = g.data_ptr<int64_t>();
  // Check every row and the total before allocating anything.
  constexpr int64_t kMaxSide = int64_t{1} << 24;
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = gp[3 * i], h = gp[3 * i + 1], w = gp[3 * i + 2];
    if (t < 1 || h < 1 || w < 1 || t > kMaxSide || h > kMaxSide || w > kMaxSide)
      throw InputError("vision tower: " + grid_row_text(i, t, h, w) +
                       ": t, h and w must be positive patch counts");
    if (h % m != 0 || w % m != 0)
      throw InputError("vision tower: " + grid_row_text(i, t, h, w) + ": height " +
                       std::to_string(h) + " and width " + std::to_string(w) +
                       " must be multiples of spatial_merge_size " + std::to_string(m));
    if (t * h > kMaxSide * 16 || t * h * w > kMaxSide * 16 - total)
      throw InputError("vision tower: grid_thw describes too many patches");
    total += t * h * w;
  }
  if (rows >= 0 && total != rows)
    throw InputError("vision tower: grid_thw describes " + std::to_string(total) +
                     " patches (sum of t*h*w over " + std::to_string(n) +
                     " rows) but pixel_values has " + std::to_string(rows) + " rows");

  VisionLayout L;
  L.patches = total;
  const int64_t mu = o.merge_unit(), win = o.window_cells();
  L.window_index.reserve(total / mu);
  L.position_ids.reserve(total);
  L.cu_window_seqlens.push_back(0);
  L.cu_seqlens.push_back(0);
  int64_t base = 0;  // merged cells before this row
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = gp[3 * i], h = gp[3 * i + 1], w = gp[3 * i + 2];
    const int64_t lh = h / m, lw = w / m;
    // transformers pads the merged grid by (win - size % win): a whole empty window when it
    // divides; empty windows add no boundary (unique_consecutive).
    const int64_t nwh = (lh + win - lh % win) / win, nww = (lw + win - lw % win) / win;
    for (int64_t f = 0; f < t; ++f) {
      for (int64_t wy = 0; wy < nwh; ++wy) {
        for (int64_t wx = 0; wx < nww; ++wx) {
          int64_t count = 0;
          for (int64_t y = wy * win; y < std::min(lh, (wy + 1) * win); ++y) {
            for (int64_t x = wx * win; x < std::min(lw, (wx + 1) * win); ++x) {
              L.window_index.push_back(base + f * lh * lw + y * lw + x);
              ++count;
            }
          }
          if (count > 0) L.cu_window_seqlens.push_back(L.cu_window_seqlens.back() + count * mu);
        }
      }
      L.cu_seqlens.push_back(L.cu_seqlens.back() + h * w);
      // Processor order: merged cells row-major, the m x m patches of each cell row-major.
      for (int64_t by = 0; by < lh; ++by)
        for (int64_t bx = 0; bx < lw; ++bx)
          for (int64_t iy = 0; iy < m; ++iy)
            for (int64_t ix = 0; ix < m; ++ix) L.position_ids.push_back({by * m + iy, bx * m + ix});
    }
    base += t * lh * lw;
  }
  L.reverse_index.assign(L.window_index.size(), 0);
  for (size_t p = 0; p < L.window_index.size(); ++p)
    L.reverse_index[static_cast<size_t>(L.window_index[p])] = static_cast<int64_t>(p);
  return L;
}

VisionAttentionPlan VisionAttentionPlan::build(const std::vector<int64_t>& cu,
                                               const at::TensorOptions& device) {
  VisionAttentionPlan p;
  p.segments = static_cast<int64_t>(cu.size()) - 1;
  for (size_t s = 0; s + 1 < cu.size(); ++s) p.max_len = std::max(p.max_len, cu[s + 1] - cu[s]);
  for (size_t s = 0; s + 1 < cu.size(); ++s)
    p.uniform = p.uniform && cu[s + 1] - cu[s] == p.max_len;
  if (p.uniform) return p;
  std::vector<int64_t> gather(static_cast<size_t>(p.segments * p.max_len), 0), real;
  real.reserve(static_cast<size_t>(cu.back()));
  at::Tensor mask = at::zeros({p.segments, 1, 1, p.max_len}, at::TensorOptions(at::kBool));
  bool* mp = mask.data_ptr<bool>();
  for (int64_t s = 0; s < p.segments; ++s) {
    const int64_t len = cu[s + 1] - cu[s];
    for (int64_t j = 0; j < len; ++j) {
      gather[static_cast<size_t>(s * p.max_len + j)] = cu[s] + j;
      real.push_back(s * p.max_len + j);
      mp[s * p.max_len + j] = true;
    }
  }
  p.gather = host_i64(gather, device);
  p.real = host_i64(real, device);
  p.key_mask = mask.to(device.device());
  return p;
}

// ---- modules ------------------------------------------------------------------------------

VisionRmsNormImpl::VisionRmsNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", at::ones({dim}));
}

at::Tensor VisionRmsNormImpl::forward(const at::Tensor& x) {
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor var = xf.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (xf * at::rsqrt(var + eps)).to(x.scalar_type());
}

VisionAttentionImpl::VisionAttentionImpl(int64_t dim, int64_t heads_, int64_t chunk_bytes_)
    : heads(heads_), chunk_bytes(chunk_bytes_) {
  q = register_module("q", omni::nn::Linear(dim, dim));
  k = register_module("k", omni::nn::Linear(dim, dim));
  v = register_module("v", omni::nn::Linear(dim, dim));
  proj = register_module("proj", omni::nn::Linear(dim, dim));
}

at::Tensor VisionAttentionImpl::forward(const at::Tensor& x, const VisionAttentionPlan& plan,
                                        const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t rows = x.size(0), dim = x.size(1), dh = dim / heads;
  const auto dtype = x.scalar_type();
  // Rotary in float32 (cos/sin [L, 1, D]), cast back: transformers' apply_rotary_pos_emb_vision.
  auto rope = [&](const at::Tensor& t) {
    const at::Tensor tf = t.view({rows, heads, dh}).to(at::kFloat);
    return (tf * cos.unsqueeze(1) + rotate_half(tf) * sin.unsqueeze(1)).to(dtype);
  };
  // [L, H, D] -> [S, H, max_len, D]
  auto split = [&](const at::Tensor& t) {
    at::Tensor r = t.reshape({rows, heads, dh});
    if (!plan.uniform) r = r.index_select(0, plan.gather);
    return r.view({plan.segments, plan.max_len, heads, dh}).transpose(1, 2);
  };
  const at::Tensor qh = split(rope(q(x))), kh = split(rope(k(x))), vh = split(v(x));
  const at::Tensor mask = plan.uniform ? at::Tensor() : plan.key_mask;
  // Queries in chunks so that one chunk's scores [S, H, chunk, max_len] (float32) stay within
  // attention_chunk_bytes: every query row is independent, so the result is the same.
  const int64_t per_query = plan.segments * heads * plan.max_len * 4;
  const int64_t chunk = std::max<int64_t>(
      1, std::min<int64_t>(plan.max_len, chunk_bytes / std::max<int64_t>(1, per_query)));
  at::Tensor o;
  if (chunk >= plan.max_len) {
    o = omni::attention(qh, kh, vh, mask, /*causal=*/false);
  } else {
    std::vector<at::Tensor> parts;
    for (int64_t s = 0; s < plan.max_len; s += chunk)
      parts.push_back(omni::attention(qh.slice(2, s, std::min(plan.max_len, s + chunk)), kh, vh,
                                      mask, /*causal=*/false));
    o = at::cat(parts, 2);
  }
  o = o.transpose(1, 2).reshape({plan.segments * plan.max_len, dim});
  if (!plan.uniform) o = o.index_select(0, plan.real);
  return proj(o);
}

VisionMlpImpl::VisionMlpImpl(int64_t dim, int64_t hidden, std::string act_) : act(std::move(act_)) {
  gate_proj = register_module("gate_proj", omni::nn::Linear(dim, hidden));
  up_proj = register_module("up_proj", omni::nn::Linear(dim, hidden));
  down_proj = register_module("down_proj", omni::nn::Linear(hidden, dim));
}

at::Tensor VisionMlpImpl::forward(const at::Tensor& x) {
  return down_proj(activation(gate_proj(x), act) * up_proj(x));
}

VisionBlockImpl::VisionBlockImpl(const VisionTowerOptions& o) {
  norm1 = register_module("norm1", VisionRmsNorm(o.hidden_size, o.rms_norm_eps));
  norm2 = register_module("norm2", VisionRmsNorm(o.hidden_size, o.rms_norm_eps));
  attn =
      register_module("attn", VisionAttention(o.hidden_size, o.num_heads, o.attention_chunk_bytes));
  mlp = register_module("mlp", VisionMlp(o.hidden_size, o.intermediate_size, o.hidden_act));
}

at::Tensor VisionBlockImpl::forward(const at::Tensor& x, const VisionAttentionPlan& plan,
                                    const at::Tensor& cos, const at::Tensor& sin) {
  const at::Tensor h = x + attn(norm1(x), plan, cos, sin);
  return h + mlp(norm2(h));
}

VisionTowerImpl::VisionTowerImpl(VisionTowerOptions o) : options_(std::move(o)) {
  options_.validate();
  const auto& c = options_;
  auto patch_embed = register_module("patch_embed", std::make_shared<torch::nn::Module>());
  patch_embed_proj = patch_embed->register_module(
      "proj", torch::nn::Conv3d(
                  torch::nn::Conv3dOptions(c.in_channels, c.hidden_size,
                                           {c.temporal_patch_size, c.patch_size, c.patch_size})
                      .stride({c.temporal_patch_size, c.patch_size, c.patch_size})
                      .bias(false)));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.depth; ++i) blocks->push_back(VisionBlock(c));
  auto merger = register_module("merger", std::make_shared<torch::nn::Module>());
  const int64_t merged = c.hidden_size * c.merge_unit();
  merger_ln_q = merger->register_module("ln_q", VisionRmsNorm(c.hidden_size, c.rms_norm_eps));
  merger_mlp = merger->register_module(
      "mlp", torch::nn::Sequential(omni::nn::Linear(merged, merged), torch::nn::GELU(),
                                   omni::nn::Linear(merged, c.out_hidden_size)));
}

at::Tensor VisionTowerImpl::forward_blocks(const at::Tensor& pixel_values,
                                           const VisionLayout& layout) {
  const auto& c = options_;
  if (!pixel_values.defined() || pixel_values.dim() != 2 || pixel_values.size(1) != c.patch_dim())
    throw InputError(
        "vision tower: pixel_values must be [N, " + std::to_string(c.patch_dim()) +
        "] (in_channels * temporal_patch_size * patch_size^2), got " +
        (pixel_values.defined() ? c10::str(pixel_values.sizes()) : std::string("undefined")));
  if (!at::isFloatingType(pixel_values.scalar_type()))
    throw InputError("vision tower: pixel_values must be floating point, got " +
                     std::string(c10::toString(pixel_values.scalar_type())));
  if (pixel_values.size(0) != layout.patches)
    throw InputError("vision tower: grid_thw describes " + std::to_string(layout.patches) +
                     " patches but pixel_values has " + std::to_string(pixel_values.size(0)) +
                     " rows");
  const at::Tensor& w = patch_embed_proj->weight;
  const auto dev = at::TensorOptions().device(w.device());
  const int64_t rows = layout.patches, mu = c.merge_unit(), dh = c.head_dim();

  // Patch embedding: a Conv3d whose stride equals its kernel is one matmul per patch.
  at::Tensor x =
      at::linear(pixel_values.to(w.device(), w.scalar_type()), w.reshape({c.hidden_size, -1}));
  // Window order: whole merged cells (mu consecutive rows) permuted by window_index.
  const at::Tensor window_index = host_i64(layout.window_index, dev);
  x = x.view({rows / mu, mu, c.hidden_size}).index_select(0, window_index).view({rows, -1});

  // 2-D rotary (float32): angles pos * inv_freq for h and w, laid out [h | w | h | w].
  const int64_t spatial = dh / 2;
  const at::Tensor inv_freq = at::reciprocal(
      at::pow(c.rope_theta,
              at::arange(0, spatial, 2, dev.dtype(at::kFloat)).div(static_cast<double>(spatial))));
  at::Tensor pos = at::empty({rows, 2}, at::TensorOptions(at::kLong));
  {
    int64_t* pp = pos.data_ptr<int64_t>();
    for (int64_t r = 0; r < rows; ++r) {
      const auto& hw = layout.position_ids[static_cast<size_t>(
          layout.window_index[static_cast<size_t>(r / mu)] * mu + r % mu)];
      pp[2 * r] = hw[0];
      pp[2 * r + 1] = hw[1];
    }
  }
  const at::Tensor freqs = pos.to(w.device()).to(at::kFloat).unsqueeze(-1) * inv_freq;  // [L,2,F]
  auto layout_hw = [](const at::Tensor& f) {
    const at::Tensor hw = at::cat({f.select(1, 0), f.select(1, 1)}, -1);
    return at::cat({hw, hw}, -1);
  };
  const at::Tensor cos = layout_hw(freqs.cos()), sin = layout_hw(freqs.sin());

  const VisionAttentionPlan windows = VisionAttentionPlan::build(layout.cu_window_seqlens, dev);
  const VisionAttentionPlan frames = VisionAttentionPlan::build(layout.cu_seqlens, dev);
  const auto& full = c.fullatt_block_indexes;
  for (int64_t i = 0; i < c.depth; ++i) {
    const bool is_full = std::find(full.begin(), full.end(), i) != full.end();
    x = blocks->ptr<VisionBlockImpl>(static_cast<size_t>(i))
            ->forward(x, is_full ? frames : windows, cos, sin);
  }
  return x;
}

at::Tensor VisionTowerImpl::forward(const at::Tensor& pixel_values, const at::Tensor& grid_thw) {
  const int64_t rows =
      pixel_values.defined() && pixel_values.dim() == 2 ? pixel_values.size(0) : -1;
  const VisionLayout layout = vision_layout(grid_thw, options_, rows);
  const at::Tensor x = forward_blocks(pixel_values, layout);
  const int64_t hidden = options_.hidden_size, mu = options_.merge_unit();
  at::Tensor y = merger_mlp->forward(merger_ln_q(x).view({-1, hidden * mu}));
  return y.index_select(0, host_i64(layout.reverse_index, at::TensorOptions().device(y.device())));
}

}  // namespace omni::qwen
