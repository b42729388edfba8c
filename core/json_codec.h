// Process-wide table of payload -> JSON converters, so generic sinks (JsonlWriter) can write any
// registered payload type. Modules register theirs in their register_*_nodes() function.
#pragma once

#include <functional>
#include <nlohmann/json_fwd.hpp>

#include "core/packet.h"

namespace omni {

using JsonEncoder = std::function<void(const Packet&, nlohmann::json&)>;

void register_json_encoder(const TypeId& type, JsonEncoder encoder);
// Null if none registered for that type.
const JsonEncoder* find_json_encoder(const TypeId& type);

template <class T>
void register_to_json(std::function<void(const T&, nlohmann::json&)> fn) {
  register_json_encoder(type_id<T>(), [fn = std::move(fn)](const Packet& p, nlohmann::json& j) {
    fn(p.get<T>(), j);
  });
}

// Writes the packet's payload: the registered encoder, or {"type": name} if there is none.
void packet_to_json(const Packet& p, nlohmann::json& out);

}  // namespace omni
