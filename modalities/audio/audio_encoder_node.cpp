#include "modalities/audio/audio_encoder_node.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <cmath>
#include <sstream>

#include "core/error.h"
#include "modalities/common/token_chunk.h"

namespace omni {

Contract AudioEncoderNode::contract() {
  return Contract()
      .doc(
          "Whisper-like audio encoder: log-mel Tensor [n_mels, T] at 100 frames/s -> one "
          "TokenChunk [N, out_dim] per window of window_s (25 tokens/s; N = "
          "audio_window_tokens(frames)); nothing is truncated")
      .input<at::Tensor>("mel",
                         "log-mel [n_mels, T] (the LogMel node's output), at its start "
                         "time")
      .output<TokenChunk>("tokens", "one TokenChunk per window, at the window's start time")
      .param("n_mels", int64_t{80}, "mel bins")
      .param("width", int64_t{192}, "transformer width")
      .param("depth", int64_t{4}, "transformer blocks")
      .param("heads", int64_t{3}, "attention heads")
      .param("mlp_ratio", int64_t{4}, "MLP hidden width / width")
      .param("out_dim", int64_t{256}, "output (fusion) width")
      .param("window_s", 30.0, "attention window in seconds; longer input is cut into windows")
      .param("batch", int64_t{4}, "full windows encoded per forward")
      .param("frames_per_second", 100.0, "mel frame rate (Whisper: 16000 / 160)")
      .param("weights", "", "safetensors file; empty = random init from `seed`")
      .param("prefix", "", "name prefix of this encoder's tensors in the weights file")
      .param("seed", int64_t{0}, "random init seed when no weights are given")
      .param("device", "cpu", "cpu, cuda or cuda:N")
      .param("dtype", "fp32", "fp32; bf16/fp16 on CUDA")
      .param("stream", "", "stream id on the TokenChunks (default: <node>/audio)");
}

void AudioEncoderNode::open(Context& ctx) {
  const Params& p = ctx.params();
  const std::string where = ctx.node_name() + " (AudioEncoder)";
  try {
    AudioEncoderOptions o;
    o.n_mels(p.get_int("n_mels"))
        .width(p.get_int("width"))
        .depth(p.get_int("depth"))
        .heads(p.get_int("heads"))
        .mlp_ratio(p.get_int("mlp_ratio"))
        .out_dim(p.get_int("out_dim"));
    spec_ = parse_device(p.get_string("device"), p.get_string("dtype"), where);
    frames_per_second_ = p.get_double("frames_per_second");
    const double window_s = p.get_double("window_s");
    window_frames_ = static_cast<int64_t>(std::llround(window_s * frames_per_second_));
    if (frames_per_second_ <= 0 || window_frames_ < 1)
      throw ConfigError("window_s x frames_per_second must be at least one frame");
    batch_ = p.get_int("batch");
    if (batch_ < 1) throw ConfigError("batch must be >= 1");
    with_seed(p.get_int("seed"), [&] { enc_ = AudioEncoder(o); });
  } catch (const InputError&) {
    throw;
  } catch (const Error& e) {
    throw ConfigError(where + ": " + e.what());
  }
  load_and_place(*enc_, p.get_string("weights"), p.get_string("prefix"), spec_, where);
  if (spec_.device.is_cuda()) stager_ = std::make_unique<DeviceStager>(spec_.device);
  stream_ = p.get_string("stream");
  if (stream_.empty()) stream_ = ctx.node_name() + "/audio";
}

Flow AudioEncoderNode::process(Context& ctx) {
  const Packet& p = ctx.input(0);
  if (p.empty()) return Flow::kContinue;
  at::Tensor mel = p.get<at::Tensor>();
  if (mel.dim() == 3 && mel.size(0) == 1) mel = mel.squeeze(0);
  if (mel.dim() != 2 || mel.size(0) != enc_->options.n_mels()) {
    std::ostringstream os;
    os << ctx.node_name() << " at " << p.timestamp().to_string() << ": expected log-mel ["
       << enc_->options.n_mels() << ", T], got " << mel.sizes();
    throw InputError(os.str());
  }
  const int64_t total = mel.size(1);
  if (total == 0) return Flow::kContinue;
  torch::NoGradGuard no_grad;
  if (stager_) {  // pinned buffer + side-stream copy; the cast to the compute dtype runs there
    mel = stager_->to_device(mel).to(spec_.dtype);
    ctx.count("staged_copies");
  } else {
    mel = mel.to(spec_.device, spec_.dtype);
  }
  const int64_t t0 = p.timestamp().us();
  const double us_per_frame = 1e6 / frames_per_second_;
  auto frame_us = [&](int64_t f) { return t0 + std::llround(f * us_per_frame); };
  auto emit = [&](const at::Tensor& tokens, int64_t first, int64_t frames) {
    TokenChunk c;
    c.modality = Modality::kAudio;
    c.embeddings = tokens;
    c.start_us = frame_us(first);
    c.end_us = frame_us(first + frames);
    c.grid_w = tokens.size(0);
    c.stream = stream_;
    ctx.count("tokens", c.num_tokens());
    ctx.count("windows");
    const Timestamp ts(c.start_us);
    ctx.emit<TokenChunk>("tokens", std::move(c), ts);
  };
  // Full windows go through in batches (same length, no padding); the remainder alone.
  const int64_t full = total / window_frames_;
  for (int64_t w = 0; w < full; w += batch_) {
    const int64_t n = std::min(batch_, full - w);
    const at::Tensor x = mel.slice(1, w * window_frames_, (w + n) * window_frames_)
                             .reshape({mel.size(0), n, window_frames_})
                             .transpose(0, 1);
    const at::Tensor out = enc_->forward(x.contiguous());
    for (int64_t i = 0; i < n; ++i) emit(out[i], (w + i) * window_frames_, window_frames_);
    if (ctx.stop_requested()) return Flow::kContinue;
  }
  if (const int64_t rest = total - full * window_frames_; rest > 0)
    emit(enc_->forward(mel.slice(1, full * window_frames_, total)), full * window_frames_, rest);
  return Flow::kContinue;
}

void register_audio_encoder_nodes(Registry& r) { r.add<AudioEncoderNode>("AudioEncoder"); }

}  // namespace omni
