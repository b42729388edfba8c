#include "modalities/common/pcm_tensor.h"

#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "core/error.h"
#include "modalities/common/audio_chunk.h"

namespace omni {

at::Tensor pcm_to_tensor(const Packet& audio_packet) {
  std::shared_ptr<const AudioChunk> chunk = audio_packet.share<AudioChunk>();
  if (chunk->channels <= 0) {
    throw InputError("audio chunk at " + std::to_string(chunk->start_us) +
                     "us: channels must be positive, got " + std::to_string(chunk->channels));
  }
  const int64_t frames = chunk->frames(), channels = chunk->channels;
  if (frames == 0) return at::empty({0, channels}, at::kFloat);
  void* data = const_cast<float*>(chunk->samples.data());
  return at::from_blob(
      data, {frames, channels}, {channels, 1},
      [keep = std::move(chunk)](void*) mutable { keep.reset(); }, at::TensorOptions(at::kFloat));
}

}  // namespace omni
