#include "modalities/text/nodes.h"

#include <nlohmann/json.hpp>

#include "core/json_codec.h"
#include "modalities/common/token_chunk.h"
#include "modalities/text/text_nodes.h"

namespace omni {

void register_text_nodes(Registry& r) {
  r.add<TextSource>("TextSource");
  r.add<TextEncoder>("TextEncoder");
  // Other modules may have registered these payloads already; the first registration wins.
  if (!find_json_encoder(type_id<std::string>())) {
    register_to_json<std::string>([](const std::string& s, nlohmann::json& j) { j["text"] = s; });
  }
  if (!find_json_encoder(type_id<std::vector<int64_t>>())) {
    register_to_json<std::vector<int64_t>>(
        [](const std::vector<int64_t>& v, nlohmann::json& j) { j["ids"] = v; });
  }
  if (!find_json_encoder(type_id<TokenChunk>())) {
    register_to_json<TokenChunk>([](const TokenChunk& c, nlohmann::json& j) {
      j["modality"] = modality_name(c.modality);
      j["tokens"] = c.num_tokens();
      j["start_us"] = c.start_us;
      j["end_us"] = c.end_us;
      j["grid"] = {c.grid_t, c.grid_h, c.grid_w};
      j["stream"] = c.stream;
      if (c.ids.defined()) {
        const at::Tensor ids = c.ids.to(at::kCPU).contiguous();
        j["ids"] =
            std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
      }
      if (c.embeddings.defined()) j["dim"] = c.embeddings.size(1);
    });
  }
}

}  // namespace omni
