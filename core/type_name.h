// Readable, stable names for packet payload types ("Frame", "TokenChunk", "int64") and their JSON
// encoders: both declared once, next to the payload type's definition.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <typeindex>
#include <typeinfo>
#include <vector>

namespace omni {

// Specialise with OMNI_TYPE_NAME next to a payload type's definition; unspecialised types fall
// back to the demangled C++ name.
template <class T>
struct TypeName {
  static constexpr const char* value = nullptr;
};

#define OMNI_TYPE_NAME(T, NAME)                \
  template <>                                  \
  struct omni::TypeName<T> {                   \
    static constexpr const char* value = NAME; \
  }

// How generic sinks (JsonlWriter, Zip's PacketSet) write a payload as JSON. Declare it with
// OMNI_PAYLOAD_JSON(T) right after the type's OMNI_TYPE_NAME and define
// `void omni::PayloadJson<T>::encode(const T&, nlohmann::json&)` once (in the type's .cpp, or
// inline in a header-only payload's header). Types without one are written as {"type": NAME}.
// There is no run-time table: type_id<T>() picks the encoder up at compile time, so one type has
// exactly one encoder and it works whichever nodes a program registers.
template <class T>
struct PayloadJson {};

#define OMNI_PAYLOAD_JSON(T)                                 \
  template <>                                                \
  struct omni::PayloadJson<T> {                              \
    static void encode(const T& value, nlohmann::json& out); \
  }

std::string demangle(const char* mangled);

// Identity of a payload type: comparable, hashable, printable, and its JSON encoder.
struct TypeId {
  using JsonFn = void (*)(const void* payload, nlohmann::json& out);
  std::type_index index;
  std::string name;
  JsonFn to_json = nullptr;  // PayloadJson<T>::encode on the type-erased payload; null if none
  bool operator==(const TypeId& o) const { return index == o.index; }
};

// Marker type for ports that accept or emit any payload (pass-through, writers).
struct AnyType {};

namespace detail {
template <class T>
TypeId::JsonFn json_fn() {
  if constexpr (requires(const T& v, nlohmann::json& j) { PayloadJson<T>::encode(v, j); }) {
    return [](const void* p, nlohmann::json& j) {
      PayloadJson<T>::encode(*static_cast<const T*>(p), j);
    };
  } else {
    return nullptr;
  }
}
}  // namespace detail

template <class T>
const TypeId& type_id() {
  static const TypeId id{
      std::type_index(typeid(T)),
      TypeName<T>::value ? std::string(TypeName<T>::value) : demangle(typeid(T).name()),
      detail::json_fn<T>()};
  return id;
}

}  // namespace omni

OMNI_TYPE_NAME(omni::AnyType, "any");
OMNI_TYPE_NAME(int64_t, "int64");
OMNI_TYPE_NAME(int32_t, "int32");
OMNI_TYPE_NAME(double, "double");
OMNI_TYPE_NAME(float, "float");
OMNI_TYPE_NAME(bool, "bool");
OMNI_TYPE_NAME(std::string, "string");
OMNI_TYPE_NAME(std::vector<float>, "vector<float>");
OMNI_TYPE_NAME(std::vector<int64_t>, "vector<int64>");
// The built-in scalars and vectors are written as plain JSON values (core/json_codec.cpp).
OMNI_PAYLOAD_JSON(int64_t);
OMNI_PAYLOAD_JSON(int32_t);
OMNI_PAYLOAD_JSON(double);
OMNI_PAYLOAD_JSON(float);
OMNI_PAYLOAD_JSON(bool);
OMNI_PAYLOAD_JSON(std::string);
OMNI_PAYLOAD_JSON(std::vector<float>);
OMNI_PAYLOAD_JSON(std::vector<int64_t>);
