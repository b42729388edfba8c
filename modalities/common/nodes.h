// Registration of the nodes and JSON encoders of modalities/common (TensorDump; TokenChunk and
// Tensor JSON summaries for JsonlWriter).
#pragma once

#include "core/registry.h"

namespace omni {

void register_common_nodes(Registry& r);

}  // namespace omni
