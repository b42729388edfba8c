// Writing any packet's payload as JSON (generic sinks: JsonlWriter, Zip's PacketSet). A payload
// type gets its encoder from OMNI_PAYLOAD_JSON next to its definition (core/type_name.h).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "core/packet.h"

namespace omni {

// Writes the packet's payload: its type's PayloadJson encoder, {"type": name} if it has none,
// null for an empty packet.
void packet_to_json(const Packet& p, nlohmann::json& out);

}  // namespace omni
