// The process-wide payload -> JSON encoder table, pre-filled with the built-in scalar types.
#include "core/json_codec.h"

#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>

namespace omni {
namespace {

struct Table {
  std::mutex mu;
  std::unordered_map<std::type_index, std::unique_ptr<JsonEncoder>> encoders;
};

template <class T>
void add_builtin(Table& t) {
  t.encoders[std::type_index(typeid(T))] =
      std::make_unique<JsonEncoder>([](const Packet& p, nlohmann::json& j) { j = p.get<T>(); });
}

Table& table() {
  static Table* t = [] {
    auto* t = new Table;
    add_builtin<int64_t>(*t);
    add_builtin<int32_t>(*t);
    add_builtin<double>(*t);
    add_builtin<float>(*t);
    add_builtin<bool>(*t);
    add_builtin<std::string>(*t);
    add_builtin<std::vector<float>>(*t);
    add_builtin<std::vector<int64_t>>(*t);
    return t;
  }();
  return *t;
}

}  // namespace

void register_json_encoder(const TypeId& type, JsonEncoder encoder) {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  // Encoders are never removed or replaced, so pointers handed out stay valid.
  if (!t.encoders.count(type.index))
    t.encoders[type.index] = std::make_unique<JsonEncoder>(std::move(encoder));
}

const JsonEncoder* find_json_encoder(const TypeId& type) {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.encoders.find(type.index);
  return it == t.encoders.end() ? nullptr : it->second.get();
}

void packet_to_json(const Packet& p, nlohmann::json& out) {
  if (p.empty()) {
    out = nullptr;
    return;
  }
  if (const JsonEncoder* e = find_json_encoder(p.type())) {
    (*e)(p, out);
  } else {
    out = nlohmann::json{{"type", p.type().name}};
  }
}

}  // namespace omni
