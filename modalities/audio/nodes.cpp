#include "modalities/audio/nodes.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "core/json_codec.h"
#include "modalities/audio/audio_encoder_node.h"
#include "modalities/audio/log_mel_node.h"

namespace omni {

void register_audio_nodes(Registry& r) {
  r.add<LogMelNode>("LogMel");
  register_audio_encoder_nodes(r);  // AudioEncoder (merge of the frontends + encoders branches)
  // Other modules may have registered Tensor already; the first registration wins.
  if (!find_json_encoder(type_id<at::Tensor>())) {
    register_to_json<at::Tensor>([](const at::Tensor& t, nlohmann::json& j) {
      j["shape"] = t.sizes().vec();
      j["dtype"] = std::string(c10::toString(t.scalar_type()));
      j["device"] = t.device().str();
    });
  }
}

}  // namespace omni
