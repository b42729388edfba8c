// AudioChunk: a run of PCM samples with its start time. Plain C++ (no FFmpeg, no torch) so the
// audio front end and encoders build without the media module.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/type_name.h"

namespace omni {

struct AudioChunk {
  std::vector<float> samples;  // interleaved float32, `channels` per frame, nominally in [-1, 1]
  int sample_rate = 16000;
  int channels = 1;
  int64_t start_us = 0;  // media time of the first sample (equals the packet timestamp)

  int64_t frames() const { return channels ? static_cast<int64_t>(samples.size()) / channels : 0; }
  double duration_s() const { return sample_rate ? double(frames()) / sample_rate : 0.0; }
  int64_t end_us() const { return start_us + (sample_rate ? frames() * 1000000 / sample_rate : 0); }
};

}  // namespace omni

OMNI_TYPE_NAME(omni::AudioChunk, "AudioChunk");

template <>
struct omni::PayloadJson<omni::AudioChunk> {
  static void encode(const omni::AudioChunk& a, nlohmann::json& j) {
    j["frames"] = a.frames();
    j["sample_rate"] = a.sample_rate;
    j["channels"] = a.channels;
    j["start_us"] = a.start_us;
  }
};
