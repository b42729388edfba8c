// Gathers every module's node registrations; modules that are compiled out are skipped.
#include "nodes/all_nodes.h"

#ifdef OMNI_HAVE_MEDIA
#include "modalities/media/nodes.h"
#endif
#ifdef OMNI_HAVE_COMMON
#include "modalities/common/nodes.h"
#endif
#ifdef OMNI_HAVE_TEXT
#include "modalities/text/nodes.h"
#endif
#ifdef OMNI_HAVE_IMAGE
#include "modalities/image/nodes.h"
#endif
#ifdef OMNI_HAVE_AUDIO
#include "modalities/audio/nodes.h"
#endif
#ifdef OMNI_HAVE_FUSION
#include "fusion/nodes.h"
#endif
#ifdef OMNI_HAVE_QWEN_OMNI
#include "models/qwen2_5_omni/nodes.h"
#endif

namespace omni {

void register_all_nodes(Registry& registry) {
  register_core_nodes(registry);
#ifdef OMNI_HAVE_MEDIA
  register_media_nodes(registry);
#endif
#ifdef OMNI_HAVE_COMMON
  register_common_nodes(registry);
#endif
#ifdef OMNI_HAVE_TEXT
  register_text_nodes(registry);
#endif
#ifdef OMNI_HAVE_IMAGE
  register_image_nodes(registry);
#endif
#ifdef OMNI_HAVE_AUDIO
  register_audio_nodes(registry);
#endif
#ifdef OMNI_HAVE_FUSION
  register_fusion_nodes(registry);
#endif
#ifdef OMNI_HAVE_QWEN_OMNI
  register_qwen_omni_nodes(registry);
#endif
}

}  // namespace omni
