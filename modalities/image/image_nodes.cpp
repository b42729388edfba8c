#include "modalities/image/image_nodes.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <sstream>

#include "core/error.h"
#include "modalities/common/token_chunk.h"
#if OMNI_WITH_MEDIA
#include "modalities/image/frame_tensor.h"
#endif

namespace omni {

Contract& add_preprocess_params(Contract& c, const Param<int64_t>* size) {
  c.param(PreprocessParams::kMode);
  if (size) c.param(*size);
  return c.param(PreprocessParams::kFactor)
      .param(PreprocessParams::kMinPixels)
      .param(PreprocessParams::kMaxPixels);
}

PreprocessOptions preprocess_options_from(const Context& ctx, const Param<int64_t>& size) {
  PreprocessOptions o = PreprocessOptions::defaults_for(
      preprocess_mode_from_name(ctx.param(PreprocessParams::kMode)));
  o.size = static_cast<int>(ctx.param(size));
  o.factor = static_cast<int>(ctx.param(PreprocessParams::kFactor));
  o.min_pixels = ctx.param(PreprocessParams::kMinPixels);
  o.max_pixels = ctx.param(PreprocessParams::kMaxPixels);
  if (o.size <= 0 || o.factor <= 0 || o.min_pixels > o.max_pixels)
    throw ConfigError("image preprocessing: need size > 0, factor > 0, min_pixels <= max_pixels");
  return o;
}

#if OMNI_WITH_MEDIA
Contract ImagePreprocess::contract() {
  Contract c;
  c.doc(
       "Reference image preprocessing (PIL-exact bicubic resize, crop, mean/std): RGB Frame -> "
       "float Tensor [3, H, W]")
      .input(kIn)
      .output(kOut);
  return add_preprocess_params(c, &kSize);
}

void ImagePreprocess::open(Context& ctx) { options_ = preprocess_options_from(ctx, kSize); }

Flow ImagePreprocess::process(Context& ctx) {
  const auto p = ctx.input(kIn);
  if (p.empty()) return Flow::kContinue;
  ctx.emit(kOut, preprocess_frame(p.get(), options_), p.timestamp());
  return Flow::kContinue;
}
#endif

Contract ImageEncoder::contract() {
  Contract c;
  c.doc(
       "ViT image/video encoder: preprocessed image Tensor [3, H, W] (or a Frame, preprocessed "
       "here with `mode`) -> TokenChunk [N, out_dim] with grid (1, h, w); "
       "N = image_tokens(H, W)")
      .input(kImage);
#if OMNI_WITH_MEDIA
  c.input(kFrame);
#endif
  c.output(kTokens)
      .param(kImageSize)
      .param(kPatchSize)
      .param(kWidth)
      .param(kDepth)
      .param(kHeads)
      .param(kMlpRatio)
      .param(kMerge)
      .param(kOutDim)
      .param(kPositions)
      .param(kWeights)
      .param(kPrefix)
      .param(kSeed)
      .param(kDevice)
      .param(kDtype)
      .param(kModality)
      .param(kBatch)
      .param(kStream);
  return add_preprocess_params(c, nullptr).policy(InputPolicy::kImmediate);
}

void ImageEncoder::open(Context& ctx) {
  // Errors carry no node prefix: the runtime adds one ("node 'x' (ImageEncoder) failed in open()").
  try {
    ViTOptions o;
    o.image_size(ctx.param(kImageSize))
        .patch_size(ctx.param(kPatchSize))
        .width(ctx.param(kWidth))
        .depth(ctx.param(kDepth))
        .heads(ctx.param(kHeads))
        .mlp_ratio(ctx.param(kMlpRatio))
        .merge(ctx.param(kMerge))
        .out_dim(ctx.param(kOutDim))
        .positions(ctx.param(kPositions));
    spec_ = parse_device(ctx.param(kDevice), ctx.param(kDtype), /*where=*/{});
    modality_ = modality_from_name(ctx.param(kModality));
    if (modality_ != Modality::kImage && modality_ != Modality::kVideo)
      throw ConfigError("modality must be image or video");
    batch_ = ctx.param(kBatch);
    if (batch_ < 1) throw ConfigError("batch must be >= 1");
    pre_ = preprocess_options_from(ctx, kImageSize);
    if (!shared_) with_seed(ctx.param(kSeed), [&] { vit_ = ViT(o); });
  } catch (const InputError&) {
    throw;
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {
    throw ConfigError(e.what());  // the model's option checks
  }
  if (!shared_) {
    load_and_place(*vit_, ctx.param(kWeights), ctx.param(kPrefix), spec_);
  } else if (const auto ps = vit_->parameters(); !ps.empty()) {
    spec_ = {ps.front().device(), ps.front().scalar_type()};  // where the owner placed it
  }
  if (spec_.device.is_cuda()) stager_ = std::make_unique<DeviceStager>(spec_.device);
  stream_ = ctx.param(kStream);
  if (stream_.empty()) stream_ = ctx.node_name() + "/" + modality_name(modality_);
}

Flow ImageEncoder::process(Context& ctx) {
  const auto img = ctx.input(kImage);
  at::Tensor x;
  Timestamp ts;
  if (!img.empty()) {
    x = img.get();
    ts = img.timestamp();
    if (x.dim() == 4 && x.size(0) == 1) x = x.squeeze(0);
    if (x.dim() != 3 || x.size(0) != 3) {
      std::ostringstream os;  // the runtime prefixes the node and the timestamp
      os << "expected an image [3, H, W], got " << x.sizes();
      throw InputError(os.str());
    }
  }
#if OMNI_WITH_MEDIA
  else if (const auto fr = ctx.input(kFrame); !fr.empty()) {
    ts = fr.timestamp();
    x = preprocess_frame(fr.get(), pre_);
  }
#endif
  if (!x.defined()) return Flow::kContinue;
  vit_->grid(x.size(1), x.size(2));  // InputError for a size that does not tile
  // A batch holds images of one size; a new size flushes what is pending.
  if (!pending_.empty() && pending_.front().image.sizes() != x.sizes()) flush(ctx);
  pending_.push_back({x, ts});
  if (static_cast<int64_t>(pending_.size()) >= batch_) flush(ctx);
  return Flow::kContinue;
}

void ImageEncoder::flush(Context& ctx) {
  if (pending_.empty()) return;
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> imgs;
  for (const Item& it : pending_) imgs.push_back(it.image);
  // Frames go up in fp32 through the stager's pinned buffers; the cast runs on the GPU.
  const at::Tensor host = at::stack(imgs);
  at::Tensor x;
  if (stager_) {
    x = stager_->to_device(host).to(spec_.dtype);
    ctx.count("staged_copies");
  } else {
    x = host.to(spec_.device, spec_.dtype);
  }
  const at::Tensor out = vit_->forward(x);
  const VisualGrid g = vit_->grid(x.size(2), x.size(3));
  for (size_t i = 0; i < pending_.size(); ++i) {
    TokenChunk c;
    c.modality = modality_;
    c.embeddings = out[static_cast<int64_t>(i)];
    c.start_us = c.end_us = pending_[i].ts.us();
    c.grid_t = 1;
    c.grid_h = g.h;
    c.grid_w = g.w;
    c.stream = stream_;
    ctx.count("tokens", c.num_tokens());
    ctx.emit(kTokens, std::move(c), pending_[i].ts);
  }
  ctx.count("forwards");
  pending_.clear();
}

void ImageEncoder::close(Context& ctx) { flush(ctx); }

}  // namespace omni
