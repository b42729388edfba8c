// Manifest runs: a JSON Lines manifest in, exactly one record group out per manifest line. The
// ManifestSource node emits one ManifestItem per line (timestamp = its 0-based line index), the
// RecordWriter node writes each line's records; an ItemFeed installed by the program (dist/)
// decides which lines this process runs (all, the unfinished ones on --resume, or those an MPI
// coordinator hands out) and where the records go.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/core_nodes.h"
#include "core/node.h"

namespace omni {

class Registry;

// One manifest line.
struct ManifestItem {
  int64_t index = 0;             // 0-based line index in the manifest file (blank lines count)
  std::string text;              // the line as written (without the newline)
  nlohmann::ordered_json value;  // the parsed line (null when `error` is set)
  std::string error;             // why the line is unusable (not JSON), empty otherwise
  int64_t line() const { return index + 1; }
};

// The records of one manifest line (usually one), written together: a crash never leaves part of
// a line's records behind as finished.
struct ItemRecords {
  std::vector<nlohmann::ordered_json> records;
};

}  // namespace omni

OMNI_TYPE_NAME(omni::ManifestItem, "ManifestItem");
OMNI_TYPE_NAME(omni::ItemRecords, "ItemRecords");

namespace omni {

// A manifest's non-blank lines, in order. Throws InputError when the file cannot be read or a line
// is longer than kMaxManifestLineBytes (a manifest line names one input; a longer one is not a
// manifest, and refusing it bounds memory before the line is buffered).
struct ManifestLine {
  int64_t index = 0;
  std::string text;
};
inline constexpr size_t kMaxManifestLineBytes = size_t{1} << 20;
std::vector<ManifestLine> read_manifest_lines(const std::string& path);
// The same over a stream; `name` names it in messages.
std::vector<ManifestLine> read_manifest_lines(std::istream& in, const std::string& name);
// Parses one line; a line that is not a JSON object becomes an item with `error` set.
ManifestItem parse_manifest_item(int64_t index, std::string text);

// Record for a line that failed: {"line": N, "error": message}.
nlohmann::ordered_json error_record(int64_t index, const std::string& message);

// Where a manifest graph gets its lines and leaves its records. Installed by the program for one
// graph run (install_item_feed); without one, ManifestSource reads its `path` and emits every line
// and RecordWriter appends to its own `path`.
class ItemFeed {
 public:
  virtual ~ItemFeed() = default;
  // Next line for this process, in increasing index order. Blocks until one is available; false
  // when there are no more or `stop()` became true.
  virtual bool next(ManifestItem& item, const std::function<bool()>& stop) = 0;
  // All records of the line `index` (called once per line, in increasing index order).
  virtual void done(int64_t index, std::vector<nlohmann::ordered_json> records) = 0;
};
void install_item_feed(std::shared_ptr<ItemFeed> feed);  // nullptr uninstalls
std::shared_ptr<ItemFeed> installed_item_feed();

// JSON Lines manifest -> one ManifestItem per line.
class ManifestSource : public Node {
 public:
  static constexpr Output<ManifestItem> kOut{
      "out", "one manifest line: index, text, parsed JSON or error"};
  static constexpr Param<std::string> kPath{"path", "", "manifest file (JSON Lines)"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

 private:
  std::shared_ptr<ItemFeed> feed_;
  std::vector<ManifestLine> lines_;
  size_t next_ = 0;
};

// One record group per input packet, tagged with the line (packet timestamp + 1).
class RecordWriter : public Node {
 public:
  static constexpr Input<AnyType> kIn{"in", "one packet per manifest line"};
  static constexpr Param<std::string> kPath{"path", "-",
                                            "output JSON Lines file ('-' = standard output)"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;
  void close(Context& ctx) override;

  // The records a packet stands for: ItemRecords as they are ("line" added when missing), a
  // ManifestItem as {"line", "value"} or its error record, anything else as {"line", "output"}.
  static std::vector<nlohmann::ordered_json> records_of(const Packet& p);

 private:
  std::shared_ptr<ItemFeed> feed_;
  OutputFile out_;
};

// A stand-in for per-line work (tests, benchmarks, scaling figures): waits `sleep_us` plus the
// line's `cost_field` milliseconds, then emits {"line", "value"}; an unusable line, or one whose
// "file" does not exist, gives an error record.
class ItemWork : public Node {
 public:
  static constexpr Input<ManifestItem> kIn{"in", "a manifest line"};
  static constexpr Output<ItemRecords> kOut{"out", "the line's record"};
  static constexpr Param<int64_t> kSleep{"sleep_us", 0, "fixed cost per line (us)"};
  static constexpr Param<std::string> kCostField{"cost_field", "cost_ms",
                                                 "line field with extra cost in ms (absent: 0)"};
  static constexpr Param<bool> kCheckFile{"check_file", true,
                                          "a line whose \"file\" does not exist is an error"};
  static constexpr Param<std::string> kBaseDir{
      "base_dir", "", "directory relative \"file\" values are resolved against"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;

 private:
  int64_t sleep_us_ = 0;
  std::string cost_field_, base_dir_;
  bool check_file_ = true;
};

// ManifestSource, RecordWriter and ItemWork.
void register_manifest_nodes(Registry& r);

}  // namespace omni
