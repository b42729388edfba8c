// Throughput of the encoders at the demo model's size: PIL-exact preprocessing (frames/s), the
// ViT ImageEncoder module (frames/s, batch 1 and 8) and the AudioEncoder module (audio seconds
// per second, 1 s chunks and 30 s windows). Usage: bench_encoders [threads] [min_seconds]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "modalities/audio/audio_encoder.h"
#include "modalities/image/preprocess.h"
#include "modalities/image/vit.h"

namespace {

// Runs fn until at least min_s elapsed (after one warm-up call); returns calls per second.
double rate(double min_s, const std::function<void()>& fn) {
  fn();
  using clk = std::chrono::steady_clock;
  const auto t0 = clk::now();
  int64_t n = 0;
  double el = 0;
  do {
    fn();
    ++n;
    el = std::chrono::duration<double>(clk::now() - t0).count();
  } while (el < min_s);
  return n / el;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  const double min_s = argc > 2 ? std::atof(argv[2]) : 2.0;
  at::set_num_threads(threads);
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  std::printf("threads=%d min_seconds=%.1f libtorch=%s\n", threads, min_s, TORCH_VERSION);

  // Preprocessing a 640x480 frame to 96x96 (SigLIP) and CLIP 224.
  std::vector<uint8_t> frame(640 * 480 * 3);
  for (size_t i = 0; i < frame.size(); ++i)
    frame[i] = static_cast<uint8_t>((i * 2654435761u) >> 24);
  for (auto [mode, size] : {std::pair{omni::PreprocessMode::kSiglip, 96},
                            std::pair{omni::PreprocessMode::kClip, 224}}) {
    auto o = omni::PreprocessOptions::defaults_for(mode);
    o.size = size;
    const double r = rate(min_s, [&] { omni::preprocess_rgb(frame.data(), 640, 480, 640 * 3, o); });
    std::printf("preprocess 640x480 -> %s %d: %.1f frames/s\n", omni::preprocess_mode_name(mode),
                size, r);
  }

  // Demo ViT: 96x96, patch 16, width 192, depth 4, heads 3, 2x2 merge -> 9 tokens of 256.
  omni::ViT vit(omni::ViTOptions()
                    .image_size(96)
                    .patch_size(16)
                    .width(192)
                    .depth(4)
                    .heads(3)
                    .merge(true)
                    .out_dim(256));
  vit->eval();
  for (int64_t b : {1, 8}) {
    const at::Tensor x = torch::randn({b, 3, 96, 96});
    const double r = rate(min_s, [&] { vit->forward(x); });
    std::printf("ImageEncoder 96x96 p16 w192 d4 merge (9 tok/frame) batch %ld: %.1f frames/s\n",
                static_cast<long>(b), r * b);
  }

  // Demo audio encoder: 80 mels, width 192, depth 4, heads 3.
  omni::AudioEncoder aud(
      omni::AudioEncoderOptions().n_mels(80).width(192).depth(4).heads(3).out_dim(256));
  aud->eval();
  for (int64_t frames : {int64_t{100}, int64_t{3000}}) {
    const at::Tensor mel = torch::randn({1, 80, frames});
    const double r = rate(min_s, [&] { aud->forward(mel); });
    std::printf("AudioEncoder w192 d4 window %.0f s (%ld tokens): %.1f audio s/s\n", frames / 100.0,
                static_cast<long>(omni::audio_window_tokens(frames)), r * frames / 100.0);
  }
  return 0;
}
