#include "modalities/common/nodes.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "core/json_codec.h"
#include "modalities/common/tensor_dump.h"
#include "modalities/common/token_chunk.h"

namespace omni {

void register_common_nodes(Registry& r) {
  r.add<TensorDump>("TensorDump");
  // Other modules may register the same payload types; the first registration wins.
  if (!find_json_encoder(type_id<TokenChunk>()))
    register_to_json<TokenChunk>([](const TokenChunk& c, nlohmann::json& j) {
      j["modality"] = modality_name(c.modality);
      j["tokens"] = c.num_tokens();
      if (c.embeddings.defined()) j["dim"] = c.embeddings.size(-1);
      if (c.ids.defined() && c.ids.numel() <= 4096) {
        const at::Tensor ids = c.ids.to(at::kCPU, at::kLong).contiguous();
        j["ids"] =
            std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
      }
      j["start_us"] = c.start_us;
      j["end_us"] = c.end_us;
      j["grid"] = {c.grid_t, c.grid_h, c.grid_w};
      if (!c.stream.empty()) j["stream"] = c.stream;
    });
  if (!find_json_encoder(type_id<at::Tensor>()))
    register_to_json<at::Tensor>([](const at::Tensor& t, nlohmann::json& j) {
      j["shape"] = t.defined() ? t.sizes().vec() : std::vector<int64_t>{};
      j["dtype"] = t.defined() ? std::string(c10::toString(t.scalar_type())) : "undefined";
      j["device"] = t.defined() ? t.device().str() : "";
    });
}

}  // namespace omni
