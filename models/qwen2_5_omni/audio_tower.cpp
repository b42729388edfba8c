#include "models/qwen2_5_omni/audio_tower.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/activation.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/error.h"
#include "modalities/audio/audio_encoder.h"
#include "modalities/audio/whisper_features.h"
#include "modalities/common/attention.h"
#include "modalities/common/checkpoint_config.h"

namespace omni::qwen {
namespace {

namespace F = torch::nn::functional;

int64_t get_int(const nlohmann::json& c, const char* key, int64_t fallback) {
  if (!c.contains(key) || c[key].is_null()) return fallback;
  if (!c[key].is_number_integer())
    throw ConfigError(std::string("audio_config.") + key + " must be an integer, got " +
                      c[key].dump());
  return c[key].get<int64_t>();
}

}  // namespace

void AudioTowerOptions::validate() const {
  std::ostringstream os;
  if (num_mel_bins() <= 0) os << " num_mel_bins " << num_mel_bins() << " <= 0;";
  if (d_model() < 4 || d_model() % 2 != 0) os << " d_model " << d_model() << " not even >= 4;";
  if (encoder_attention_heads() <= 0 || d_model() % encoder_attention_heads() != 0)
    os << " d_model " << d_model() << " not a multiple of encoder_attention_heads "
       << encoder_attention_heads() << ";";
  if (encoder_layers() < 0) os << " encoder_layers " << encoder_layers() << " < 0;";
  if (encoder_ffn_dim() <= 0) os << " encoder_ffn_dim " << encoder_ffn_dim() << " <= 0;";
  if (output_dim() <= 0) os << " output_dim " << output_dim() << " <= 0;";
  // A window of 2 * n_window frames leaves n_window positions after conv2.
  if (n_window() <= 0 || n_window() > max_source_positions())
    os << " n_window " << n_window() << " not in [1, max_source_positions "
       << max_source_positions() << "];";
  for (auto [name, v] : {std::pair<const char*, int64_t>{"num_mel_bins", num_mel_bins()},
                         {"d_model", d_model()},
                         {"encoder_layers", encoder_layers()},
                         {"encoder_attention_heads", encoder_attention_heads()},
                         {"encoder_ffn_dim", encoder_ffn_dim()},
                         {"output_dim", output_dim()}})
    if (v > kMaxConfigDimension)
      os << " " << name << " " << v << " over " << kMaxConfigDimension << ";";
  // The position table is computed, not loaded (max_source_positions x d_model floats): held to
  // 2^16 positions and 2^27 values, 512 MB (Qwen2.5-Omni: 1500 x 1280).
  if (max_source_positions() > (int64_t{1} << 16) ||
      (d_model() > 0 && max_source_positions() > (int64_t{1} << 27) / d_model()))
    os << " max_source_positions " << max_source_positions() << " x d_model " << d_model()
       << " over 2^16 positions or 2^27 values;";
  const std::string problems = os.str();
  if (!problems.empty()) throw ConfigError("Qwen2.5-Omni audio tower:" + problems);
}

AudioTowerOptions AudioTowerOptions::from_config(const nlohmann::json& c) {
  if (!c.is_object()) throw ConfigError("Qwen2.5-Omni audio_config must be a JSON object");
  if (c.contains("activation_function") && c["activation_function"] != "gelu")
    throw ConfigError("Qwen2.5-Omni audio tower: activation_function " +
                      c["activation_function"].dump() + " is not supported (only \"gelu\")");
  AudioTowerOptions o;
  o.num_mel_bins(get_int(c, "num_mel_bins", o.num_mel_bins()))
      .d_model(get_int(c, "d_model", o.d_model()))
      .encoder_layers(get_int(c, "encoder_layers", o.encoder_layers()))
      .encoder_attention_heads(get_int(c, "encoder_attention_heads", o.encoder_attention_heads()))
      .encoder_ffn_dim(get_int(c, "encoder_ffn_dim", o.encoder_ffn_dim()))
      .max_source_positions(get_int(c, "max_source_positions", o.max_source_positions()))
      .n_window(get_int(c, "n_window", o.n_window()))
      .output_dim(get_int(c, "output_dim", o.output_dim()));
  o.validate();
  return o;
}

AudioAttentionImpl::AudioAttentionImpl(int64_t d_model, int64_t heads_) : heads(heads_) {
  q_proj = register_module("q_proj", omni::nn::Linear(d_model, d_model));
  k_proj = register_module(
      "k_proj", omni::nn::Linear(torch::nn::LinearOptions(d_model, d_model).bias(false)));
  v_proj = register_module("v_proj", omni::nn::Linear(d_model, d_model));
  out_proj = register_module("out_proj", omni::nn::Linear(d_model, d_model));
}

at::Tensor AudioAttentionImpl::forward(const at::Tensor& x, int64_t window, int64_t full) {
  const int64_t t = x.size(0), d = x.size(1), dh = d / heads;
  const at::Tensor q = q_proj(x), k = k_proj(x), v = v_proj(x);  // [T, d] each
  // Rows [start, start + n * len) as n windows of len rows: [n, H, len, Dh] -> back to [n*len, d].
  auto windows = [&](int64_t start, int64_t n, int64_t len) {
    auto heads_of = [&](const at::Tensor& y) {
      return y.narrow(0, start, n * len).view({n, len, heads, dh}).transpose(1, 2);
    };
    return attention(heads_of(q), heads_of(k), heads_of(v)).transpose(1, 2).reshape({n * len, d});
  };
  const int64_t tail = t - full * window;
  at::Tensor out;
  if (full > 0 && tail > 0)
    out = at::cat({windows(0, full, window), windows(full * window, 1, tail)}, 0);
  else
    out = full > 0 ? windows(0, full, window) : windows(0, 1, tail);
  return out_proj(out);
}

AudioEncoderLayerImpl::AudioEncoderLayerImpl(const AudioTowerOptions& o) {
  const int64_t d = o.d_model();
  self_attn = register_module("self_attn", AudioAttention(d, o.encoder_attention_heads()));
  self_attn_layer_norm = register_module("self_attn_layer_norm",
                                         torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  fc1 = register_module("fc1", omni::nn::Linear(d, o.encoder_ffn_dim()));
  fc2 = register_module("fc2", omni::nn::Linear(o.encoder_ffn_dim(), d));
  final_layer_norm =
      register_module("final_layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
}

at::Tensor AudioEncoderLayerImpl::forward(const at::Tensor& x, int64_t window, int64_t full) {
  at::Tensor h = x + self_attn(self_attn_layer_norm(x), window, full);
  h = h + fc2(F::gelu(fc1(final_layer_norm(h))));
  if (h.scalar_type() == at::kHalf) {  // transformers keeps float16 finite the same way
    const double lim = 65504.0 - 1000.0;
    h = h.clamp(-lim, lim);
  }
  return h;
}

AudioTowerImpl::AudioTowerImpl(AudioTowerOptions o) : options_(o) {
  o.validate();
  const int64_t d = o.d_model();
  conv1 = register_module(
      "conv1", torch::nn::Conv1d(torch::nn::Conv1dOptions(o.num_mel_bins(), d, 3).padding(1)));
  conv2 = register_module(
      "conv2", torch::nn::Conv1d(torch::nn::Conv1dOptions(d, d, 3).stride(2).padding(1)));
  audio_bos_eos_token =
      register_module("audio_bos_eos_token", torch::nn::Embedding(2, o.output_dim()));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.encoder_layers(); ++i) layers->push_back(AudioEncoderLayer(o));
  ln_post = register_module("ln_post", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  proj = register_module("proj", omni::nn::Linear(d, o.output_dim()));
  positions_ = omni::whisper_sinusoids(o.max_source_positions(), d, at::kFloat);
}

at::Tensor AudioTowerImpl::forward(const at::Tensor& features) {
  const AudioTowerOptions& o = options_;
  if (!features.defined() || features.dim() != 2 || features.size(0) != o.num_mel_bins() ||
      features.size(1) < 1 || !at::isFloatingType(features.scalar_type())) {
    std::ostringstream os;
    os << "Qwen2.5-Omni audio tower: expected floating log-mel features [" << o.num_mel_bins()
       << ", frames >= 1], got ";
    if (features.defined())
      os << features.scalar_type() << " " << features.sizes();
    else
      os << "an undefined tensor";
    throw InputError(os.str());
  }
  const int64_t d = o.d_model(), frames = features.size(1);
  const int64_t chunk = 2 * o.n_window();  // frames per attention window
  const int64_t full = frames / chunk, tail = frames % chunk;
  const at::Tensor& w = conv1->weight;
  at::Tensor x = features.to(w.device(), w.scalar_type());

  // Windows as a batch [n, mels, len], the last one zero-padded to the others' length.
  at::Tensor batch;
  if (full == 0) {
    batch = x.unsqueeze(0);
  } else {
    const int64_t n = full + (tail > 0 ? 1 : 0);
    if (tail > 0) x = at::constant_pad_nd(x, {0, n * chunk - frames});
    batch = x.view({x.size(0), n, chunk}).permute({1, 0, 2});
  }
  at::Tensor h = F::gelu(conv1(batch));
  if (full > 0 && tail > 0) {
    // conv2 must see zeros past the end of the short window, as if it were processed alone.
    at::Tensor keep = at::ones({h.size(0), 1, chunk}, h.options());
    keep[h.size(0) - 1].narrow(-1, tail, chunk - tail).zero_();
    h = h * keep;
  }
  h = F::gelu(conv2(h)).transpose(1, 2);  // [n, len after conv2, d]
  // Positions restart in every window.
  h = h + positions_.narrow(0, 0, h.size(1)).to(h.options()).unsqueeze(0);
  const int64_t window = o.n_window();  // rows of a full window after conv2
  const int64_t tail_rows = (tail + 1) / 2;
  if (full == 0)
    h = h[0];
  else if (tail == 0)
    h = h.reshape({full * window, d});
  else
    h = at::cat(
        {h.narrow(0, 0, full).reshape({full * window, d}), h[full].narrow(0, 0, tail_rows)});

  for (const auto& layer : *layers)
    h = layer->as<AudioEncoderLayerImpl>()->forward(h, window, full);

  // Average of frame pairs (0, 1), (2, 3), ... over the whole clip; an odd last frame is dropped.
  const int64_t pairs = h.size(0) / 2;
  at::Tensor p = h.narrow(0, 0, 2 * pairs).view({pairs, 2, d});
  h = (p.select(1, 0) + p.select(1, 1)) / 2;
  return proj(ln_post(h));
}

int64_t audio_token_count(int64_t frames) {
  if (frames < 0)
    throw InputError("Qwen2.5-Omni audio tokens: negative frame count " + std::to_string(frames));
  return omni::qwen_audio_tokens(frames);
}

}  // namespace omni::qwen
