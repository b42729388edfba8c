// Gathers every module's node registrations; modules that are compiled out are skipped.
#include "examples/all_nodes.h"

namespace omni {

void register_all_nodes(Registry& registry) {
  register_core_nodes(registry);
  // Modality and fusion modules add their register_*_nodes(registry) calls here, each under the
  // #ifdef of its build option (e.g. OMNI_WITH_MEDIA).
}

}  // namespace omni
