// Front-end benchmarks: Whisper LogMel on 30 s of audio (single thread) against the same
// computation with torch::stft in this process, and tokenizer throughput. Prints figures.
// Usage: bench_frontends [--reps N] [--tokenizer path/to/tokenizer.json]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "modalities/audio/log_mel.h"
#include "modalities/text/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

// CPU time of the calling thread: both sides run single-threaded, and on a shared machine wall
// time mostly measures the neighbours.
double thread_cpu_ms() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

// Median over reps of {thread CPU ms, wall ms}.
template <class F>
std::pair<double, double> median_ms(int reps, F&& f) {
  std::vector<double> cpu, wall;
  for (int i = 0; i < reps; ++i) {
    const auto a = Clock::now();
    const double c = thread_cpu_ms();
    f();
    cpu.push_back(thread_cpu_ms() - c);
    wall.push_back(std::chrono::duration<double, std::milli>(Clock::now() - a).count());
  }
  std::sort(cpu.begin(), cpu.end());
  std::sort(wall.begin(), wall.end());
  return {cpu[cpu.size() / 2], wall[wall.size() / 2]};
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * double(v.size() - 1) + 0.5)];
}
double median(const std::vector<double>& v) { return quantile(v, 0.5); }

// openai-whisper's log_mel_spectrogram, written with ATen ops.
at::Tensor torch_log_mel(const at::Tensor& audio, const at::Tensor& window,
                         const at::Tensor& filters) {
  const at::Tensor stft =
      at::stft(audio, 400, 160, 400, window, /*center=*/true, "reflect",
               /*normalized=*/false, /*onesided=*/true, /*return_complex=*/true);
  const at::Tensor mag = stft.narrow(-1, 0, stft.size(-1) - 1).abs().pow(2);
  at::Tensor log_spec = at::matmul(filters, mag).clamp_min(1e-10).log10();
  log_spec = at::maximum(log_spec, log_spec.max() - 8.0);
  return (log_spec + 4.0) / 4.0;
}

std::vector<float> speechlike(int64_t n) {
  // Harmonic tones with a syllable-rate envelope plus noise: exercises the whole dynamic range.
  std::mt19937 rng(42);
  std::normal_distribution<float> noise(0.0f, 0.01f);
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double t = double(i) / 16000.0;
    const double env = 0.5 + 0.5 * std::sin(2 * M_PI * 4.0 * t);
    double s = 0;
    for (int h = 1; h <= 8; ++h) s += std::sin(2 * M_PI * 140.0 * h * t) / h;
    x[i] = static_cast<float>(0.2 * env * s) + noise(rng);
  }
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 30;
  std::string tok_path = std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/text/qwen2_tokenizer.json";
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps"))
      reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--tokenizer"))
      tok_path = argv[++i];
  }
  at::set_num_threads(1);
  std::printf("threads: 1 (at::get_num_threads() = %d)\n", at::get_num_threads());

  // ---- LogMel, 30 s ----
  const auto audio = speechlike(omni::kWhisperChunkSamples);
  for (int n_mels : {80, 128}) {
    omni::LogMel mel(n_mels);
    std::vector<float> ours;
    const at::Tensor a = at::from_blob(const_cast<float*>(audio.data()),
                                       {static_cast<int64_t>(audio.size())}, at::kFloat);
    const at::Tensor window = at::hann_window(400, at::kFloat);
    const at::Tensor filters =
        at::from_blob(const_cast<float*>(mel.filters().data()), {n_mels, 201}, at::kFloat).clone();
    at::Tensor ref;
    // The two alternate, one of each per round (A B A B: a noisy neighbour slows both sides of a
    // round alike); the ratio is the median of the rounds' ratios, with its spread.
    std::vector<double> cpu_ours, cpu_ref, wall_ours, wall_ref, ratios;
    for (int r = 0; r < reps; ++r) {
      const auto [c1, w1] = median_ms(
          1, [&] { ours = mel.compute(audio.data(), static_cast<int64_t>(audio.size())); });
      const auto [c2, w2] = median_ms(1, [&] { ref = torch_log_mel(a, window, filters); });
      cpu_ours.push_back(c1), wall_ours.push_back(w1), cpu_ref.push_back(c2),
          wall_ref.push_back(w2), ratios.push_back(c2 / c1);
    }
    const at::Tensor o = at::from_blob(ours.data(), {n_mels, 3000}, at::kFloat);
    const double diff = (o - ref).abs().max().item<double>();
    std::printf(
        "LogMel 30 s, %3d mels: omnipipe %.2f ms, torch::stft reference %.2f ms (thread CPU, "
        "median of %d), reference/omnipipe %.2fx; wall %.2f / %.2f ms; max |diff| %.2g; paired "
        "ratio %.3f (rounds %.3f..%.3f)\n",
        n_mels, median(cpu_ours), median(cpu_ref), reps, median(cpu_ref) / median(cpu_ours),
        median(wall_ours), median(wall_ref), diff, median(ratios), quantile(ratios, 0.25),
        quantile(ratios, 0.75));
  }

  // ---- Tokenizers ----
  std::string corpus;
  const char* parts[] = {
      "The quick brown fox jumps over the lazy dog. It's a dog's life, isn't it? ",
      "안녕하세요. 한국어 문장을 토큰으로 나누는 예시입니다. 오늘 날씨가 정말 좋네요! ",
      "def square(x):\n    return x ** 2  # squares a number\n",
      "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇰🇷 and numbers 3.14159 2026-11-27. ",
  };
  std::mt19937 rng(7);
  while (corpus.size() < (4u << 20)) corpus += parts[rng() % 4];
  const double mb = corpus.size() / 1e6;
  auto bench_tok = [&](const char* name, const omni::TextTokenizer& tok) {
    size_t n = 0;
    const double cold = median_ms(1, [&] { n = tok.encode(corpus).size(); }).first;
    const double warm = median_ms(3, [&] { n = tok.encode(corpus).size(); }).first;
    std::vector<int64_t> ids = tok.encode(corpus);
    const double dec = median_ms(3, [&] { (void)tok.decode(ids); }).first;
    std::printf(
        "%-28s encode %.1f MB/s first pass, %.1f MB/s warm (%.2f M tokens/s); "
        "decode %.1f MB/s; %.2f bytes/token (thread CPU time)\n",
        name, mb / (cold / 1e3), mb / (warm / 1e3), n / (warm / 1e3) / 1e6, mb / (dec / 1e3),
        double(corpus.size()) / n);
  };
  std::printf("tokenizer corpus: %.1f MB mixed English/Korean/code/emoji\n", mb);
  const auto qwen = omni::Tokenizer::from_file(tok_path);
  bench_tok("BPE (qwen2-style fixture)", *qwen);
  omni::ByteTokenizer byte;
  bench_tok("ByteTokenizer", byte);
  return 0;
}
