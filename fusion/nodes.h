// Registers the fusion module's nodes (UnifiedSequencer, Generate, FusionEncode) and the JSON
// encoder of FusedSequence (the debug dump JsonlWriter prints).
#pragma once

#include "core/registry.h"

namespace omni {

void register_fusion_nodes(Registry& r);

}  // namespace omni
