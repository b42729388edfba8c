#include "modalities/common/token_chunk.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace omni {

const char* modality_name(Modality m) {
  switch (m) {
    case Modality::kText:
      return "text";
    case Modality::kImage:
      return "image";
    case Modality::kVideo:
      return "video";
    case Modality::kAudio:
      return "audio";
  }
  return "?";
}

Modality modality_from_name(const std::string& name) {
  if (name == "text") return Modality::kText;
  if (name == "image") return Modality::kImage;
  if (name == "video") return Modality::kVideo;
  if (name == "audio") return Modality::kAudio;
  throw ConfigError("unknown modality '" + name + "' (expected text, image, video or audio)");
}

int64_t TokenChunk::num_tokens() const {
  if (embeddings.defined()) return embeddings.size(0);
  if (ids.defined()) return ids.size(0);
  return 0;
}

void PayloadJson<TokenChunk>::encode(const TokenChunk& c, nlohmann::json& j) {
  j["modality"] = modality_name(c.modality);
  j["tokens"] = c.num_tokens();
  if (c.embeddings.defined()) j["dim"] = c.embeddings.size(-1);
  if (c.ids.defined() && c.ids.numel() <= 4096) {
    const at::Tensor ids = c.ids.to(at::kCPU, at::kLong).contiguous();
    j["ids"] = std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  }
  j["start_us"] = c.start_us;
  j["end_us"] = c.end_us;
  j["grid"] = {c.grid_t, c.grid_h, c.grid_w};
  if (!c.stream.empty()) j["stream"] = c.stream;
}

void PayloadJson<at::Tensor>::encode(const at::Tensor& t, nlohmann::json& j) {
  j["shape"] = t.defined() ? t.sizes().vec() : std::vector<int64_t>{};
  j["dtype"] = t.defined() ? std::string(c10::toString(t.scalar_type())) : "undefined";
  j["device"] = t.defined() ? t.device().str() : "";
}

}  // namespace omni
