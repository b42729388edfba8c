// Manifest runs (see manifest.h): the ManifestSource, RecordWriter and ItemWork nodes.
#include "core/manifest.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "core/core_nodes.h"
#include "core/error.h"
#include "core/json_codec.h"
#include "core/registry.h"

namespace omni {

namespace {
std::mutex g_feed_mutex;
std::shared_ptr<ItemFeed> g_feed;

}  // namespace

void install_item_feed(std::shared_ptr<ItemFeed> feed) {
  std::lock_guard<std::mutex> lock(g_feed_mutex);
  g_feed = std::move(feed);
}
std::shared_ptr<ItemFeed> installed_item_feed() {
  std::lock_guard<std::mutex> lock(g_feed_mutex);
  return g_feed;
}

std::vector<ManifestLine> read_manifest_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot open manifest '" + path + "': " + std::strerror(errno));
  return read_manifest_lines(in, path);
}

std::vector<ManifestLine> read_manifest_lines(std::istream& in, const std::string& name) {
  std::vector<ManifestLine> lines;
  std::string text;
  std::streambuf* sb = in.rdbuf();
  int64_t index = 0;
  bool more = true;
  while (more) {
    // One line, refused as soon as it outgrows the cap (std::getline would buffer all of it).
    text.clear();
    bool any = false;
    while (true) {
      const int c = sb->sbumpc();
      if (c == std::char_traits<char>::eof()) {
        more = false;
        break;
      }
      any = true;
      if (c == '\n') break;
      if (text.size() >= kMaxManifestLineBytes)
        throw InputError("manifest '" + name + "': line " + std::to_string(index + 1) +
                         " is longer than the limit of " + std::to_string(kMaxManifestLineBytes) +
                         " bytes (not a JSON Lines manifest?)");
      text.push_back(static_cast<char>(c));
    }
    if (!any) break;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") != std::string::npos) lines.push_back({index, text});
    ++index;
  }
  if (in.bad()) throw InputError("error reading manifest '" + name + "'");
  return lines;
}

namespace {

// `s` with every byte that is not part of valid UTF-8 written as \xNN: JSON error messages quote
// the bytes they stopped at, and a record holding invalid UTF-8 could not be written as JSON.
std::string utf8_or_escaped(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool ok = n != 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 0x2;
    if (ok && n > 1) {
      // Overlong forms, surrogates and code points above U+10FFFF are invalid too.
      uint32_t cp = c & (0x7f >> n);
      for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
      static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[n] && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
    }
    if (ok) {
      out.append(s, i, n);
      i += n;
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
      ++i;
    }
  }
  return out;
}

}  // namespace

ManifestItem parse_manifest_item(int64_t index, std::string text) {
  ManifestItem item;
  item.index = index;
  item.text = std::move(text);
  try {
    item.value = nlohmann::ordered_json::parse(item.text);
    if (!item.value.is_object()) {
      item.error = "manifest line " + std::to_string(item.line()) + " is not a JSON object";
      item.value = nullptr;
    }
  } catch (const nlohmann::json::exception& e) {
    item.error = "manifest line " + std::to_string(item.line()) +
                 " is not JSON: " + utf8_or_escaped(e.what());
    item.value = nullptr;
  }
  return item;
}

nlohmann::ordered_json error_record(int64_t index, const std::string& message) {
  nlohmann::ordered_json r;
  r["line"] = index + 1;
  r["error"] = utf8_or_escaped(message);
  return r;
}

// ---- ManifestSource ----

Contract ManifestSource::contract() {
  return Contract()
      .doc(
          "Reads a JSON Lines manifest: one ManifestItem per non-blank line, at timestamp = its "
          "0-based line index. Under `omnipipe run` (and MPI) the program decides which lines "
          "this process runs (--resume skips finished ones).")
      .output(kOut)
      .param(kPath);
}

void ManifestSource::open(Context& ctx) {
  feed_ = installed_item_feed();
  if (feed_) return;
  const std::string& path = ctx.param(kPath);
  if (path.empty()) throw ConfigError("path (the manifest) is empty");
  lines_ = read_manifest_lines(path);
}

Flow ManifestSource::process(Context& ctx) {
  if (ctx.stop_requested()) return Flow::kDone;
  if (feed_) {
    ManifestItem item;
    if (!feed_->next(item, [&ctx] { return ctx.stop_requested(); })) return Flow::kDone;
    const Timestamp ts(item.index);
    ctx.emit(kOut, std::move(item), ts);
    return Flow::kContinue;
  }
  if (next_ >= lines_.size()) return Flow::kDone;
  ManifestLine& l = lines_[next_++];
  ctx.emit(kOut, parse_manifest_item(l.index, std::move(l.text)), Timestamp(l.index));
  return next_ < lines_.size() ? Flow::kContinue : Flow::kDone;
}

// ---- RecordWriter ----

Contract RecordWriter::contract() {
  return Contract()
      .doc(
          "Writes one record group per manifest line (the packet's timestamp is the line's "
          "index): ItemRecords as they are, a ManifestItem as {\"line\", \"value\"} or its "
          "error, other payloads as {\"line\", \"output\"}. Each group is written whole.")
      .input(kIn)
      .param(kPath)
      .policy(InputPolicy::kImmediate);
}

void RecordWriter::open(Context& ctx) {
  feed_ = installed_item_feed();
  if (!feed_) out_.open(ctx.param(kPath));
}

std::vector<nlohmann::ordered_json> RecordWriter::records_of(const Packet& p) {
  const int64_t index = p.timestamp().us();
  std::vector<nlohmann::ordered_json> out;
  if (p.holds<ItemRecords>()) {
    for (const auto& r : p.get<ItemRecords>().records) {
      if (r.is_object() && r.contains("line")) {
        out.push_back(r);
      } else {
        nlohmann::ordered_json t;
        t["line"] = index + 1;
        if (r.is_object()) {
          for (const auto& [k, v] : r.items()) t[k] = v;
        } else {
          t["output"] = r;
        }
        out.push_back(std::move(t));
      }
    }
    if (out.empty()) out.push_back(error_record(index, "the graph produced no record"));
    return out;
  }
  if (p.holds<ManifestItem>()) {
    const ManifestItem& item = p.get<ManifestItem>();
    if (!item.error.empty()) return {error_record(index, item.error)};
    nlohmann::ordered_json r;
    r["line"] = index + 1;
    r["value"] = item.value;
    return {std::move(r)};
  }
  nlohmann::json payload;
  packet_to_json(p, payload);
  nlohmann::ordered_json r;
  r["line"] = index + 1;
  r["output"] = nlohmann::ordered_json::parse(payload.dump());
  return {std::move(r)};
}

Flow RecordWriter::process(Context& ctx) {
  const Packet& p = ctx.input(kIn);
  if (p.empty()) return Flow::kContinue;
  auto records = records_of(p);
  if (feed_) {
    feed_->done(p.timestamp().us(), std::move(records));
    return Flow::kContinue;
  }
  std::string group;
  for (const auto& r : records)
    group += r.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  out_.write(group, true);
  return Flow::kContinue;
}

void RecordWriter::close(Context&) { out_.close(); }

// ---- ItemWork ----

Contract ItemWork::contract() {
  return Contract()
      .doc(
          "Stand-in per-line work for manifest runs (tests, scaling figures): waits sleep_us + "
          "the line's `cost_field` milliseconds, then emits {\"line\", \"value\"}; an unusable "
          "line or a missing \"file\" gives that line's error record.")
      .input(kIn)
      .output(kOut)
      .param(kSleep)
      .param(kCostField)
      .param(kCheckFile)
      .param(kBaseDir)
      .policy(InputPolicy::kImmediate);
}

void ItemWork::open(Context& ctx) {
  sleep_us_ = ctx.param(kSleep);
  cost_field_ = ctx.param(kCostField);
  check_file_ = ctx.param(kCheckFile);
  base_dir_ = ctx.param(kBaseDir);
}

Flow ItemWork::process(Context& ctx) {
  const auto p = ctx.input(kIn);
  if (p.empty()) return Flow::kContinue;
  const ManifestItem& item = p.get();
  ItemRecords out;
  if (!item.error.empty()) {
    out.records.push_back(error_record(item.index, item.error));
    ctx.count("errors");
  } else {
    int64_t us = sleep_us_;
    const auto& v = item.value;
    if (!cost_field_.empty() && v.contains(cost_field_) && v[cost_field_].is_number())
      us += static_cast<int64_t>(v[cost_field_].get<double>() * 1000.0);
    if (us > 0) sleep_interruptible(us, ctx);
    std::string error;
    if (check_file_ && v.contains("file")) {
      if (!v["file"].is_string()) {
        error = "\"file\" is not a string";
      } else {
        std::filesystem::path f = v["file"].get<std::string>();
        if (f.is_relative() && !base_dir_.empty()) f = std::filesystem::path(base_dir_) / f;
        std::error_code ec;
        if (!std::filesystem::exists(f, ec)) error = "file '" + f.string() + "' does not exist";
      }
    }
    if (error.empty()) {
      nlohmann::ordered_json r;
      r["line"] = item.line();
      r["value"] = v;
      out.records.push_back(std::move(r));
    } else {
      out.records.push_back(error_record(item.index, error));
      ctx.count("errors");
    }
  }
  ctx.emit(kOut, std::move(out), p.timestamp());
  return Flow::kContinue;
}

void register_manifest_nodes(Registry& r) {
  r.add<ManifestSource>("ManifestSource");
  r.add<RecordWriter>("RecordWriter");
  r.add<ItemWork>("ItemWork");
}

}  // namespace omni
