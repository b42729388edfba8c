#include "modalities/audio/log_mel_node.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "modalities/common/audio_chunk.h"

namespace omni {
namespace {

// A [rows, cols] float tensor that owns `data` without copying it.
at::Tensor to_tensor(std::vector<float> data, int64_t rows, int64_t cols) {
  auto* owned = new std::vector<float>(std::move(data));
  return at::from_blob(
      owned->data(), {rows, cols}, [owned](void*) { delete owned; },
      at::TensorOptions().dtype(at::kFloat));
}

}  // namespace

Contract LogMelNode::contract() {
  return Contract()
      .doc(
          "Whisper log-mel features (bit-for-bit the openai-whisper front end) of a 16 kHz "
          "audio stream, one [n_mels, frames] tensor per window")
      .input(kAudio)
      .output(kMel)
      .param(kNMels)
      .param(kMode)
      .param(kWindow)
      .param(kNormalize)
      .policy(InputPolicy::kImmediate);
}

void LogMelNode::open(Context& ctx) {
  const int64_t n_mels = ctx.param(kNMels);
  if (n_mels != 80 && n_mels != 128) {
    throw ConfigError("n_mels must be 80 or 128 (got " + std::to_string(n_mels) + ")");
  }
  n_mels_ = static_cast<int>(n_mels);
  const std::string& mode = ctx.param(kMode);
  if (mode != "padded30" && mode != "whole") {
    throw ConfigError("mode must be 'padded30' or 'whole' (got '" + mode + "')");
  }
  padded_ = mode == "padded30";
  const double window_s = ctx.param(kWindow);
  const double frames = window_s * kWhisperSampleRate / kWhisperHop;
  if (!(window_s > 0.0) || std::fabs(frames - std::round(frames)) > 1e-6 || frames < 2) {
    throw ConfigError("window_s must be a positive multiple of 0.01 s (got " +
                      std::to_string(window_s) + ")");
  }
  window_frames_ = static_cast<int64_t>(std::llround(frames));
  window_samples_ = window_frames_ * kWhisperHop;
  const std::string& norm = ctx.param(kNormalize);
  if (norm != "window" && norm != "stream") {
    throw ConfigError("normalize must be 'window' or 'stream' (got '" + norm + "')");
  }
  stream_norm_ = norm == "stream";
  if (padded_) {
    mel_ = std::make_unique<LogMel>(n_mels_);
  } else {
    stream_ = std::make_unique<LogMelStream>(n_mels_);
  }
}

Timestamp LogMelNode::sample_time(int64_t sample) const {
  return Timestamp(origin_us_ + sample * 1000000 / kWhisperSampleRate);
}

void LogMelNode::emit_window(Context& ctx, std::vector<float> data, int64_t frames,
                             int64_t first_sample) {
  ctx.count("frames", frames);
  ctx.emit(kMel, std::make_shared<const at::Tensor>(to_tensor(std::move(data), n_mels_, frames)),
           sample_time(first_sample));
}

Flow LogMelNode::process(Context& ctx) {
  const auto in = ctx.input(kAudio);
  if (in.empty()) return Flow::kContinue;
  const AudioChunk& chunk = in.get();
  if (chunk.sample_rate != kWhisperSampleRate) {
    throw InputError("audio at " + std::to_string(chunk.sample_rate) +
                     " Hz; the Whisper front end needs 16000 Hz (resample upstream: MediaSource "
                     "emits 16 kHz mono by default)");
  }
  if (chunk.channels < 1) {
    throw InputError("audio chunk with " + std::to_string(chunk.channels) + " channels");
  }
  if (!started_) {
    origin_us_ = chunk.start_us;
    started_ = true;
  } else if (std::llabs(chunk.start_us - sample_time(samples_).us()) > 1000) {
    ctx.count("discontinuities");
    ctx.warn(
        "audio chunks are not contiguous (gap or overlap in start_us); samples are treated "
        "as one continuous signal");
  }
  const int64_t n = chunk.frames();
  std::vector<float> mono;
  const float* x = chunk.samples.data();
  if (chunk.channels > 1) {
    mono.resize(static_cast<size_t>(n));
    const int c = chunk.channels;
    for (int64_t i = 0; i < n; ++i) {
      float s = 0.0f;
      for (int k = 0; k < c; ++k) s += x[i * c + k];
      mono[i] = s / static_cast<float>(c);
    }
    x = mono.data();
  }
  samples_ += n;
  if (padded_) {
    int64_t at = 0;
    while (at < n) {
      const int64_t take = std::min<int64_t>(n - at, window_samples_ - pending_.size());
      pending_.insert(pending_.end(), x + at, x + at + take);
      at += take;
      if (static_cast<int64_t>(pending_.size()) == window_samples_) {
        emit_window(ctx, mel_->compute_padded(pending_.data(), window_samples_, window_samples_),
                    window_frames_, pending_start_);
        pending_start_ += window_samples_;
        pending_.clear();
      }
    }
  } else {
    stream_->push(x, n);
    drain_whole(ctx, false);
  }
  return Flow::kContinue;
}

void LogMelNode::drain_whole(Context& ctx, bool at_end) {
  while (stream_->frames_ready() >= window_frames_ || (at_end && stream_->frames_ready() > 0)) {
    const int64_t first = stream_->next_frame_index();
    const int64_t k = std::min(window_frames_, stream_->frames_ready());
    std::vector<float> raw = stream_->take(k);
    if (stream_norm_) {
      held_.emplace_back(std::move(raw), first);
    } else {
      normalize_log_mel(raw.data(), static_cast<int64_t>(raw.size()));
      emit_window(ctx, std::move(raw), k, first * kWhisperHop);
    }
  }
}

void LogMelNode::close(Context& ctx) {
  if (!started_) return;
  if (padded_) {
    if (!pending_.empty()) {
      emit_window(ctx,
                  mel_->compute_padded(pending_.data(), static_cast<int64_t>(pending_.size()),
                                       window_samples_),
                  window_frames_, pending_start_);
      pending_.clear();
    }
    return;
  }
  if (!stream_->finish()) {
    ctx.warn("audio stream of " + std::to_string(samples_) +
             " samples is too short for the Whisper STFT (needs more than 200); no features");
    return;
  }
  drain_whole(ctx, true);
  if (!stream_norm_ || held_.empty()) return;
  float mx = -std::numeric_limits<float>::infinity();
  for (const auto& [raw, first] : held_)
    mx = std::max(mx, *std::max_element(raw.begin(), raw.end()));
  for (auto& [raw, first] : held_) {
    normalize_log_mel(raw.data(), static_cast<int64_t>(raw.size()), mx);
    const int64_t frames = static_cast<int64_t>(raw.size()) / n_mels_;
    emit_window(ctx, std::move(raw), frames, first * kWhisperHop);
  }
  held_.clear();
}

}  // namespace omni
