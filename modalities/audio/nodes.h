// Registers the audio nodes (LogMel; the AudioEncoder is added here by its own module file) and
// JSON encoders for their payloads.
#pragma once

#include "core/registry.h"

namespace omni {

void register_audio_nodes(Registry& r);

}  // namespace omni
