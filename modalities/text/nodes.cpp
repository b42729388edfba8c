#include "modalities/text/nodes.h"

#include "modalities/text/text_nodes.h"

namespace omni {

void register_text_nodes(Registry& r) {
  r.add<TextSource>("TextSource");
  r.add<TextEncoder>("TextEncoder");
}

}  // namespace omni
