#include "modalities/image/nodes.h"

#include "modalities/image/image_nodes.h"

namespace omni {

void register_image_nodes(Registry& r) {
#if OMNI_WITH_MEDIA
  r.add<ImagePreprocess>("ImagePreprocess");
#endif
  r.add<ImageEncoder>("ImageEncoder");
}

}  // namespace omni
