// Whisper's log-mel front end (openai-whisper log_mel_spectrogram) on FFTW: whole-signal,
// 30 s padded windows, and an incremental framer that gives the same frames on a chunked stream.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

namespace omni {

inline constexpr int kWhisperSampleRate = 16000;
inline constexpr int kWhisperNFft = 400;
inline constexpr int kWhisperHop = 160;
inline constexpr int kWhisperBins = kWhisperNFft / 2 + 1;    // 201 rfft bins
inline constexpr int64_t kWhisperChunkSamples = 30 * 16000;  // whisper's N_SAMPLES
inline constexpr int64_t kWhisperChunkFrames = kWhisperChunkSamples / kWhisperHop;  // 3000

// Slaney-style mel filterbank exactly as librosa.filters.mel(sr, n_fft, n_mels, htk=False,
// norm="slaney", dtype=float32) builds it (same double-precision steps, same float32 roundings).
// Row-major [n_mels, n_fft/2+1].
std::vector<float> slaney_mel_filters(int sample_rate, int n_fft, int n_mels);

// Frame count of the Whisper STFT for n samples: centre padding gives 1 + n/hop frames and
// whisper drops the last one.
inline int64_t log_mel_frames(int64_t n_samples) { return n_samples / kWhisperHop; }

// Whisper's dynamic-range step on raw log10 mel values: x = max(x, max_value - 8); x = (x + 4)/4.
// `max_value` is normally the maximum of the same data (normalize_log_mel computes it).
void normalize_log_mel(float* data, int64_t n, float max_value);
void normalize_log_mel(float* data, int64_t n);

// The 400-point real FFT of one frame (FFTW's r2c in double, planned once; defined in
// log_mel.cpp so FFTW stays out of this header).
class WhisperRfft;

// The front end. Not thread-safe (the FFT keeps scratch state): one LogMel per thread/node.
class LogMel {
 public:
  explicit LogMel(int n_mels = 80);
  ~LogMel();
  LogMel(const LogMel& other);  // its own FFT scratch
  LogMel& operator=(const LogMel& other);
  LogMel(LogMel&&) noexcept;
  LogMel& operator=(LogMel&&) noexcept;

  int n_mels() const { return n_mels_; }
  const std::vector<float>& filters() const { return filters_; }
  const std::vector<float>& window() const { return window_; }

  // log_mel_spectrogram(audio) for a 16 kHz mono signal of any length > n_fft/2 samples:
  // row-major [n_mels, n/160], normalised. Throws InputError for shorter signals (torch's reflect
  // padding refuses them too).
  std::vector<float> compute(const float* samples, int64_t n);
  // Same before the max-8 / (x+4)/4 step: raw log10(clamp(mel, 1e-10)).
  std::vector<float> compute_raw(const float* samples, int64_t n);
  // whisper's pad_or_trim(audio, target) followed by log_mel_spectrogram: [n_mels, target/160].
  std::vector<float> compute_padded(const float* samples, int64_t n,
                                    int64_t target = kWhisperChunkSamples);

  // Raw log10 mel column of one frame: `frame` holds the 400 (already padded) input samples
  // centred on the frame; writes n_mels values to out[i * stride].
  void frame_log_mel(const float* frame, float* out, int64_t stride);

 private:
  int n_mels_;
  std::vector<float> window_;   // periodic Hann(400)
  std::vector<float> filters_;  // [n_mels, 201]
  // Non-zero range [first, last) of each filter row, so the mel product skips the zeros.
  std::vector<int> first_, last_;
  std::unique_ptr<WhisperRfft> fft_;
  std::vector<double> power_;
  std::vector<float> mel_;  // one column before it is written out
};

// Incremental Whisper framing of one continuous signal delivered in pieces. Frame j is centred on
// sample 160*j and needs samples [160j-200, 160j+200): it is computed as soon as those samples
// arrived (reflection at the true start), and the frames that touch the true end are computed by
// finish() with reflection there. The frames are therefore identical to LogMel::compute_raw of the
// concatenated signal, whatever the chunking. Only ~400 samples of history are kept.
class LogMelStream {
 public:
  explicit LogMelStream(int n_mels = 80) : mel_(n_mels) {}

  int n_mels() const { return mel_.n_mels(); }
  void push(const float* samples, int64_t n);
  // Ends the signal. Returns false (and computes nothing more) if the whole signal had 1..200
  // samples, which the Whisper front end cannot frame.
  bool finish();
  bool finished() const { return finished_; }
  int64_t samples_seen() const { return total_; }
  // Frames computed so far and not yet taken.
  int64_t frames_ready() const { return static_cast<int64_t>(ready_.size()) / n_mels(); }
  // Index (in the whole signal) of the next frame take() returns.
  int64_t next_frame_index() const { return taken_; }
  // Removes the first k ready frames: raw log10 mel values, row-major [n_mels, k].
  std::vector<float> take(int64_t k);

 private:
  void compute_available(bool at_end);
  float sample(int64_t i) const;  // absolute index, reflected at the signal's ends

  LogMel mel_;
  std::vector<float> buf_;  // samples [buf_start_, total_)
  int64_t buf_start_ = 0;
  int64_t total_ = 0;
  int64_t next_frame_ = 0;  // next frame to compute
  int64_t taken_ = 0;
  bool finished_ = false;
  std::deque<float> ready_;  // computed frames, frame-major [frame][mel]
  std::vector<float> frame_;
};

}  // namespace omni
