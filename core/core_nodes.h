// The generic nodes registered by register_core_nodes(): sources, pass-through, merge/zip and the
// JSON-lines writer (catalogue with every parameter in docs/nodes-core.md).
#pragma once

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
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

 private:
  int64_t sleep_us_ = 0;
};

// Timestamp-aligned merge: at each timestamp, forwards the packet of the first input having one.
class Merge : public Node {
 public:
  static constexpr int kInputs = 8;
  static Contract contract();
  Flow process(Context& ctx) override;
};

// Timestamp-aligned zip: emits a PacketSet holding the packets of all inputs at each timestamp.
class Zip : public Node {
 public:
  static constexpr int kInputs = 8;
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
  static Contract contract();
  Flow process(Context&) override { return Flow::kContinue; }
};

}  // namespace omni
