// packet_to_json and the JSON encoders of the built-in payload types (declared in type_name.h).
#include "core/json_codec.h"

#include <nlohmann/json.hpp>

namespace omni {

#define OMNI_PLAIN_JSON(T) \
  void PayloadJson<T>::encode(const T& value, nlohmann::json& out) { out = value; }
OMNI_PLAIN_JSON(int64_t)
OMNI_PLAIN_JSON(int32_t)
OMNI_PLAIN_JSON(double)
OMNI_PLAIN_JSON(float)
OMNI_PLAIN_JSON(bool)
OMNI_PLAIN_JSON(std::string)
OMNI_PLAIN_JSON(std::vector<float>)
OMNI_PLAIN_JSON(std::vector<int64_t>)
#undef OMNI_PLAIN_JSON

void packet_to_json(const Packet& p, nlohmann::json& out) {
  if (p.empty()) {
    out = nullptr;
    return;
  }
  const TypeId& t = p.type();
  if (t.to_json) {
    t.to_json(p.payload_address(), out);
  } else {
    out = nlohmann::json{{"type", t.name}};
  }
}

}  // namespace omni
