// Readable, stable names for packet payload types ("Frame", "TokenChunk", "int64").
#pragma once

#include <cstdint>
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

std::string demangle(const char* mangled);

// Identity of a payload type: comparable, hashable, printable.
struct TypeId {
  std::type_index index;
  std::string name;
  bool operator==(const TypeId& o) const { return index == o.index; }
};

// Marker type for ports that accept or emit any payload (pass-through, writers).
struct AnyType {};

template <class T>
const TypeId& type_id() {
  static const TypeId id{std::type_index(typeid(T)), TypeName<T>::value
                                                         ? std::string(TypeName<T>::value)
                                                         : demangle(typeid(T).name())};
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
