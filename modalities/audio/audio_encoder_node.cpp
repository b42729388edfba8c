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
      .input(kMel)
      .output(kTokens)
      .param(kNMels)
      .param(kWidth)
      .param(kDepth)
      .param(kHeads)
      .param(kMlpRatio)
      .param(kOutDim)
      .param(kWindow)
      .param(kBatch)
      .param(kFramesPerSecond)
      .param(kWeights)
      .param(kPrefix)
      .param(kSeed)
      .param(kDevice)
      .param(kDtype)
      .param(kStream);
}

void AudioEncoderNode::open(Context& ctx) {
  // Errors carry no node prefix: the runtime adds one ("node 'x' (AudioEncoder) failed in open()").
  try {
    AudioEncoderOptions o;
    o.n_mels(ctx.param(kNMels))
        .width(ctx.param(kWidth))
        .depth(ctx.param(kDepth))
        .heads(ctx.param(kHeads))
        .mlp_ratio(ctx.param(kMlpRatio))
        .out_dim(ctx.param(kOutDim));
    spec_ = parse_device(ctx.param(kDevice), ctx.param(kDtype), /*where=*/{});
    frames_per_second_ = ctx.param(kFramesPerSecond);
    const double window_s = ctx.param(kWindow);
    window_frames_ = static_cast<int64_t>(std::llround(window_s * frames_per_second_));
    if (frames_per_second_ <= 0 || window_frames_ < 1)
      throw ConfigError("window_s x frames_per_second must be at least one frame");
    batch_ = ctx.param(kBatch);
    if (batch_ < 1) throw ConfigError("batch must be >= 1");
    if (!shared_) with_seed(ctx.param(kSeed), [&] { enc_ = AudioEncoder(o); });
  } catch (const InputError&) {
    throw;
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {
    throw ConfigError(e.what());  // the model's option checks
  }
  if (!shared_) {
    load_and_place(*enc_, ctx.param(kWeights), ctx.param(kPrefix), spec_);
  } else if (const auto ps = enc_->parameters(); !ps.empty()) {
    spec_ = {ps.front().device(), ps.front().scalar_type()};  // where the owner placed it
  }
  if (spec_.device.is_cuda()) stager_ = std::make_unique<DeviceStager>(spec_.device);
  stream_ = ctx.param(kStream);
  if (stream_.empty()) stream_ = ctx.node_name() + "/audio";
}

Flow AudioEncoderNode::process(Context& ctx) {
  const auto p = ctx.input(kMel);
  if (p.empty()) return Flow::kContinue;
  at::Tensor mel = p.get();
  if (mel.dim() == 3 && mel.size(0) == 1) mel = mel.squeeze(0);
  if (mel.dim() != 2 || mel.size(0) != enc_->options.n_mels()) {
    std::ostringstream os;  // the runtime prefixes the node and the timestamp
    os << "expected log-mel [" << enc_->options.n_mels() << ", T], got " << mel.sizes();
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
    ctx.emit(kTokens, std::move(c), ts);
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
