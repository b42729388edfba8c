// AudioChunk -> tensor without copying: the PCM samples of a packet as a float tensor view.
#pragma once

#include <ATen/core/Tensor.h>

#include "core/packet.h"

namespace omni {

// A [frames, channels] float32 CPU tensor aliasing the chunk's interleaved samples (mono:
// `.select(1, 0)` gives [frames] without a copy). The deleter holds the packet's AudioChunk, so
// the view outlives the packet. Shared with other readers: treat as read-only.
// Throws TypeError if the packet is not an AudioChunk, InputError if it has no channels.
at::Tensor pcm_to_tensor(const Packet& audio_packet);

}  // namespace omni
