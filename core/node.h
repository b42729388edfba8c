// Node and Context: what a node author implements and what the runtime hands it on each call.
#pragma once

#include <concepts>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "core/contract.h"
#include "core/packet.h"
#include "core/params.h"

namespace omni {

// What process() tells the runtime.
enum class Flow {
  kContinue,  // call me again (sources) / keep feeding me (others)
  kDone,      // this node is finished: its outputs close after close() runs
};

// A typed view of the packet on an Input<T> at the timestamp being processed (possibly empty).
template <class T>
class InputPacket {
 public:
  explicit InputPacket(const Packet& p) : p_(&p) {}
  bool empty() const { return p_->empty(); }
  Timestamp timestamp() const { return p_->timestamp(); }
  // The payload; TypeError if the packet is empty.
  const T& get() const { return p_->get<T>(); }
  // Shared ownership of the payload (zero-copy views that must keep it alive).
  std::shared_ptr<const T> share() const { return p_->share<T>(); }
  const Packet& packet() const { return *p_; }

 private:
  const Packet* p_;
};

// The runtime's view of one node invocation. Implemented by the graph runtime; tests may fake it.
// Nodes address ports and parameters through their typed descriptors (Input, Output, Param in
// core/contract.h): ctx.input(kIn), ctx.emit(kOut, value, ts), ctx.param(kSize). The forms by
// index and by name below them are what the descriptors resolve to, and remain for older nodes.
class Context {
 public:
  virtual ~Context() = default;

  // ---- typed access through descriptors ----

  // The value of a declared parameter, as its C++ type (const std::string& / StringList&).
  template <class T>
  typename Param<T>::Read param(const Param<T>& p) const {
    return p.get(params());
  }
  // The packet on a typed input at timestamp() (empty if that input has none there).
  template <class T>
  requires(!std::same_as<T, AnyType>) InputPacket<T> input(const Input<T>& port)
  const { return InputPacket<T>(input(input_port(port))); }
  const Packet& input(const Input<AnyType>& port) const { return input(input_port(port)); }
  template <class T>
  bool input_done(const Input<T>& port) const {
    return input_done(input_port(port));
  }
  template <class T>
  std::string input_stream(const Input<T>& port) const {
    return input_stream(input_port(port));
  }
  // Emits `value` (anything convertible to T; a shared_ptr<const T> is adopted without a copy).
  template <class T, class V>
  requires(!std::same_as<T, AnyType> &&
           std::convertible_to<V&&, T>) void emit(const Output<T>& port, V&& value, Timestamp ts) {
    emit(output_port(port), Packet::make<T>(ts, std::forward<V>(value)));
  }
  template <class T>
  requires(!std::same_as<T, AnyType>) void emit(const Output<T>& port,
                                                std::shared_ptr<const T> value, Timestamp ts) {
    emit(output_port(port), Packet::adopt<T>(std::move(value), ts));
  }
  // Forwards a packet (its type is checked against the port when the runtime takes it).
  template <class T>
  void emit(const Output<T>& port, Packet p) {
    emit(output_port(port), std::move(p));
  }
  template <class T>
  void set_bound(const Output<T>& port, Timestamp ts) {
    set_bound(output_port(port), ts);
  }
  template <class T>
  void close_output(const Output<T>& port) {
    close_output(output_port(port));
  }
  // Index of a descriptor's port in this node's contract; throws Error naming the node and its
  // ports when the contract does not declare it.
  template <class T>
  int input_port(const Input<T>& port) const {
    return input_port(port.name);
  }
  template <class T>
  int output_port(const Output<T>& port) const {
    return output_port(port.name);
  }

  // ---- the underlying interface ----

  virtual const std::string& node_name() const = 0;
  virtual const Params& params() const = 0;

  // Timestamp of the input set being processed (unset for sources and in open/close).
  virtual Timestamp timestamp() const = 0;
  // Input packet at timestamp() on that port; an empty Packet if the port has none there.
  virtual const Packet& input(int port) const = 0;
  const Packet& input(std::string_view port) const { return input(input_port(port)); }
  // True once the input will deliver no more packets.
  virtual bool input_done(int port) const = 0;
  // "node.port" of the stream connected to an input ("" when unconnected or unknown).
  virtual std::string input_stream(int /*port*/) const { return {}; }

  // Emits a packet. Its timestamp must be strictly greater than the last one on this output and
  // not below the output's bound; violations fail the node with an Error naming node and port.
  // Emits are buffered and delivered when the call returns, so emit() never blocks on a full
  // queue (the producer is held back instead; see docs/PERFORMANCE.md).
  virtual void emit(int port, Packet p) = 0;
  void emit(std::string_view port, Packet p) { emit(output_port(port), std::move(p)); }
  template <class T>
  void emit(std::string_view port, T value, Timestamp ts) {
    emit(output_port(port), make_packet<T>(std::move(value), ts));
  }
  // Promises no packet below `ts` on this output, so sync consumers need not wait for one.
  virtual void set_bound(int port, Timestamp ts) = 0;
  void set_bound(std::string_view port, Timestamp ts) { set_bound(output_port(port), ts); }
  // Closes one output early (the rest close when the node finishes).
  virtual void close_output(int port) = 0;

  // Adds to a named counter reported in the node's stats (damaged packets, truncations, ...).
  virtual void count(std::string_view counter, int64_t delta = 1) = 0;
  // A warning attributed to this node (printed once per distinct message, kept in stats).
  virtual void warn(std::string_view message) = 0;
  // True once the graph is stopping (cancel or error elsewhere): long loops should return.
  virtual bool stop_requested() const = 0;

  // Index of a port by name; throws Error naming the node and the known ports.
  virtual int input_port(std::string_view name) const = 0;
  virtual int output_port(std::string_view name) const = 0;
};

class Node {
 public:
  virtual ~Node() = default;
  // Called once before any process(); read params here. May emit (e.g. header packets).
  virtual void open(Context&) {}
  // Sources: produce some output and return kDone when finished. Others: consume the input set.
  virtual Flow process(Context& ctx) = 0;
  // Called once after the inputs are done (or the node returned kDone); may emit final packets.
  // Not called if open() threw.
  virtual void close(Context&) {}
};

}  // namespace omni
