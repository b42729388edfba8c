// Registration of the image nodes (ImageEncoder; ImagePreprocess with OMNI_WITH_MEDIA).
#pragma once

#include "core/registry.h"

namespace omni {

void register_image_nodes(Registry& r);

}  // namespace omni
