#include "modalities/audio/whisper_features.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "modalities/audio/log_mel.h"

namespace omni {

WhisperFeatures whisper_features(const float* samples, int64_t n, const WhisperFeatureOptions& o) {
  o.validate();
  if (samples == nullptr || n <= 0) throw InputError("whisper features: empty audio signal");
  const int64_t len = whisper_window_length(n, o);
  const int64_t copy = std::min(n, len);
  std::vector<float> x(static_cast<size_t>(len), o.padding_value);
  std::memcpy(x.data(), samples, sizeof(float) * copy);
  LogMel mel(o.feature_size);
  std::vector<float> m = mel.compute(x.data(), len);  // throws InputError when len <= 200
  WhisperFeatures f;
  f.frames = len / o.hop_length;
  f.valid_frames = whisper_valid_frames(n, o);
  f.input_features = at::empty({o.feature_size, f.frames}, at::kFloat);
  std::memcpy(f.input_features.data_ptr<float>(), m.data(), sizeof(float) * m.size());
  f.feature_attention_mask = at::zeros({f.frames}, at::kLong);
  f.feature_attention_mask.narrow(0, 0, f.valid_frames).fill_(1);
  return f;
}

}  // namespace omni
