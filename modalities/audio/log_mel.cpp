#include "modalities/audio/log_mel.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include <fftw3.h>

#include <Eigen/Core>
#include <mutex>

#include "core/error.h"

namespace omni {
namespace {

// librosa's Slaney mel scale (linear below 1 kHz, logarithmic above), in double like numpy.
constexpr double kFSp = 200.0 / 3;
constexpr double kMinLogHz = 1000.0;
constexpr double kMinLogMel = kMinLogHz / kFSp;

double log_step() { return std::log(6.4) / 27.0; }

double hz_to_mel(double hz) {
  if (hz >= kMinLogHz) return kMinLogMel + std::log(hz / kMinLogHz) / log_step();
  return hz / kFSp;
}

double mel_to_hz(double mel) {
  if (mel >= kMinLogMel) return kMinLogHz * std::exp(log_step() * (mel - kMinLogMel));
  return kFSp * mel;
}

}  // namespace

std::vector<float> slaney_mel_filters(int sample_rate, int n_fft, int n_mels) {
  if (sample_rate <= 0 || n_fft <= 0 || n_mels <= 0) {
    throw ConfigError("slaney_mel_filters: sample_rate, n_fft and n_mels must be positive (got " +
                      std::to_string(sample_rate) + ", " + std::to_string(n_fft) + ", " +
                      std::to_string(n_mels) + ")");
  }
  const int bins = n_fft / 2 + 1;
  // np.fft.rfftfreq(n_fft, d=1/sr): k * (1 / (n_fft * (1/sr))).
  const double val = 1.0 / (n_fft * (1.0 / sample_rate));
  std::vector<double> fftfreqs(bins);
  for (int k = 0; k < bins; ++k) fftfreqs[k] = k * val;
  // mel_frequencies(n_mels + 2, fmin=0, fmax=sr/2): np.linspace over the mel scale, then to Hz.
  const int n_pts = n_mels + 2;
  const double min_mel = hz_to_mel(0.0), max_mel = hz_to_mel(sample_rate / 2.0);
  const double step = (max_mel - min_mel) / (n_pts - 1);
  std::vector<double> mel_f(n_pts);
  for (int i = 0; i < n_pts; ++i) {
    const double m = (i == n_pts - 1) ? max_mel : i * step + min_mel;
    mel_f[i] = mel_to_hz(m);
  }
  std::vector<float> weights(static_cast<size_t>(n_mels) * bins, 0.0f);
  for (int i = 0; i < n_mels; ++i) {
    const double fdiff_lo = mel_f[i + 1] - mel_f[i];
    const double fdiff_hi = mel_f[i + 2] - mel_f[i + 1];
    const double enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
    for (int k = 0; k < bins; ++k) {
      const double lower = -(mel_f[i] - fftfreqs[k]) / fdiff_lo;
      const double upper = (mel_f[i + 2] - fftfreqs[k]) / fdiff_hi;
      // librosa stores the triangle in float32, then scales it in float64 and rounds again.
      const float w = static_cast<float>(std::max(0.0, std::min(lower, upper)));
      weights[static_cast<size_t>(i) * bins + k] = static_cast<float>(double(w) * enorm);
    }
  }
  return weights;
}

void normalize_log_mel(float* data, int64_t n, float max_value) {
  const float floor = max_value - 8.0f;
  for (int64_t i = 0; i < n; ++i) data[i] = (std::max(data[i], floor) + 4.0f) / 4.0f;
}

void normalize_log_mel(float* data, int64_t n) {
  if (n <= 0) return;
  normalize_log_mel(data, n, *std::max_element(data, data + n));
}

// FFTW's planner is not thread-safe (plans are made and destroyed under one lock); executing a
// plan on its own arrays is. FFTW_ESTIMATE picks the plan without timing trial runs, so every run
// (and every machine with the same FFTW) computes the same bits.
class WhisperRfft {
 public:
  WhisperRfft() {
    std::lock_guard<std::mutex> lock(planner_mutex());
    in_ = fftw_alloc_real(kWhisperNFft);
    out_ = fftw_alloc_complex(kWhisperBins);
    if (in_ && out_) plan_ = fftw_plan_dft_r2c_1d(kWhisperNFft, in_, out_, FFTW_ESTIMATE);
    if (!plan_) {
      fftw_free(in_);
      fftw_free(out_);
      throw Error("LogMel: FFTW could not plan the 400-point real FFT");
    }
  }
  ~WhisperRfft() {
    std::lock_guard<std::mutex> lock(planner_mutex());
    fftw_destroy_plan(plan_);
    fftw_free(in_);
    fftw_free(out_);
  }
  WhisperRfft(const WhisperRfft&) = delete;
  WhisperRfft& operator=(const WhisperRfft&) = delete;

  double* input() { return in_; }
  // |X_k|^2 of the input for the 201 bins.
  void power(double* out) {
    fftw_execute(plan_);
    for (int k = 0; k < kWhisperBins; ++k)
      out[k] = out_[k][0] * out_[k][0] + out_[k][1] * out_[k][1];
  }

 private:
  static std::mutex& planner_mutex() {
    static std::mutex m;
    return m;
  }
  double* in_ = nullptr;
  fftw_complex* out_ = nullptr;
  fftw_plan plan_ = nullptr;
};

LogMel::~LogMel() = default;
LogMel::LogMel(LogMel&&) noexcept = default;
LogMel& LogMel::operator=(LogMel&&) noexcept = default;
LogMel::LogMel(const LogMel& o)
    : n_mels_(o.n_mels_),
      window_(o.window_),
      filters_(o.filters_),
      first_(o.first_),
      last_(o.last_),
      fft_(std::make_unique<WhisperRfft>()),
      power_(o.power_),
      mel_(o.mel_) {}
LogMel& LogMel::operator=(const LogMel& o) {
  if (this != &o) *this = LogMel(o);
  return *this;
}

LogMel::LogMel(int n_mels)
    : n_mels_(n_mels),
      window_(kWhisperNFft),
      filters_(slaney_mel_filters(kWhisperSampleRate, kWhisperNFft, n_mels)),
      first_(n_mels),
      last_(n_mels),
      fft_(std::make_unique<WhisperRfft>()),
      power_(kWhisperBins),
      mel_(n_mels) {
  // torch.hann_window(400) is periodic: 0.5 - 0.5 cos(2 pi n / N); computed in double, rounded.
  for (int i = 0; i < kWhisperNFft; ++i) {
    window_[i] =
        static_cast<float>(0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * i / kWhisperNFft));
  }
  for (int m = 0; m < n_mels; ++m) {
    const float* row = filters_.data() + static_cast<size_t>(m) * kWhisperBins;
    int a = 0, b = kWhisperBins;
    while (a < b && row[a] == 0.0f) ++a;
    while (b > a && row[b - 1] == 0.0f) --b;
    first_[m] = a;
    last_[m] = b;
  }
}

void LogMel::frame_log_mel(const float* frame, float* out, int64_t stride) {
  double* windowed = fft_->input();
  for (int i = 0; i < kWhisperNFft; ++i) windowed[i] = frame[i] * window_[i];
  fft_->power(power_.data());
  for (int m = 0; m < n_mels_; ++m) {
    const float* row = filters_.data() + static_cast<size_t>(m) * kWhisperBins;
    double s = 0.0;
    for (int k = first_[m]; k < last_[m]; ++k) s += row[k] * power_[k];
    mel_[m] = static_cast<float>(std::max(s, 1e-10));
  }
  // log10 of the whole column at once: Eigen's vectorised float log (within an ulp or two of
  // std::log10 of the double, well inside the features' float precision) instead of one scalar
  // double log10 per value, which took two thirds of the time.
  Eigen::Map<Eigen::ArrayXf> col(mel_.data(), n_mels_);
  col = col.log() * static_cast<float>(1.0 / std::numbers::ln10);
  for (int m = 0; m < n_mels_; ++m) out[m * stride] = mel_[m];
}

std::vector<float> LogMel::compute_raw(const float* samples, int64_t n) {
  constexpr int64_t pad = kWhisperNFft / 2;
  if (n <= pad) {
    throw InputError(
        "LogMel: a signal of " + std::to_string(n) +
        " samples is too short for the Whisper STFT (reflect padding needs more than " +
        std::to_string(pad) + " samples)");
  }
  // Centred STFT: reflect-pad n_fft/2 on both sides (numpy/torch "reflect": edge not repeated).
  std::vector<float> padded(static_cast<size_t>(n + 2 * pad));
  for (int64_t i = 0; i < pad; ++i) {
    padded[i] = samples[pad - i];
    padded[pad + n + i] = samples[n - 2 - i];
  }
  std::copy(samples, samples + n, padded.begin() + pad);
  const int64_t frames = log_mel_frames(n);
  std::vector<float> out(static_cast<size_t>(n_mels_) * frames);
  for (int64_t j = 0; j < frames; ++j) {
    frame_log_mel(padded.data() + j * kWhisperHop, out.data() + j, frames);
  }
  return out;
}

std::vector<float> LogMel::compute(const float* samples, int64_t n) {
  std::vector<float> out = compute_raw(samples, n);
  normalize_log_mel(out.data(), static_cast<int64_t>(out.size()));
  return out;
}

std::vector<float> LogMel::compute_padded(const float* samples, int64_t n, int64_t target) {
  if (target <= kWhisperNFft / 2) {
    throw ConfigError("LogMel: padded window of " + std::to_string(target) +
                      " samples is too short (need more than 200)");
  }
  std::vector<float> x(static_cast<size_t>(target), 0.0f);
  std::copy(samples, samples + std::min(n, target), x.begin());
  return compute(x.data(), target);
}

// ---- LogMelStream ----

float LogMelStream::sample(int64_t i) const {
  if (i < 0) i = -i;
  if (finished_ && i >= total_) i = 2 * (total_ - 1) - i;
  return buf_[static_cast<size_t>(i - buf_start_)];
}

void LogMelStream::push(const float* samples, int64_t n) {
  if (finished_) throw Error("LogMelStream: push() after finish()");
  if (n <= 0) return;
  buf_.insert(buf_.end(), samples, samples + n);
  total_ += n;
  compute_available(false);
}

bool LogMelStream::finish() {
  if (finished_) return true;
  finished_ = true;
  if (total_ > 0 && total_ <= kWhisperNFft / 2) return false;
  compute_available(true);
  return true;
}

void LogMelStream::compute_available(bool at_end) {
  constexpr int64_t half = kWhisperNFft / 2;
  const int n_mels = mel_.n_mels();
  frame_.resize(kWhisperNFft);
  std::vector<float> column(n_mels);
  const int64_t end_frames = log_mel_frames(total_);
  for (;; ++next_frame_) {
    const int64_t first = next_frame_ * kWhisperHop - half;
    if (at_end) {
      if (next_frame_ >= end_frames) break;
    } else if (std::max(first + kWhisperNFft - 1, half) >= total_) {
      break;  // some needed sample (or the start reflection's x[200]) has not arrived
    }
    if (first >= 0 && first + kWhisperNFft <= total_) {
      mel_.frame_log_mel(buf_.data() + (first - buf_start_), column.data(), 1);
    } else {
      for (int i = 0; i < kWhisperNFft; ++i) frame_[i] = sample(first + i);
      mel_.frame_log_mel(frame_.data(), column.data(), 1);
    }
    ready_.insert(ready_.end(), column.begin(), column.end());
  }
  // Drop history no future frame needs (keep x[0..200] while start reflection may use it).
  const int64_t keep_from = std::max<int64_t>(0, next_frame_ * kWhisperHop - half);
  if (keep_from - buf_start_ > 8192) {
    buf_.erase(buf_.begin(), buf_.begin() + (keep_from - buf_start_));
    buf_start_ = keep_from;
  }
}

std::vector<float> LogMelStream::take(int64_t k) {
  const int n_mels = mel_.n_mels();
  k = std::min(k, frames_ready());
  std::vector<float> out(static_cast<size_t>(n_mels) * k);
  for (int64_t f = 0; f < k; ++f) {
    for (int m = 0; m < n_mels; ++m) out[m * k + f] = ready_[f * n_mels + m];
  }
  ready_.erase(ready_.begin(), ready_.begin() + k * n_mels);
  taken_ += k;
  return out;
}

}  // namespace omni
