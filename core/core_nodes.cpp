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
      .output(kOut)
      .param(kCount)
      .param(kStart)
      .param(kStep)
      .param(kTsStart)
      .param(kTsStep)
      .param(kInterval)
      .param(kBurst)
      .param(kSkipEvery);
}

void CountingSource::open(Context& ctx) {
  count_ = ctx.param(kCount);
  start_ = ctx.param(kStart);
  step_ = ctx.param(kStep);
  ts_start_ = ctx.param(kTsStart);
  ts_step_ = ctx.param(kTsStep);
  interval_us_ = ctx.param(kInterval);
  burst_ = std::max<int64_t>(1, ctx.param(kBurst));
  skip_every_ = ctx.param(kSkipEvery);
  if (ts_step_ < 1) throw ConfigError("ts_step_us must be >= 1, got " + std::to_string(ts_step_));
}

Flow CountingSource::process(Context& ctx) {
  for (int64_t b = 0; b < burst_; ++b) {
    if ((count_ >= 0 && i_ >= count_) || ctx.stop_requested()) return Flow::kDone;
    if (interval_us_ > 0 && i_ > 0) sleep_interruptible(interval_us_, ctx);
    const Timestamp ts(ts_start_ + i_ * ts_step_);
    if (skip_every_ > 0 && (i_ + 1) % skip_every_ == 0) {
      ctx.set_bound(kOut, ts.next());
    } else {
      ctx.emit(kOut, start_ + i_ * step_, ts);
    }
    ++i_;
  }
  return (count_ >= 0 && i_ >= count_) ? Flow::kDone : Flow::kContinue;
}

Contract PassThrough::contract() {
  return Contract()
      .doc("Forwards every input packet unchanged (same payload, same timestamp).")
      .input(kIn)
      .output(kOut)
      .param(kSleep);
}
void PassThrough::open(Context& ctx) { sleep_us_ = ctx.param(kSleep); }
Flow PassThrough::process(Context& ctx) {
  if (sleep_us_ > 0) sleep_interruptible(sleep_us_, ctx);
  ctx.emit(kOut, ctx.input(kIn));
  return Flow::kContinue;
}

Contract Merge::contract() {
  Contract c;
  c.doc(
      "Timestamp-aligned merge of up to 8 streams: at each timestamp where any input has a "
      "packet, forwards the packet of the lowest-numbered input that has one (the others are "
      "counted as 'shadowed').");
  for (const auto& in : kNumberedInputs) c.input(in);
  c.output(kOut);
  return c;
}
Flow Merge::process(Context& ctx) {
  bool sent = false;
  for (const auto& in : kNumberedInputs) {
    const Packet& p = ctx.input(in);
    if (p.empty()) continue;
    if (!sent) {
      ctx.emit(kOut, p);
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
  for (const auto& in : kNumberedInputs) c.input(in);
  c.output(kOut);
  c.param(kRequireAll);
  return c;
}
void Zip::open(Context& ctx) { require_all_ = ctx.param(kRequireAll); }
Flow Zip::process(Context& ctx) {
  PacketSet set;
  bool complete = true;
  for (const auto& in : kNumberedInputs) {
    if (ctx.input_stream(in).empty()) continue;  // unconnected
    const Packet& p = ctx.input(in);
    set.names.emplace_back(in.name);
    set.packets.push_back(p);
    if (p.empty()) complete = false;
  }
  if (require_all_ && !complete) {
    ctx.count("incomplete");
    return Flow::kContinue;
  }
  ctx.emit(kOut, std::move(set), ctx.timestamp());
  return Flow::kContinue;
}

Contract JsonlWriter::contract() {
  return Contract()
      .doc(
          "Writes one JSON line per packet: {\"stream\": \"node.port\", \"ts_us\": T, "
          "\"payload\": ...}; payloads use the JSON encoders modules register.")
      .input(kIn)
      .param(kPath)
      .param(kStream)
      .param(kFlush)
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
  flush_ = ctx.param(kFlush);
  stream_ = ctx.param(kStream);
  if (stream_.empty()) stream_ = ctx.input_stream(kIn);
  out_.open(ctx.param(kPath));
}
Flow JsonlWriter::process(Context& ctx) {
  const Packet& p = ctx.input(kIn);
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
      .input(kIn)
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
