#include "modalities/image/qwen_vision.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "modalities/image/pil_resize.h"
#include "modalities/image/preprocess.h"
#include "modalities/image/torch_resize.h"

namespace omni {
namespace {

std::string size_str(int w, int h) { return std::to_string(w) + "x" + std::to_string(h); }

// Resized RGB8 planes -> normalised float planes [3, H, W].
void normalise_into(const uint8_t* rgb, int width, int height, int64_t stride,
                    const QwenVisionOptions& o, float* out) {
  const int64_t plane = static_cast<int64_t>(width) * height;
  if (o.resample == QwenResample::kPil) {
    // PIL processor: x * rescale_factor (float64, stored float32), then (x - mean) / std.
    for (int c = 0; c < 3; ++c) {
      for (int y = 0; y < height; ++y) {
        const uint8_t* row = rgb + y * stride + c;
        float* dst = out + c * plane + static_cast<int64_t>(y) * width;
        for (int x = 0; x < width; ++x) {
          const float r = static_cast<float>(row[x * 3] * o.rescale_factor);
          dst[x] = static_cast<float>((r - o.mean[c]) / o.std[c]);
        }
      }
    }
  } else {
    // torchvision processor: rescale fused into float32 mean / std (x - m/s) / (s/s').
    for (int c = 0; c < 3; ++c) {
      const float m = static_cast<float>(o.mean[c]) * static_cast<float>(1.0 / o.rescale_factor);
      const float s = static_cast<float>(o.std[c]) * static_cast<float>(1.0 / o.rescale_factor);
      for (int y = 0; y < height; ++y) {
        const uint8_t* row = rgb + y * stride + c;
        float* dst = out + c * plane + static_cast<int64_t>(y) * width;
        for (int x = 0; x < width; ++x) dst[x] = (static_cast<float>(row[x * 3]) - m) / s;
      }
    }
  }
}

std::vector<uint8_t> resize_rgb(const uint8_t* rgb, int width, int height, int64_t stride,
                                int out_w, int out_h, QwenResample how) {
  switch (how) {
    case QwenResample::kPil:
      return resize_bicubic_pil(rgb, width, height, stride, 3, out_w, out_h);
    case QwenResample::kTorchvision:
      return resize_bicubic_torch_u8(rgb, width, height, stride, 3, out_w, out_h);
    case QwenResample::kTorchvisionFloat:
      break;
  }
  return resize_bicubic_torch_aa(rgb, width, height, stride, 3, out_w, out_h);
}

}  // namespace

QwenVisualInputs qwen_image_inputs(const uint8_t* rgb, int width, int height, int64_t row_stride,
                                   const QwenVisionOptions& o) {
  if (rgb == nullptr) throw InputError("qwen image: null image data");
  if (row_stride < static_cast<int64_t>(width) * 3) {
    throw InputError("qwen image: row stride " + std::to_string(row_stride) +
                     " is shorter than a row of " + std::to_string(width) + " RGB pixels");
  }
  const auto [rh, rw] = qwen_image_size(height, width, o);
  std::vector<uint8_t> resized;
  const uint8_t* img = rgb;
  int64_t stride = row_stride;
  if (rh != height || rw != width) {
    resized = resize_rgb(rgb, width, height, row_stride, rw, rh, o.resample);
    img = resized.data();
    stride = static_cast<int64_t>(rw) * 3;
  }
  std::vector<float> planes(static_cast<size_t>(3) * rh * rw);
  normalise_into(img, rw, rh, stride, o, planes.data());
  return qwen_patchify(planes.data(), 1, rh, rw, o);
}

QwenVisualInputs qwen_patchify(const float* frames, int64_t t, int height, int width,
                               const QwenVisionOptions& o) {
  o.validate();
  const int P = o.patch_size, m = o.merge_size, T = o.temporal_patch_size;
  if (frames == nullptr || t <= 0) throw InputError("qwen patchify: no frames");
  if (height <= 0 || width <= 0 || height % (P * m) != 0 || width % (P * m) != 0) {
    throw InputError("qwen patchify: frame " + size_str(width, height) +
                     " must have sides divisible by " + std::to_string(P * m));
  }
  const int64_t gt = (t + T - 1) / T, gh = height / P, gw = width / P;
  const int64_t cols = 3LL * T * P * P;
  at::Tensor out = at::empty({gt * gh * gw, cols}, at::kFloat);
  float* dst = out.data_ptr<float>();
  const int64_t plane = static_cast<int64_t>(height) * width;
  for (int64_t it = 0; it < gt; ++it) {
    for (int64_t bh = 0; bh < gh / m; ++bh) {
      for (int64_t bw = 0; bw < gw / m; ++bw) {
        for (int mh = 0; mh < m; ++mh) {
          for (int mw = 0; mw < m; ++mw) {
            const int64_t y0 = (bh * m + mh) * P, x0 = (bw * m + mw) * P;
            for (int c = 0; c < 3; ++c) {
              for (int tp = 0; tp < T; ++tp) {
                // Frames past the end repeat the last one.
                const int64_t f = std::min<int64_t>(it * T + tp, t - 1);
                const float* src = frames + (f * 3 + c) * plane;
                for (int ph = 0; ph < P; ++ph) {
                  std::memcpy(dst, src + (y0 + ph) * width + x0, sizeof(float) * P);
                  dst += P;
                }
              }
            }
          }
        }
      }
    }
  }
  QwenVisualInputs r;
  r.pixel_values = out;
  r.grid_thw = {gt, gh, gw};
  r.merge_size = m;
  return r;
}

// ---- video ----

QwenVideoInputs qwen_video_inputs_from_frames(const std::vector<RgbView>& frames,
                                              const QwenVideoPlan& plan,
                                              const QwenVideoOptions& o) {
  const QwenVisionOptions& p = o.processor;
  p.validate();
  if (frames.empty()) throw InputError("qwen video: no frames");
  if (static_cast<int64_t>(frames.size()) != plan.nframes) {
    throw InputError("qwen video: got " + std::to_string(frames.size()) + " frames for a plan of " +
                     std::to_string(plan.nframes));
  }
  const int h0 = frames[0].height, w0 = frames[0].width;
  for (const RgbView& f : frames) {
    if (f.data == nullptr || f.width != w0 || f.height != h0 || f.row_stride < 3LL * f.width) {
      throw InputError("qwen video: frames must be non-empty RGB images of one size (" +
                       size_str(w0, h0) + ")");
    }
  }
  // fetch_video: torchvision resize of the uint8 frames (rounded), then .float().
  const auto [rh, rw] = qwen_video_frame_size(h0, w0, plan.nframes, o);
  // Qwen2VLVideoProcessor: its own smart_resize (the identity when fetch_video's bounds lie within
  // the processor's), on float frames (no rounding).
  const auto [ph, pw] = p.do_resize
                            ? qwen_smart_resize(rh, rw, p.factor(), p.min_pixels, p.max_pixels)
                            : std::pair<int, int>{rh, rw};
  const int64_t plane = static_cast<int64_t>(ph) * pw;
  std::vector<float> all(static_cast<size_t>(frames.size()) * 3 * plane);
  std::vector<float> tmp;
  for (size_t i = 0; i < frames.size(); ++i) {
    const RgbView& f = frames[i];
    const std::vector<uint8_t> r =
        resize_bicubic_torch_aa(f.data, f.width, f.height, f.row_stride, 3, rw, rh);
    float* dst = all.data() + i * 3 * plane;
    if (ph == rh && pw == rw) {
      normalise_into(r.data(), rw, rh, static_cast<int64_t>(rw) * 3, p, dst);
      continue;
    }
    tmp.resize(static_cast<size_t>(3) * rh * rw);
    for (int c = 0; c < 3; ++c) {
      for (int64_t k = 0; k < static_cast<int64_t>(rh) * rw; ++k) {
        tmp[c * static_cast<int64_t>(rh) * rw + k] = r[k * 3 + c];
      }
    }
    const std::vector<float> rr = resize_bicubic_torch_aa(tmp.data(), 3, rw, rh, pw, ph);
    for (int c = 0; c < 3; ++c) {
      const float m = static_cast<float>(p.mean[c]) * static_cast<float>(1.0 / p.rescale_factor);
      const float s = static_cast<float>(p.std[c]) * static_cast<float>(1.0 / p.rescale_factor);
      for (int64_t k = 0; k < plane; ++k) dst[c * plane + k] = (rr[c * plane + k] - m) / s;
    }
  }
  QwenVideoInputs out;
  static_cast<QwenVisualInputs&>(out) =
      qwen_patchify(all.data(), static_cast<int64_t>(frames.size()), ph, pw, p);
  out.plan = plan;
  out.resized_height = rh;
  out.resized_width = rw;
  const double fps = o.processor_fps > 0 ? o.processor_fps : (o.nframes > 0 ? 2.0 : o.fps);
  out.second_per_grid = p.temporal_patch_size / fps;
  return out;
}

}  // namespace omni
