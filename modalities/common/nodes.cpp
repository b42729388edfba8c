#include "modalities/common/nodes.h"

#include "modalities/common/tensor_dump.h"
#include "modalities/common/token_chunk.h"

namespace omni {

void register_common_nodes(Registry& r) { r.add<TensorDump>("TensorDump"); }

}  // namespace omni
