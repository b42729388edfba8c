// The generic nodes of core (see core_nodes.h and docs/nodes-core.md).
#include "core/core_nodes.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/json_codec.h"
#include "core/manifest.h"
#include "core/registry.h"

namespace omni {

// Sleeps in slices so cancellation is noticed promptly.
void sleep_interruptible(int64_t us, const Context& ctx) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  while (!ctx.stop_requested()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) break;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(end - now, std::chrono::milliseconds(10)));
  }
}

Contract CountingSource::contract() {
  return Contract()
      .doc(
          "Emits `count` int64 packets: value start + i*step at timestamp ts_start_us + "
          "i*ts_step_us.")
      .output<int64_t>("out", "the counter")
      .param("count", int64_t{10}, "number of packets to emit (-1: until cancelled)")
      .param("start", int64_t{0}, "first value")
      .param("step", int64_t{1}, "value increment")
      .param("ts_start_us", int64_t{0}, "timestamp of the first packet (us)")
      .param("ts_step_us", int64_t{1}, "timestamp increment per packet (us, >= 1)")
      .param("interval_us", int64_t{0},
             "real-time pause between packets (us; 0 = as fast as possible)")
      .param("burst", int64_t{1}, "packets emitted per process() call")
      .param("skip_every", int64_t{0},
             "if > 0, skip every n-th packet (advancing the bound instead of emitting)");
}

void CountingSource::open(Context& ctx) {
  const Params& p = ctx.params();
  count_ = p.get_int("count");
  start_ = p.get_int("start");
  step_ = p.get_int("step");
  ts_start_ = p.get_int("ts_start_us");
  ts_step_ = p.get_int("ts_step_us");
  interval_us_ = p.get_int("interval_us");
  burst_ = std::max<int64_t>(1, p.get_int("burst"));
  skip_every_ = p.get_int("skip_every");
  if (ts_step_ < 1) throw ConfigError("ts_step_us must be >= 1, got " + std::to_string(ts_step_));
}

Flow CountingSource::process(Context& ctx) {
  for (int64_t b = 0; b < burst_; ++b) {
    if ((count_ >= 0 && i_ >= count_) || ctx.stop_requested()) return Flow::kDone;
    if (interval_us_ > 0 && i_ > 0) sleep_interruptible(interval_us_, ctx);
    const Timestamp ts(ts_start_ + i_ * ts_step_);
    if (skip_every_ > 0 && (i_ + 1) % skip_every_ == 0) {
      ctx.set_bound(0, ts.next());
    } else {
      ctx.emit(0, make_packet<int64_t>(start_ + i_ * step_, ts));
    }
    ++i_;
  }
  return (count_ >= 0 && i_ >= count_) ? Flow::kDone : Flow::kContinue;
}

Contract PassThrough::contract() {
  return Contract()
      .doc("Forwards every input packet unchanged (same payload, same timestamp).")
      .input<AnyType>("in", "any stream")
      .output<AnyType>("out", "the same packets")
      .param("sleep_us", int64_t{0}, "sleep this long before forwarding each packet (slow stage)");
}
void PassThrough::open(Context& ctx) { sleep_us_ = ctx.params().get_int("sleep_us"); }
Flow PassThrough::process(Context& ctx) {
  if (sleep_us_ > 0) sleep_interruptible(sleep_us_, ctx);
  ctx.emit(0, ctx.input(0));
  return Flow::kContinue;
}

Contract Merge::contract() {
  Contract c;
  c.doc(
      "Timestamp-aligned merge of up to 8 streams: at each timestamp where any input has a "
      "packet, forwards the packet of the lowest-numbered input that has one (the others are "
      "counted as 'shadowed').");
  for (int i = 0; i < kInputs; ++i)
    c.optional_input<AnyType>("in" + std::to_string(i), "optional input");
  c.output<AnyType>("out", "merged stream, strictly increasing timestamps");
  return c;
}
Flow Merge::process(Context& ctx) {
  bool sent = false;
  for (int i = 0; i < kInputs; ++i) {
    const Packet& p = ctx.input(i);
    if (p.empty()) continue;
    if (!sent) {
      ctx.emit(0, p);
      sent = true;
    } else {
      ctx.count("shadowed");
    }
  }
  return Flow::kContinue;
}

Contract Zip::contract() {
  Contract c;
  c.doc(
      "Timestamp-aligned zip of up to 8 streams: emits a PacketSet with every input's packet "
      "at each timestamp (missing ones empty).");
  for (int i = 0; i < kInputs; ++i)
    c.optional_input<AnyType>("in" + std::to_string(i), "optional input");
  c.output<PacketSet>("out", "the packets of all inputs at one timestamp");
  c.param("require_all", false,
          "emit only timestamps where every connected input has a packet (others are counted "
          "as 'incomplete')");
  return c;
}
void Zip::open(Context& ctx) { require_all_ = ctx.params().get_bool("require_all"); }
Flow Zip::process(Context& ctx) {
  PacketSet set;
  bool complete = true;
  for (int i = 0; i < kInputs; ++i) {
    if (ctx.input_stream(i).empty()) continue;  // unconnected
    set.names.push_back("in" + std::to_string(i));
    set.packets.push_back(ctx.input(i));
    if (ctx.input(i).empty()) complete = false;
  }
  if (require_all_ && !complete) {
    ctx.count("incomplete");
    return Flow::kContinue;
  }
  ctx.emit(0, Packet::make<PacketSet>(ctx.timestamp(), std::move(set)));
  return Flow::kContinue;
}

Contract JsonlWriter::contract() {
  return Contract()
      .doc(
          "Writes one JSON line per packet: {\"stream\": \"node.port\", \"ts_us\": T, "
          "\"payload\": ...}; payloads use the JSON encoders modules register.")
      .input<AnyType>("in", "any stream")
      .param("path", "-", "output file ('-' = standard output)")
      .param("stream", "", "stream label written in each line (default: the connected node.port)")
      .param("flush", false, "flush after every line")
      .policy(InputPolicy::kImmediate);
}
OutputFile::~OutputFile() {
  if (f_ && own_) std::fclose(f_);
}
void OutputFile::open(const std::string& path) {
  close();
  path_ = path;
  if (path_ == "-" || path_.empty()) {
    f_ = stdout;
    own_ = false;
    return;
  }
  f_ = std::fopen(path_.c_str(), "w");
  if (!f_) throw InputError("cannot open '" + path_ + "' for writing: " + std::strerror(errno));
  own_ = true;
}
void OutputFile::write(const std::string& data, bool flush) {
  if (std::fwrite(data.data(), 1, data.size(), f_) != data.size() ||
      (flush && std::fflush(f_) != 0))
    throw InputError("write to '" + path_ + "' failed: " + std::strerror(errno));
}
void OutputFile::close() {
  if (!f_) return;
  std::FILE* f = f_;
  f_ = nullptr;
  if (own_) {
    if (std::fclose(f) != 0) throw InputError("closing '" + path_ + "' failed");
  } else {
    std::fflush(f);
  }
}

void JsonlWriter::open(Context& ctx) {
  flush_ = ctx.params().get_bool("flush");
  stream_ = ctx.params().get_string("stream");
  if (stream_.empty()) stream_ = ctx.input_stream(0);
  out_.open(ctx.params().get_string("path"));
}
Flow JsonlWriter::process(Context& ctx) {
  const Packet& p = ctx.input(0);
  nlohmann::json j;
  j["stream"] = stream_;
  j["ts_us"] = p.timestamp().us();
  packet_to_json(p, j["payload"]);
  // Payloads may carry arbitrary bytes (e.g. text sampled from an untrained model): invalid UTF-8
  // is written as U+FFFD rather than failing the graph.
  const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  out_.write(line, flush_);
  return Flow::kContinue;
}
void JsonlWriter::close(Context&) { out_.close(); }

Contract Discard::contract() {
  return Contract()
      .doc("Consumes and discards every packet (benchmarks, tests).")
      .input<AnyType>("in", "any stream")
      .policy(InputPolicy::kImmediate);
}

void PayloadJson<PacketSet>::encode(const PacketSet& s, nlohmann::json& j) {
  j = nlohmann::json::object();
  for (size_t i = 0; i < s.packets.size(); ++i) packet_to_json(s.packets[i], j[s.names[i]]);
}

void register_core_nodes(Registry& r) {
  r.add<CountingSource>("CountingSource");
  r.add<PassThrough>("PassThrough");
  r.add<Merge>("Merge");
  r.add<Zip>("Zip");
  r.add<JsonlWriter>("JsonlWriter");
  r.add<Discard>("Discard");
  register_manifest_nodes(r);
}

}  // namespace omni
