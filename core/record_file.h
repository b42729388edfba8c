// The output file of a manifest run, written so that a crash never leaves a corrupt record behind:
// each manifest line's records are appended whole (one write) as they finish and synced to disk at
// least every `sync_interval`; finish() rewrites the file in manifest order (temp file + rename).
// With `resume`, what an earlier, interrupted run wrote is read back first: whole groups are kept,
// a truncated last line and partial groups are dropped (their lines run again).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace omni {

class RecordFile {
 public:
  // Number of records a finished line has (default: 1 for every line).
  using Expected = std::function<int64_t(int64_t index)>;

  struct ResumeReport {
    int64_t kept_lines = 0;        // lines finished earlier (skipped now)
    int64_t kept_records = 0;      // their records
    int64_t dropped_records = 0;   // records of unfinished lines (those lines run again)
    int64_t unreadable_lines = 0;  // complete lines that were not a record
    bool truncated_tail = false;   // the file ended inside a line (died mid-write)
  };

  // `order`: the manifest's line indices in order (the lines this run must end up with). `path`
  // "-" writes standard output in manifest order as lines become contiguous (no resume).
  RecordFile(std::string path, std::vector<int64_t> order, bool resume, Expected expected = {});
  ~RecordFile();
  RecordFile(const RecordFile&) = delete;
  RecordFile& operator=(const RecordFile&) = delete;

  const std::set<int64_t>& finished() const { return finished_; }
  const ResumeReport& resume_report() const { return report_; }
  int64_t written_lines() const { return written_; }

  // One line's records, written whole. Throws RunError for a line already written or not in
  // `order`, InputError when the write fails.
  void append(int64_t index, const std::vector<nlohmann::ordered_json>& records);
  // Syncs, then rewrites the file in manifest order (temp + rename). Throws RunError naming the
  // first missing line when a line of `order` has no records.
  void finish();

  // Seconds between fdatasync calls while appending (0: after every line).
  std::chrono::milliseconds sync_interval{1000};

 private:
  void scan_and_rewrite();
  void write_all(const std::string& data);
  void sync();

  std::string path_;
  std::vector<int64_t> order_;
  std::set<int64_t> in_order_;
  Expected expected_;
  std::set<int64_t> finished_;
  ResumeReport report_;
  int fd_ = -1;
  bool stdout_ = false;  // stream mode: standard output or a non-regular file
  std::FILE* stream_ = nullptr;
  int64_t written_ = 0;
  std::chrono::steady_clock::time_point last_sync_;
  // stdout: groups waiting for the lines before them
  std::map<int64_t, std::string> pending_;
  size_t next_pos_ = 0;
};

}  // namespace omni
