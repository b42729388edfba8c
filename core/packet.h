// Packet: an immutable, shared, type-erased payload plus its timestamp. Copies share the payload.
#pragma once

#include <memory>
#include <utility>

#include "core/error.h"
#include "core/timestamp.h"
#include "core/type_name.h"

namespace omni {

class Packet {
 public:
  Packet() = default;

  // Builds the payload in place.
  template <class T, class... Args>
  static Packet make(Timestamp ts, Args&&... args) {
    return Packet(std::make_shared<const T>(std::forward<Args>(args)...), &type_id<T>(), ts);
  }
  // Adopts an existing shared payload without copying it.
  template <class T>
  static Packet adopt(std::shared_ptr<const T> payload, Timestamp ts) {
    return Packet(std::move(payload), &type_id<T>(), ts);
  }

  bool empty() const { return data_ == nullptr; }
  Timestamp timestamp() const { return ts_; }
  // Same payload, another timestamp.
  Packet at(Timestamp ts) const { return Packet(data_, type_, ts); }
  // Type of the payload; type_id<AnyType>() for an empty packet.
  const TypeId& type() const { return type_ ? *type_ : type_id<AnyType>(); }

  template <class T>
  bool holds() const {
    return type_ && type_->index == type_id<T>().index;
  }
  // The payload; throws TypeError naming both types if it holds something else.
  template <class T>
  const T& get() const {
    check<T>();
    return *static_cast<const T*>(data_.get());
  }
  // Shared ownership of the payload (for zero-copy views that must keep it alive).
  template <class T>
  std::shared_ptr<const T> share() const {
    check<T>();
    return std::static_pointer_cast<const T>(data_);
  }
  // Raw identity of the payload (tests use it to prove zero-copy).
  const void* payload_address() const { return data_.get(); }

 private:
  Packet(std::shared_ptr<const void> d, const TypeId* t, Timestamp ts)
      : data_(std::move(d)), type_(t), ts_(ts) {}
  template <class T>
  void check() const {
    if (!holds<T>()) throw_type_error(type_id<T>());
  }
  [[noreturn]] void throw_type_error(const TypeId& wanted) const;

  std::shared_ptr<const void> data_;
  const TypeId* type_ = nullptr;
  Timestamp ts_;
};

// Shorthand: make_packet<T>(value, ts).
template <class T>
Packet make_packet(T value, Timestamp ts) {
  return Packet::make<T>(ts, std::move(value));
}

}  // namespace omni
