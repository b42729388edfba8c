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

Contract& add_preprocess_params(Contract& c, bool with_size) {
  c.param("mode", "siglip",
          "preprocessing: clip (shortest side + centre crop), siglip (direct "
          "resize, mean=std=0.5) or qwen (smart_resize)");
  if (with_size) c.param("size", int64_t{224}, "clip/siglip output side in pixels");
  return c.param("factor", int64_t{28}, "qwen: output sides are multiples of this")
      .param("min_pixels", int64_t{56 * 56}, "qwen: lower bound on output pixels")
      .param("max_pixels", int64_t{28 * 28 * 1280}, "qwen: upper bound on output pixels");
}

PreprocessOptions preprocess_options_from(const Params& p, const std::string& size_param) {
  PreprocessOptions o =
      PreprocessOptions::defaults_for(preprocess_mode_from_name(p.get_string("mode")));
  o.size = static_cast<int>(p.get_int(size_param));
  o.factor = static_cast<int>(p.get_int("factor"));
  o.min_pixels = p.get_int("min_pixels");
  o.max_pixels = p.get_int("max_pixels");
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
      .input<Frame>("in", "decoded RGB frames")
      .output<at::Tensor>("out", "float32 [3, H, W] on the CPU, same timestamp");
  return add_preprocess_params(c, true);
}

void ImagePreprocess::open(Context& ctx) {
  options_ = preprocess_options_from(ctx.params(), "size");
}

Flow ImagePreprocess::process(Context& ctx) {
  const Packet& p = ctx.input(0);
  if (p.empty()) return Flow::kContinue;
  ctx.emit<at::Tensor>("out", preprocess_frame(p.get<Frame>(), options_), p.timestamp());
  return Flow::kContinue;
}
#endif

Contract ImageEncoder::contract() {
  Contract c;
  c.doc(
       "ViT image/video encoder: preprocessed image Tensor [3, H, W] (or a Frame, preprocessed "
       "here with `mode`) -> TokenChunk [N, out_dim] with grid (1, h, w); "
       "N = image_tokens(H, W)")
      .optional_input<at::Tensor>("image", "preprocessed float [3, H, W] images");
#if OMNI_WITH_MEDIA
  c.optional_input<Frame>("frame", "RGB frames, preprocessed with mode/image_size");
#endif
  c.output<TokenChunk>("tokens", "one TokenChunk per image/frame, at its timestamp")
      .param("image_size", int64_t{224},
             "side the learned positions are made for; also the "
             "clip/siglip size for Frame inputs")
      .param("patch_size", int64_t{16}, "patch side in pixels")
      .param("width", int64_t{192}, "transformer width")
      .param("depth", int64_t{4}, "transformer blocks")
      .param("heads", int64_t{3}, "attention heads")
      .param("mlp_ratio", int64_t{4}, "MLP hidden width / width")
      .param("merge", false, "2x2 patch merge before the projection (4x fewer tokens)")
      .param("out_dim", int64_t{256}, "output (fusion) width")
      .param("positions", "learned", "learned (interpolated for other sizes) or sinusoidal")
      .param("weights", "", "safetensors file; empty = random init from `seed`")
      .param("prefix", "", "name prefix of this encoder's tensors in the weights file")
      .param("seed", int64_t{0}, "random init seed when no weights are given")
      .param("device", "cpu", "cpu, cuda or cuda:N")
      .param("dtype", "fp32", "fp32; bf16/fp16 on CUDA")
      .param("modality", "image", "image or video (tags the TokenChunks)")
      .param("batch", int64_t{1}, "images of the same size encoded per forward (video frames)")
      .param("stream", "", "stream id on the TokenChunks (default: <node>/<modality>)");
  return add_preprocess_params(c, false).policy(InputPolicy::kImmediate);
}

void ImageEncoder::open(Context& ctx) {
  const Params& p = ctx.params();
  const std::string where = ctx.node_name() + " (ImageEncoder)";
  try {
    ViTOptions o;
    o.image_size(p.get_int("image_size"))
        .patch_size(p.get_int("patch_size"))
        .width(p.get_int("width"))
        .depth(p.get_int("depth"))
        .heads(p.get_int("heads"))
        .mlp_ratio(p.get_int("mlp_ratio"))
        .merge(p.get_bool("merge"))
        .out_dim(p.get_int("out_dim"))
        .positions(p.get_string("positions"));
    spec_ = parse_device(p.get_string("device"), p.get_string("dtype"), where);
    modality_ = modality_from_name(p.get_string("modality"));
    if (modality_ != Modality::kImage && modality_ != Modality::kVideo)
      throw ConfigError("modality must be image or video");
    batch_ = p.get_int("batch");
    if (batch_ < 1) throw ConfigError("batch must be >= 1");
    pre_ = preprocess_options_from(p, "image_size");
    with_seed(p.get_int("seed"), [&] { vit_ = ViT(o); });
  } catch (const InputError&) {
    throw;
  } catch (const Error& e) {
    throw ConfigError(where + ": " + e.what());
  }
  load_and_place(*vit_, p.get_string("weights"), p.get_string("prefix"), spec_, where);
  if (spec_.device.is_cuda()) stager_ = std::make_unique<DeviceStager>(spec_.device);
  stream_ = p.get_string("stream");
  if (stream_.empty()) stream_ = ctx.node_name() + "/" + modality_name(modality_);
}

Flow ImageEncoder::process(Context& ctx) {
  const Packet& img = ctx.input(0);
  at::Tensor x;
  Timestamp ts;
  if (!img.empty()) {
    x = img.get<at::Tensor>();
    ts = img.timestamp();
    if (x.dim() == 4 && x.size(0) == 1) x = x.squeeze(0);
    if (x.dim() != 3 || x.size(0) != 3) {
      std::ostringstream os;
      os << ctx.node_name() << " at " << ts.to_string() << ": expected an image [3, H, W], got "
         << x.sizes();
      throw InputError(os.str());
    }
  }
#if OMNI_WITH_MEDIA
  else if (const Packet& fr = ctx.input(1); !fr.empty()) {
    ts = fr.timestamp();
    x = preprocess_frame(fr.get<Frame>(), pre_);
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
    ctx.emit<TokenChunk>("tokens", std::move(c), pending_[i].ts);
  }
  ctx.count("forwards");
  pending_.clear();
}

void ImageEncoder::close(Context& ctx) { flush(ctx); }

}  // namespace omni
