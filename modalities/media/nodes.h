// Registration of the media module's nodes (MediaSource, ImageSource) and of JSON encoders for
// its payloads (Frame, AudioChunk) so the generic JsonlWriter can print them.
#pragma once

#include "core/registry.h"

namespace omni {

void register_media_nodes(Registry& registry);

}  // namespace omni
