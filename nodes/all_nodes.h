// The complete node catalogue (omnipipe::nodes): every module's register_*_nodes().
#pragma once

#include "core/registry.h"

namespace omni {

// Registers every node type built into this configuration (core + enabled modality modules).
void register_all_nodes(Registry& registry);

}  // namespace omni
