#include "modalities/audio/nodes.h"

#include "modalities/audio/audio_encoder_node.h"
#include "modalities/audio/log_mel_node.h"

namespace omni {

void register_audio_nodes(Registry& r) {
  r.add<LogMelNode>("LogMel");
  register_audio_encoder_nodes(r);  // AudioEncoder (merge of the frontends + encoders branches)
}

}  // namespace omni
