#include "modalities/common/token_chunk.h"

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

}  // namespace omni
