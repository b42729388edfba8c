// The generic nodes registered by register_core_nodes(): sources, pass-through, merge/zip and the
// JSON-lines writer (catalogue with every parameter in docs/nodes-core.md).
#pragma once

#include <array>
#include <cstdio>
#include <vector>

#include "core/node.h"

namespace omni {

// Payload of Zip: the packets of each input at one timestamp (empty Packet where missing).
struct PacketSet {
  std::vector<std::string> names;  // input port names, parallel to `packets`
  std::vector<Packet> packets;
};

}  // namespace omni

OMNI_TYPE_NAME(omni::PacketSet, "PacketSet");
OMNI_PAYLOAD_JSON(omni::PacketSet);  // {port name: payload JSON}

namespace omni {

// Emits `count` int64 packets: value start + i*step at timestamp ts_start_us + i*ts_step_us.
class CountingSource : public Node {
 public:
  static constexpr Output<int64_t> kOut{"out", "the counter"};
  static constexpr Param<int64_t> kCount{"count", 10,
                                         "number of packets to emit (-1: until cancelled)"};
  static constexpr Param<int64_t> kStart{"start", 0, "first value"};
  static constexpr Param<int64_t> kStep{"step", 1, "value increment"};
  static constexpr Param<int64_t> kTsStart{"ts_start_us", 0, "timestamp of the first packet (us)"};
  static constexpr Param<int64_t> kTsStep{"ts_step_us", 1,
                                          "timestamp increment per packet (us, >= 1)"};
  static constexpr Param<int64_t> kInterval{
      "interval_us", 0, "real-time pause between packets (us; 0 = as fast as possible)"};
  static constexpr Param<int64_t> kBurst{"burst", 1, "packets emitted per process() call"};
  static constexpr Param<int64_t> kSkipEvery{
      "skip_every", 0, "if > 0, skip every n-th packet (advancing the bound instead of emitting)"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

 private:
  int64_t count_ = 0, start_ = 0, step_ = 1, ts_start_ = 0, ts_step_ = 1, interval_us_ = 0;
  int64_t burst_ = 1, skip_every_ = 0;
  int64_t i_ = 0;
};

// Forwards each input packet unchanged (optionally sleeping first: a slow stage for tests).
class PassThrough : public Node {
 public:
  static constexpr Input<AnyType> kIn{"in", "any stream"};
  static constexpr Output<AnyType> kOut{"out", "the same packets"};
  static constexpr Param<int64_t> kSleep{
      "sleep_us", 0, "sleep this long before forwarding each packet (slow stage)"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

 private:
  int64_t sleep_us_ = 0;
};

// The inputs in0..in7 of Merge and Zip.
inline constexpr std::array<OptionalInput<AnyType>, 8> kNumberedInputs{
    OptionalInput<AnyType>{"in0", "optional input"},
    OptionalInput<AnyType>{"in1", "optional input"},
    OptionalInput<AnyType>{"in2", "optional input"},
    OptionalInput<AnyType>{"in3", "optional input"},
    OptionalInput<AnyType>{"in4", "optional input"},
    OptionalInput<AnyType>{"in5", "optional input"},
    OptionalInput<AnyType>{"in6", "optional input"},
    OptionalInput<AnyType>{"in7", "optional input"}};

// Timestamp-aligned merge: at each timestamp, forwards the packet of the first input having one.
class Merge : public Node {
 public:
  static constexpr int kInputs = static_cast<int>(kNumberedInputs.size());
  static constexpr Output<AnyType> kOut{"out", "merged stream, strictly increasing timestamps"};
  static Contract contract();
  Flow process(Context& ctx) override;
};

// Timestamp-aligned zip: emits a PacketSet holding the packets of all inputs at each timestamp.
class Zip : public Node {
 public:
  static constexpr int kInputs = static_cast<int>(kNumberedInputs.size());
  static constexpr Output<PacketSet> kOut{"out", "the packets of all inputs at one timestamp"};
  static constexpr Param<bool> kRequireAll{
      "require_all", false,
      "emit only timestamps where every connected input has a packet (others are counted as "
      "'incomplete')"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

 private:
  bool require_all_ = false;
};

// Sleeps `us` microseconds in slices, returning early once the graph is asked to stop.
void sleep_interruptible(int64_t us, const Context& ctx);

// The output file of a writer node: '-' (or empty) is standard output, flushed but never closed;
// anything else is created (truncated). Every failure is an InputError naming the path.
class OutputFile {
 public:
  OutputFile() = default;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile();
  void open(const std::string& path);
  void write(const std::string& data, bool flush);
  void close();
  bool is_open() const { return f_ != nullptr; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  bool own_ = false;
};

// Writes one JSON object per packet: {"stream", "ts_us", "payload"}.
class JsonlWriter : public Node {
 public:
  static constexpr Input<AnyType> kIn{"in", "any stream"};
  static constexpr Param<std::string> kPath{"path", "-", "output file ('-' = standard output)"};
  static constexpr Param<std::string> kStream{
      "stream", "", "stream label written in each line (default: the connected node.port)"};
  static constexpr Param<bool> kFlush{"flush", false, "flush after every line"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;
  void close(Context& ctx) override;

 private:
  OutputFile out_;
  bool flush_ = false;
  std::string stream_;
};

// Consumes and discards packets (benchmarks, tests).
class Discard : public Node {
 public:
  static constexpr Input<AnyType> kIn{"in", "any stream"};
  static Contract contract();
  Flow process(Context&) override { return Flow::kContinue; }
};

}  // namespace omni
