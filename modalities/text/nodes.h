// Registers the text nodes (TextSource, TextEncoder) and JSON encoders for their payloads.
#pragma once

#include "core/registry.h"

namespace omni {

void register_text_nodes(Registry& r);

}  // namespace omni
